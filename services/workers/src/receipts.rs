//! The receipt consumer: every outcome reported on the receipts topic is
//! recorded and moves its delivery forward, at most once per state.

use std::sync::Arc;

use async_trait::async_trait;
use herald_bus::{HandleError, Handler, Record};
use herald_domain::{Clock, Receipt};
use herald_store::Store;

pub struct ReceiptConsumer {
    store: Store,
    clock: Arc<dyn Clock>,
}

impl ReceiptConsumer {
    pub fn new(store: Store, clock: Arc<dyn Clock>) -> Self {
        ReceiptConsumer { store, clock }
    }

    /// Applies one receipt. Returns whether the delivery's state moved.
    pub async fn apply(&self, payload: &[u8]) -> Result<bool, HandleError> {
        let receipt: Receipt = serde_json::from_slice(payload)
            .map_err(|e| HandleError::Poison(format!("not a receipt: {e}")))?;
        self.store
            .apply_receipt(&receipt, self.clock.now())
            .await
            .map_err(|e| {
                if e.is_retriable() {
                    HandleError::Retry(e.to_string())
                } else {
                    HandleError::Poison(e.to_string())
                }
            })
    }
}

#[async_trait]
impl Handler for ReceiptConsumer {
    async fn handle(&self, record: &Record) -> Result<(), HandleError> {
        self.apply(&record.payload).await.map(|_| ())
    }
}

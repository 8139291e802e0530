//! The receipt consumer: every outcome reported on the receipts topic is
//! recorded and moves its delivery forward, at most once per state.

use std::sync::Arc;

use async_trait::async_trait;
use herald_bus::{HandleError, Handler, Record};
use herald_domain::{Clock, Receipt};
use herald_store::Store;

/// Receipts applied in one transaction at most.
const BATCH: usize = 128;

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

    fn max_batch(&self) -> usize {
        BATCH
    }

    /// Applies every well-formed receipt of the batch in one transaction.
    async fn handle_batch(&self, records: &[Record]) -> Vec<Result<(), HandleError>> {
        let mut results: Vec<Result<(), HandleError>> = Vec::with_capacity(records.len());
        let mut receipts = Vec::with_capacity(records.len());
        for record in records {
            match serde_json::from_slice::<Receipt>(&record.payload) {
                Ok(receipt) => {
                    receipts.push(receipt);
                    results.push(Ok(()));
                }
                Err(e) => results.push(Err(HandleError::Poison(format!("not a receipt: {e}")))),
            }
        }
        match self.store.apply_receipts(&receipts, self.clock.now()).await {
            Ok(_) => results,
            Err(e) if e.is_retriable() => results
                .into_iter()
                .map(|result| result.and(Err(HandleError::Retry(e.to_string()))))
                .collect(),
            // One receipt the store refuses spoils the transaction: find
            // it by applying each on its own.
            Err(_) => {
                let mut each = Vec::with_capacity(records.len());
                for record in records {
                    each.push(self.apply(&record.payload).await.map(|_| ()));
                }
                each
            }
        }
    }
}

use thiserror::Error;

#[derive(Debug, Error)]
pub enum BusError {
    #[error("embedded bus: {0}")]
    Embedded(#[from] sqlx::Error),
    #[error("kafka: {0}")]
    Kafka(String),
    #[error("the bus is shut down")]
    Closed,
    #[error("bus configuration: {0}")]
    Config(String),
}

impl BusError {
    /// Could trying again later succeed?
    pub fn is_retriable(&self) -> bool {
        !matches!(self, BusError::Config(_) | BusError::Closed)
    }
}

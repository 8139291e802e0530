//! Herald's workers: one per channel, plus the receipt consumer.
//!
//! A channel worker takes a [`DeliveryJob`](herald_domain::DeliveryJob) off
//! its channel's queue and, in one step ([`ChannelWorker::handle`]): claims the
//! delivery (the fast-path cache first, the database as the truth), renders
//! the template in the user's language, waits for the provider's rate limit,
//! sends, retries transient failures with backoff, records the outcome and
//! publishes a receipt. A redelivered job finds the delivery already claimed
//! or done and sends nothing.

mod claims;
mod limits;
mod receipts;
mod redis_link;
mod worker;

pub use claims::{ClaimCache, ClaimHint, LocalClaimCache, RedisClaimCache};
pub use limits::{LocalRateLimiter, RateLimiter, RedisRateLimiter};
pub use receipts::ReceiptConsumer;
pub use redis_link::RedisLink;
pub use worker::{ChannelWorker, Outcome, WorkerConfig, WorkerError};

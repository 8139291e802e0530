//! The router and the scheduler: Herald's judgement.
//!
//! The router consumes notification events and decides, for each recipient
//! and channel, whether, when and how to interrupt them: the rules are pure
//! functions in `herald_domain` ([`decide`](herald_domain::decide)); this
//! crate loads their inputs in batches, calls them, and records the outcome
//! (a queued job, a deferral with its timer, a digest membership, a
//! suppression with its reason) with the trace of every rule that decided.
//!
//! The scheduler fires the durable timers those decisions leave behind:
//! deferrals ending, retries' backoffs, digest windows closing, escalations
//! falling due, topics expanded a page at a time.
//!
//! Handling the same event or timer twice is harmless: delivery ids are
//! deterministic, deliveries are inserted only if absent and decided only
//! while they wait, and a duplicate job finds its delivery claimed or done.

mod events;
mod expand;
mod fire;
mod judge;
mod notice;
mod scheduler;

use thiserror::Error;

pub use events::Router;
pub use judge::Routed;
pub use scheduler::{Scheduler, SchedulerConfig};

#[derive(Debug, Error)]
pub enum RouteError {
    /// The input can never be routed: dead-letter it.
    #[error("refused: {0}")]
    Poison(String),
    #[error(transparent)]
    Store(#[from] herald_store::StoreError),
    #[error(transparent)]
    Bus(#[from] herald_bus::BusError),
}

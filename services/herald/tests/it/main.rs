//! Herald end to end: the real app on a random port, real SQLite files,
//! a real SMTP server standing in for the mail provider.

mod support;

mod auth;
mod bad_requests;
mod bad_rules;
mod batches;
mod binary;
mod delivery;
mod digests;
mod fanout;
mod idempotency;
mod inbox;
mod judgement;
mod processes;
mod resilience;
mod scale;

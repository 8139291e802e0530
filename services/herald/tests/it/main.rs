//! Herald end to end: the real app on a random port, real SQLite files,
//! a real SMTP server standing in for the mail provider.

mod support;

mod acceptance;
mod auth;
mod bad_requests;
mod bad_rules;
mod batches;
mod binary;
mod caps;
mod delivery;
mod digests;
mod escalation;
mod fanout;
mod idempotency;
mod inbox;
mod judgement;
mod large_topic;
mod processes;
mod resilience;
mod scale;
mod smtp_relay;
mod week;

//! The `herald` binary's library half: configuration and wiring.
//!
//! This is the one place that picks implementations from configuration
//! (SQLite or PostgreSQL, the embedded bus, file sink or SMTP) and starts the
//! services on them. Tests start the real thing through [`serve`].

pub mod app;
mod backends;
pub mod config;

pub use app::{serve, start_with_clock, Role, Running};
pub use config::{Config, ConfigError};

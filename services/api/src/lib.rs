//! Herald's HTTP API.
//!
//! Requests are parsed into domain types at the edge, so anything invalid is
//! a 4xx with a JSON body before it reaches a queue. Sending never talks to a
//! provider: `POST /v1/notifications` commits the notification and its outbox
//! row in one transaction and answers 202; the [`OutboxRelay`] publishes the
//! row to the events topic afterwards.

mod error;
mod extract;
mod health;
mod inbox;
mod model;
mod notifications;
mod openapi;
mod relay;
mod users;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use herald_bus::Bus;
use herald_domain::Clock;
use herald_store::Store;
use herald_templates::TemplateStore;
use tokio::sync::Notify;
use tower_http::trace::TraceLayer;

pub use error::ApiError;
pub use openapi::ApiDoc;
pub use relay::{OutboxRelay, RelayConfig};

#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            max_body_bytes: 256 * 1024,
        }
    }
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub bus: Arc<dyn Bus>,
    pub templates: TemplateStore,
    pub clock: Arc<dyn Clock>,
    /// Pokes the outbox relay after a commit, so it need not wait for its poll.
    pub relay_wake: Arc<Notify>,
}

/// The API's routes, ready to serve.
pub fn router(state: AppState, config: &ApiConfig) -> axum::Router {
    axum::Router::new()
        .route("/v1/notifications", post(notifications::send))
        .route("/v1/notifications/{id}", get(notifications::get))
        .route("/v1/users/{id}", put(users::put_user).get(users::get_user))
        .route(
            "/v1/users/{id}/devices",
            post(users::add_device).get(users::list_devices),
        )
        .route(
            "/v1/users/{id}/preferences",
            get(users::get_preferences).put(users::put_preferences),
        )
        .route("/v1/users/{id}/inbox", get(inbox::list))
        .route(
            "/v1/users/{id}/inbox/{message}/read",
            post(inbox::mark_read),
        )
        .route("/v1/templates", get(notifications::list_templates))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/openapi.json", get(openapi::serve))
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

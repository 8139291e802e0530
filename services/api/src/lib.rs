//! Herald's HTTP API.
//!
//! Requests are parsed into domain types at the edge, so anything invalid is
//! a 4xx with a JSON body before it reaches a queue. Sending never talks to a
//! provider: `POST /v1/notifications` commits the notification and its outbox
//! row in one transaction and answers 202; the [`OutboxRelay`] publishes the
//! row to the events topic afterwards.

mod auth;
mod categories;
mod commit;
mod deliveries;
mod error;
mod extract;
mod health;
mod inbox;
mod model;
mod notifications;
mod openapi;
pub mod ops;
mod recipients;
mod relay;
mod topics;
mod users;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{get, post, put};
use herald_bus::Bus;
use herald_domain::Clock;
use herald_store::Store;
use herald_templates::TemplateStore;
use tokio::sync::Notify;
use tower_http::trace::TraceLayer;

use auth::Required;
pub use auth::{hash_key, ApiKeys, KeyConfigError, Scope};
pub use commit::NotificationWriter;
pub use error::ApiError;
pub use openapi::ApiDoc;
pub use recipients::RecipientCheck;
pub use relay::{OutboxRelay, RelayConfig};

#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Keys and scopes; empty leaves the API open (loopback only).
    pub keys: ApiKeys,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            max_body_bytes: 256 * 1024,
            keys: ApiKeys::default(),
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
    /// Writes `POST /v1/notifications` requests, in groups under load.
    pub notifications: NotificationWriter,
    /// Checks their recipients exist, in groups under load.
    pub recipients: RecipientCheck,
}

fn scoped(
    routes: axum::Router<AppState>,
    keys: &ApiKeys,
    scopes: &'static [Scope],
) -> axum::Router<AppState> {
    let required = Required {
        keys: keys.clone(),
        scopes,
    };
    routes.route_layer(middleware::from_fn_with_state(required, auth::require))
}

/// The API's routes, ready to serve.
pub fn router(state: AppState, config: &ApiConfig) -> axum::Router {
    let send = axum::Router::new()
        .route("/v1/notifications", post(notifications::send))
        .route(
            "/v1/notifications/{id}",
            get(notifications::get).delete(notifications::cancel),
        )
        .route("/v1/notifications/{id}/deliveries", get(deliveries::list))
        .route("/v1/deliveries/{id}", get(deliveries::get))
        .route("/v1/users/{id}", put(users::put_user).get(users::get_user))
        .route("/v1/templates", get(notifications::list_templates))
        .route(
            "/v1/topics/{name}",
            put(topics::put).get(topics::get).delete(topics::delete),
        )
        .route(
            "/v1/topics/{name}/subscribers",
            post(topics::change_subscribers).get(topics::list_subscribers),
        );
    let admin = axum::Router::new()
        .route("/v1/admin/categories", get(categories::list))
        .route(
            "/v1/admin/categories/{name}",
            put(categories::put).get(categories::get),
        );
    let send_or_inbox = axum::Router::new()
        .route(
            "/v1/users/{id}/devices",
            post(users::add_device).get(users::list_devices),
        )
        .route(
            "/v1/users/{id}/preferences",
            get(users::get_preferences).put(users::put_preferences),
        )
        .route(
            "/v1/users/{id}/preferences/effective",
            get(users::effective_preferences),
        )
        .route("/v1/deliveries/{id}/opened", post(deliveries::opened))
        .route("/v1/users/{id}/inbox", get(inbox::list))
        .route(
            "/v1/users/{id}/inbox/{message}/read",
            post(inbox::mark_read),
        );
    axum::Router::new()
        .merge(scoped(send, &config.keys, &[Scope::Send]))
        .merge(scoped(
            send_or_inbox,
            &config.keys,
            &[Scope::Send, Scope::Inbox],
        ))
        .merge(scoped(admin, &config.keys, &[Scope::Admin]))
        .merge(ops::routes())
        .route("/openapi.json", get(openapi::serve))
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(middleware::from_fn(ops::count_requests))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

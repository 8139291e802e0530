//! What every Herald process serves for its operators, API or not:
//! `/healthz`, `/readyz` and `/metrics`, and the request counter.

use axum::extract::{MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;

use crate::{health, AppState};

/// The probe and metrics routes, for the API's router.
pub fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics))
}

/// A process without the API (router, workers, receipts) serves only these.
pub fn standalone(state: AppState) -> axum::Router {
    routes()
        .fallback(crate::error::not_found)
        .layer(middleware::from_fn(count_requests))
        .with_state(state)
}

/// Prometheus metrics of this process, in the text exposition format.
#[utoipa::path(
    get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"))
)]
pub async fn metrics() -> String {
    herald_telemetry::prometheus().render()
}

/// Counts requests by route template (never the raw path, which holds ids)
/// and status class.
pub async fn count_requests(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let response = next.run(request).await;
    let class = format!("{}xx", response.status().as_u16() / 100);
    metrics::counter!(herald_telemetry::HTTP_REQUESTS, "route" => route, "status" => class)
        .increment(1);
    response
}

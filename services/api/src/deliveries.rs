//! Deliveries: page through a notification's (a topic's thousands), look
//! one up (a digest's carrier, say), or report that a push was opened.

use axum::extract::State;
use axum::Json;
use herald_domain::{DeliveryId, DeliveryState, NotificationId, Receipt, SCHEMA_VERSION};
use herald_store::{DeliveryRecord, OutboxMessage};
use serde::{Deserialize, Serialize};

use crate::extract::{no_notification, notification_id, ApiPath, ApiQuery};
use crate::model::{DeliveriesPage, DeliveryView};
use crate::{ApiError, AppState};

/// The delivery a path names: 400 if it is not a delivery id, 404 if none.
async fn load(state: &AppState, raw: &str) -> Result<DeliveryRecord, ApiError> {
    let id =
        DeliveryId::parse(raw).map_err(|e| ApiError::bad_request("invalid_id", e.to_string()))?;
    state
        .store
        .get_delivery(id)
        .await?
        .ok_or_else(|| ApiError::not_found("delivery_not_found", format!("no delivery {id}")))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesQuery {
    /// Deliveries after this delivery id (the `next` of the previous page).
    #[param(value_type = Option<DeliveryId>)]
    pub after: Option<String>,
    /// Only the deliveries in this state.
    #[param(value_type = Option<DeliveryState>)]
    pub state: Option<String>,
    /// Page size, 1 to 1000 (default 500).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

/// A notification's deliveries in id order, a page at a time, optionally
/// only those in one state: how to read all of a large topic's.
#[utoipa::path(
    get, path = "/v1/notifications/{id}/deliveries", tag = "notifications",
    params(("id" = NotificationId, Path, description = "The id from the 202 answer"), DeliveriesQuery),
    responses(
        (status = 200, body = DeliveriesPage),
        (status = 400, description = "Not a notification id; a bad cursor, state or limit; an unknown query parameter", body = crate::error::ErrorBody),
        (status = 404, description = "No such notification", body = crate::error::ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<DeliveriesQuery>,
) -> Result<Json<DeliveriesPage>, ApiError> {
    let id = notification_id(&id)?;
    let limit = query.limit.unwrap_or(500);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_query",
            "limit must be between 1 and 1000",
        ));
    }
    let bad = |e: &dyn std::fmt::Display| ApiError::bad_request("invalid_query", e.to_string());
    let after = query
        .after
        .map(|a| DeliveryId::parse(&a))
        .transpose()
        .map_err(|e| bad(&e))?;
    let only = query
        .state
        .map(|s| DeliveryState::parse(&s))
        .transpose()
        .map_err(|e| bad(&e))?;
    if state.store.get_notification_only(id).await?.is_none() {
        return Err(no_notification(id));
    }
    let page = state.store.deliveries_page(id, after, only, limit).await?;
    let next = (page.len() as i64 == limit)
        .then(|| page.last().map(|d| d.id))
        .flatten();
    Ok(Json(DeliveriesPage {
        items: page.into_iter().map(DeliveryView::from).collect(),
        next,
    }))
}

/// One delivery with its trace.
#[utoipa::path(
    get, path = "/v1/deliveries/{id}", tag = "notifications",
    params(("id" = DeliveryId, Path)),
    responses(
        (status = 200, body = DeliveryView),
        (status = 400, description = "Not a delivery id", body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<DeliveryView>, ApiError> {
    Ok(Json(load(&state, &id).await?.into()))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OpenedView {
    pub id: DeliveryId,
    pub state: DeliveryState,
}

/// A client reports that the user opened a delivery (a push notification
/// tapped): the delivery becomes `read`, which cancels an escalation
/// waiting on it. Reporting twice is fine.
#[utoipa::path(
    post, path = "/v1/deliveries/{id}/opened", tag = "notifications",
    params(("id" = DeliveryId, Path)),
    responses(
        (status = 200, body = OpenedView),
        (status = 400, description = "Not a delivery id", body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody),
        (status = 409, description = "Not sent yet, or ended without reaching the user", body = crate::error::ErrorBody),
    )
)]
pub async fn opened(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<OpenedView>, ApiError> {
    let record = load(&state, &id).await?;
    let id = record.id;
    match record.state {
        DeliveryState::Read => {}
        DeliveryState::Sent | DeliveryState::Delivered => {
            let now = state.clock.now();
            let receipt = Receipt {
                schema_version: SCHEMA_VERSION,
                delivery_id: id,
                notification_id: record.notification_id,
                user_id: record.user_id.clone(),
                channel: record.channel,
                state: DeliveryState::Read,
                reason: Some("opened".into()),
                provider_message_id: None,
                at: now,
            };
            let payload = serde_json::to_string(&receipt).map_err(|e| ApiError::internal(&e))?;
            state
                .store
                .enqueue_outbox(
                    &OutboxMessage::new("receipts", record.user_id.to_string(), payload),
                    now,
                )
                .await?;
            state.relay_wake.notify_one();
        }
        other => {
            return Err(ApiError::new(
                axum::http::StatusCode::CONFLICT,
                "not_delivered",
                format!("delivery {id} is {other}: only a sent or delivered message can be opened"),
            ))
        }
    }
    Ok(Json(OpenedView {
        id,
        state: DeliveryState::Read,
    }))
}

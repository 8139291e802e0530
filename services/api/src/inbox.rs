//! The in-app inbox.

use axum::extract::State;
use axum::Json;
use herald_domain::{Channel, DeliveryId, DeliveryState, Receipt, UserId, SCHEMA_VERSION};
use herald_store::{MarkRead, OutboxMessage};
use serde::{Deserialize, Serialize};

use crate::extract::{user_id, ApiPath, ApiQuery};
use crate::model::InboxView;
use crate::{ApiError, AppState};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct InboxQuery {
    /// How many of the newest messages, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
}

/// The newest messages in a user's inbox, and how many are unread.
#[utoipa::path(
    get, path = "/v1/users/{id}/inbox", tag = "inbox",
    params(("id" = UserId, Path), InboxQuery),
    responses(
        (status = 200, body = InboxView),
        (status = 400, description = "Bad user id or limit; an unknown query parameter", body = crate::error::ErrorBody),
        (status = 404, description = "No such user", body = crate::error::ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<InboxQuery>,
) -> Result<Json<InboxView>, ApiError> {
    let id = user_id(id)?;
    let limit = query.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_query",
            "limit must be between 1 and 200",
        ));
    }
    if state.store.get_user(&id).await?.is_none() {
        return Err(ApiError::not_found(
            "user_not_found",
            format!("no user {id}"),
        ));
    }
    Ok(Json(state.store.inbox(&id, limit).await?.into()))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReadView {
    #[schema(value_type = DeliveryId)]
    pub id: String,
    pub read: bool,
}

/// Marks a message read; its delivery becomes `read`. Marking twice is fine.
#[utoipa::path(
    post, path = "/v1/users/{id}/inbox/{message}/read", tag = "inbox",
    params(
        ("id" = UserId, Path),
        ("message" = DeliveryId, Path, description = "The inbox item's id"),
    ),
    responses(
        (status = 200, body = ReadView),
        (status = 400, description = "Not a user id or message id", body = crate::error::ErrorBody),
        (status = 404, description = "The user has no such message", body = crate::error::ErrorBody),
    )
)]
pub async fn mark_read(
    State(state): State<AppState>,
    ApiPath((id, message)): ApiPath<(String, String)>,
) -> Result<Json<ReadView>, ApiError> {
    let id = user_id(id)?;
    let message = DeliveryId::parse(&message)
        .map_err(|e| ApiError::bad_request("invalid_id", e.to_string()))?;
    let now = state.clock.now();
    let receipt = |key: &herald_store::InboxItemKey| {
        let receipt = Receipt {
            schema_version: SCHEMA_VERSION,
            delivery_id: key.id,
            notification_id: key.notification_id,
            user_id: key.user_id.clone(),
            channel: Channel::InApp,
            state: DeliveryState::Read,
            reason: None,
            provider_message_id: None,
            at: now,
        };
        let payload = serde_json::to_string(&receipt).unwrap_or_default();
        OutboxMessage::new("receipts", key.user_id.to_string(), payload)
    };
    match state
        .store
        .mark_inbox_read(&id, message, receipt, now)
        .await?
    {
        MarkRead::Marked => state.relay_wake.notify_one(),
        MarkRead::AlreadyRead => {}
        MarkRead::NotFound => {
            return Err(ApiError::not_found(
                "message_not_found",
                format!("user {id} has no inbox message {message}"),
            ))
        }
    }
    Ok(Json(ReadView {
        id: message.to_string(),
        read: true,
    }))
}

//! Sending, and asking how a notification went.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use herald_domain::{
    select_channels, NotificationEvent, NotificationId, NotificationRequest, Recipient, UserId,
};
use herald_store::{Cancelled, Created, OutboxMessage};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::extract::{no_notification, notification_id, ApiJson, ApiPath};
use crate::model::{AcceptedView, CancelledView, NotificationView, TemplateView};
use crate::{ApiError, AppState};

const IDEMPOTENCY_HEADER: &str = "idempotency-key";

/// Sends a notification: checked now, delivered asynchronously.
#[utoipa::path(
    post, path = "/v1/notifications", tag = "notifications",
    request_body = NotificationRequest,
    params(
        ("Idempotency-Key" = Option<String>, Header, nullable = false, pattern = r"^[!-~]{1,255}$", max_length = 255,
         description = "1 to 255 visible ASCII characters. Same key and body: the same answer. Same key, other body: 409."),
    ),
    responses(
        (status = 202, description = "Accepted for delivery", body = AcceptedView),
        (status = 400, description = "Malformed JSON, or a malformed Idempotency-Key", body = crate::error::ErrorBody),
        (status = 409, description = "Idempotency key reused with another body", body = crate::error::ErrorBody),
        (status = 413, description = "Body larger than the server accepts (HERALD_MAX_BODY_BYTES, 256 KiB by default)", body = crate::error::ErrorBody),
        (status = 415, description = "Body not sent as application/json", body = crate::error::ErrorBody),
        (status = 422, description = "A body that does not fit the schema; or one that does but names an \
            unknown template, user or topic, a channel the template lacks, params the template cannot \
            render with, a group_key for a template without a digest window, or a send_at more than 366 \
            days ahead", body = crate::error::ErrorBody),
    )
)]
pub async fn send(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<NotificationRequest>,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    let hash = request_hash(&request)?;
    let now = state.clock.now();
    let request = request
        .validate()
        .map_err(|e| ApiError::unprocessable("invalid_request", e.to_string()))?;
    check_send_at(&request, now)?;

    let template = state.templates.get(&request.template).ok_or_else(|| {
        ApiError::unprocessable(
            "unknown_template",
            format!("unknown template {}", request.template),
        )
    })?;
    let channels = select_channels(
        &request.template,
        &template.channels,
        request.channels.as_deref(),
    )
    .map_err(|e| ApiError::unprocessable("channel_not_in_template", e.to_string()))?;
    if request.group_key.is_some() && template.digest.is_none() {
        return Err(ApiError::unprocessable(
            "group_key_without_digest",
            format!(
                "template {} declares no digest window, so a group_key would group nothing; \
                 add digest = {{ window = \"10m\" }} to its template.toml or leave group_key out",
                request.template
            ),
        ));
    }
    state
        .templates
        .check(&request.template, &channels, &request.params)
        .map_err(|e| ApiError::unprocessable("invalid_params", e.to_string()))?;
    let users: Vec<UserId> = request.users().cloned().collect();
    let unknown = state.recipients.unknown(users).await?;
    if !unknown.is_empty() {
        let shown: Vec<&str> = unknown.iter().take(10).map(|u| u.as_str()).collect();
        return Err(ApiError::unprocessable(
            "unknown_user",
            format!(
                "{} unknown recipient(s): {}; create them with PUT /v1/users/{{id}}",
                unknown.len(),
                shown.join(", ")
            ),
        ));
    }
    for topic in request.topics() {
        if state.store.get_topic(topic).await?.is_none() {
            return Err(ApiError::unprocessable(
                "unknown_topic",
                format!("no topic {topic}; create it with PUT /v1/topics/{topic}"),
            ));
        }
    }

    let id = NotificationId::new();
    let event = NotificationEvent {
        event_id: id.to_string(),
        request,
    };
    let payload = serde_json::to_string(&event).map_err(|e| ApiError::internal(&e))?;
    // Keyed by the first recipient, so a single user's events stay in order.
    let partition_key = event
        .request
        .recipients
        .first()
        .map(|r| match r {
            Recipient::User(user) => user.to_string(),
            Recipient::Topic(topic) => format!("topic:{topic}"),
        })
        .unwrap_or_default();
    let created = state
        .notifications
        .create(
            event,
            key.map(|k| (k, hash)),
            OutboxMessage::new("events", partition_key, payload),
            now,
        )
        .await?;
    match created {
        Created::New(id) => {
            state.relay_wake.notify_one();
            Ok((StatusCode::ACCEPTED, Json(AcceptedView { id })).into_response())
        }
        Created::Replayed(id) => {
            let mut response = (StatusCode::ACCEPTED, Json(AcceptedView { id })).into_response();
            response
                .headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
            Ok(response)
        }
        Created::KeyConflict => Err(ApiError::new(
            StatusCode::CONFLICT,
            "idempotency_key_reused",
            "this Idempotency-Key was used with a different request body",
        )),
    }
}

/// The furthest ahead a notification may be scheduled.
const MAX_SCHEDULE_DAYS: i64 = 366;

fn check_send_at(request: &NotificationRequest, now: DateTime<Utc>) -> Result<(), ApiError> {
    match request.send_at {
        Some(at) if at > now + chrono::Duration::days(MAX_SCHEDULE_DAYS) => {
            Err(ApiError::unprocessable(
                "send_at_too_far",
                format!("send_at may be at most {MAX_SCHEDULE_DAYS} days ahead"),
            ))
        }
        _ => Ok(()),
    }
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(IDEMPOTENCY_HEADER) else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_idempotency_key",
                "Idempotency-Key must be 1 to 255 visible ASCII characters",
            )
        })?;
    Ok(Some(key.to_owned()))
}

/// A hash of the request's meaning: the same JSON with keys in another
/// order or other whitespace hashes the same.
fn request_hash(request: &NotificationRequest) -> Result<String, ApiError> {
    let value = serde_json::to_value(request).map_err(|e| ApiError::internal(&e))?;
    let mut canonical = String::new();
    write_canonical(&value, &mut canonical);
    let digest = Sha256::digest(canonical.as_bytes());
    Ok(digest.iter().map(|b| format!("{b:02x}")).collect())
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The most deliveries `GET /v1/notifications/{id}` lists.
const DELIVERIES_SHOWN: i64 = 2000;

/// A notification and where each of its deliveries stands (the first 2,000;
/// `GET /v1/notifications/{id}/deliveries` pages through the rest).
#[utoipa::path(
    get, path = "/v1/notifications/{id}", tag = "notifications",
    params(("id" = NotificationId, Path, description = "The id from the 202 answer")),
    responses(
        (status = 200, body = NotificationView),
        (status = 400, description = "Not a notification id", body = crate::error::ErrorBody),
        (status = 404, description = "No such notification", body = crate::error::ErrorBody),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<NotificationView>, ApiError> {
    let id = notification_id(&id)?;
    let mut record = state
        .store
        .get_notification_only(id)
        .await?
        .ok_or_else(|| no_notification(id))?;
    record.deliveries = state
        .store
        .first_deliveries_of(id, DELIVERIES_SHOWN)
        .await?;
    let counts = state.store.delivery_counts(id).await?;
    Ok(Json(NotificationView::new(record, counts)))
}

/// Cancels what has not been sent: every delivery still queued or waiting
/// (quiet hours, `send_at`, a cap, a digest window not yet closed) becomes
/// `cancelled`, and recipients not yet routed (a topic still expanding) are
/// not told. Deliveries already sent are not recalled.
#[utoipa::path(
    delete, path = "/v1/notifications/{id}", tag = "notifications",
    params(("id" = NotificationId, Path, description = "The id from the 202 answer")),
    responses(
        (status = 200, body = CancelledView),
        (status = 400, description = "Not a notification id", body = crate::error::ErrorBody),
        (status = 404, description = "No such notification", body = crate::error::ErrorBody),
    )
)]
pub async fn cancel(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<CancelledView>, ApiError> {
    let id = notification_id(&id)?;
    match state
        .store
        .cancel_notification(id, state.clock.now())
        .await?
    {
        Cancelled::NotFound => Err(no_notification(id)),
        Cancelled::Withdrawn(cancelled) => {
            state.relay_wake.notify_one();
            Ok(Json(CancelledView { id, cancelled }))
        }
    }
}

/// The templates this server has loaded.
#[utoipa::path(get, path = "/v1/templates", tag = "notifications", responses((status = 200, body = Vec<TemplateView>)))]
pub async fn list_templates(State(state): State<AppState>) -> Json<Vec<TemplateView>> {
    let views = state
        .templates
        .list()
        .into_iter()
        .map(|t| TemplateView {
            name: t.name.clone(),
            description: t.description.clone(),
            category: t.category.clone(),
            channels: t.channels.clone(),
            locales: t.locales.clone(),
            params: t.params.clone(),
        })
        .collect();
    Json(views)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(json: &str) -> String {
        request_hash(&serde_json::from_str(json).unwrap()).unwrap()
    }

    #[test]
    fn the_request_hash_ignores_key_order_and_whitespace_but_not_content() {
        let a =
            hash(r#"{"template":"welcome","recipients":["1"],"params":{"a":1,"b":{"y":2,"x":3}}}"#);
        let b = hash(
            r#"{ "params": {"b": {"x":3, "y":2}, "a":1}, "recipients":["1"], "template":"welcome" }"#,
        );
        let c =
            hash(r#"{"template":"welcome","recipients":["1"],"params":{"a":2,"b":{"y":2,"x":3}}}"#);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn idempotency_keys_must_be_visible_ascii() {
        let mut headers = HeaderMap::new();
        assert_eq!(idempotency_key(&headers).unwrap(), None);
        headers.insert(IDEMPOTENCY_HEADER, HeaderValue::from_static("order-981"));
        assert_eq!(
            idempotency_key(&headers).unwrap().as_deref(),
            Some("order-981")
        );
        headers.insert(IDEMPOTENCY_HEADER, HeaderValue::from_static("has space"));
        assert!(idempotency_key(&headers).is_err());
        headers.insert(
            IDEMPOTENCY_HEADER,
            HeaderValue::from_str(&"k".repeat(256)).unwrap(),
        );
        assert!(idempotency_key(&headers).is_err());
    }
}

//! Topics: named lists of subscribers a notification can be sent to with
//! `"recipients": [{"topic": "name"}]`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use herald_domain::{TopicName, UserId};
use herald_store::TopicRecord;
use serde::{Deserialize, Serialize};

use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::{ApiError, AppState};

/// The most subscribers one request may add or remove.
const MAX_CHANGE: usize = 10_000;

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TopicBody {
    /// What the topic is for, up to 500 characters, without control characters.
    #[serde(default)]
    #[schema(max_length = 500, pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$")]
    pub description: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TopicView {
    pub name: TopicName,
    pub description: Option<String>,
    pub subscribers: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<TopicRecord> for TopicView {
    fn from(t: TopicRecord) -> Self {
        TopicView {
            name: t.name,
            description: t.description,
            subscribers: t.subscribers,
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

/// `POST /v1/topics/{name}/subscribers`: users to add and to remove.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscribersBody {
    /// Up to 10,000 user ids to subscribe; already subscribed is fine.
    #[serde(default)]
    #[schema(max_items = 10000)]
    pub add: Vec<UserId>,
    /// Up to 10,000 user ids to unsubscribe; not subscribed is fine.
    #[serde(default)]
    #[schema(max_items = 10000)]
    pub remove: Vec<UserId>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SubscribersChanged {
    pub added: u64,
    pub removed: u64,
    pub subscribers: i64,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SubscribersQuery {
    /// Subscribers after this user id (the `next` of the previous page).
    #[param(value_type = Option<UserId>)]
    pub after: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SubscribersPage {
    pub subscribers: Vec<UserId>,
    /// Pass as `after` for the next page; absent on the last one.
    pub next: Option<UserId>,
}

fn topic_name(raw: String) -> Result<TopicName, ApiError> {
    TopicName::parse(raw).map_err(|e| ApiError::bad_request("invalid_topic", e.to_string()))
}

fn no_topic(name: &TopicName) -> ApiError {
    ApiError::not_found(
        "topic_not_found",
        format!("no topic {name}; create it with PUT /v1/topics/{name}"),
    )
}

/// Creates a topic or updates its description.
#[utoipa::path(
    put, path = "/v1/topics/{name}", tag = "topics",
    params(("name" = TopicName, Path)),
    request_body = TopicBody,
    responses(
        (status = 200, description = "Updated", body = TopicView),
        (status = 201, description = "Created", body = TopicView),
        (status = 400, description = "Malformed JSON or name", body = crate::error::ErrorBody),
        (status = 413, description = "Body larger than the server accepts (HERALD_MAX_BODY_BYTES, 256 KiB by default)", body = crate::error::ErrorBody),
        (status = 415, description = "Body not sent as application/json", body = crate::error::ErrorBody),
        (status = 422, description = "Unknown field; a description too long or with control characters", body = crate::error::ErrorBody),
    )
)]
pub async fn put(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<TopicBody>,
) -> Result<(StatusCode, Json<TopicView>), ApiError> {
    let name = topic_name(name)?;
    if let Some(d) = &body.description {
        if d.chars().count() > 500 || d.chars().any(char::is_control) {
            return Err(ApiError::unprocessable(
                "invalid_body",
                "description must be at most 500 characters, without control characters",
            ));
        }
    }
    let created = state
        .store
        .put_topic(&name, body.description.as_deref(), state.clock.now())
        .await?;
    let record = state
        .store
        .get_topic(&name)
        .await?
        .ok_or_else(|| no_topic(&name))?;
    Ok(crate::extract::put_answer(created, record.into()))
}

#[utoipa::path(
    get, path = "/v1/topics/{name}", tag = "topics",
    params(("name" = TopicName, Path)),
    responses(
        (status = 200, body = TopicView),
        (status = 400, description = "Not a topic name", body = crate::error::ErrorBody),
        (status = 404, description = "No such topic", body = crate::error::ErrorBody),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<TopicView>, ApiError> {
    let name = topic_name(name)?;
    let record = state
        .store
        .get_topic(&name)
        .await?
        .ok_or_else(|| no_topic(&name))?;
    Ok(Json(record.into()))
}

/// Deletes a topic and its subscriptions. Notifications already expanding
/// to it finish with the subscribers they have not reached yet dropped.
#[utoipa::path(
    delete, path = "/v1/topics/{name}", tag = "topics",
    params(("name" = TopicName, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Not a topic name", body = crate::error::ErrorBody),
        (status = 404, description = "No such topic", body = crate::error::ErrorBody),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let name = topic_name(name)?;
    if !state.store.delete_topic(&name).await? {
        return Err(no_topic(&name));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Adds and removes subscribers in bulk, in one transaction.
#[utoipa::path(
    post, path = "/v1/topics/{name}/subscribers", tag = "topics",
    params(("name" = TopicName, Path)),
    request_body = SubscribersBody,
    responses(
        (status = 200, body = SubscribersChanged),
        (status = 400, description = "Malformed JSON or name", body = crate::error::ErrorBody),
        (status = 404, description = "No such topic", body = crate::error::ErrorBody),
        (status = 413, description = "Body larger than the server accepts (HERALD_MAX_BODY_BYTES, 256 KiB by default)", body = crate::error::ErrorBody),
        (status = 415, description = "Body not sent as application/json", body = crate::error::ErrorBody),
        (status = 422, description = "A body that does not fit the schema (unknown field, bad user ids, \
            more than 10,000 at once); or one that does but adds users that do not exist", body = crate::error::ErrorBody),
    )
)]
pub async fn change_subscribers(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<SubscribersBody>,
) -> Result<Json<SubscribersChanged>, ApiError> {
    let name = topic_name(name)?;
    if body.add.len() > MAX_CHANGE || body.remove.len() > MAX_CHANGE {
        return Err(ApiError::unprocessable(
            "too_many_subscribers",
            format!("add and remove may each name at most {MAX_CHANGE} users per request"),
        ));
    }
    if state.store.get_topic(&name).await?.is_none() {
        return Err(no_topic(&name));
    }
    let unknown = state.store.unknown_users(&body.add).await?;
    if !unknown.is_empty() {
        let shown: Vec<&str> = unknown.iter().take(10).map(|u| u.as_str()).collect();
        return Err(ApiError::unprocessable(
            "unknown_user",
            format!(
                "{} unknown user(s): {}; create them with PUT /v1/users/{{id}}",
                unknown.len(),
                shown.join(", ")
            ),
        ));
    }
    let change = state
        .store
        .change_subscribers(&name, &body.add, &body.remove, state.clock.now())
        .await?;
    let Some(change) = change else {
        return Err(no_topic(&name));
    };
    let subscribers = state
        .store
        .get_topic(&name)
        .await?
        .map_or(0, |t| t.subscribers);
    Ok(Json(SubscribersChanged {
        added: change.added,
        removed: change.removed,
        subscribers,
    }))
}

/// Lists subscribers in user-id order, a page at a time.
#[utoipa::path(
    get, path = "/v1/topics/{name}/subscribers", tag = "topics",
    params(("name" = TopicName, Path), SubscribersQuery),
    responses(
        (status = 200, body = SubscribersPage),
        (status = 400, description = "Bad name, cursor or limit; an unknown query parameter", body = crate::error::ErrorBody),
        (status = 404, description = "No such topic", body = crate::error::ErrorBody),
    )
)]
pub async fn list_subscribers(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(query): ApiQuery<SubscribersQuery>,
) -> Result<Json<SubscribersPage>, ApiError> {
    let name = topic_name(name)?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_query",
            "limit must be between 1 and 1000",
        ));
    }
    let after = query
        .after
        .map(UserId::parse)
        .transpose()
        .map_err(|e| ApiError::bad_request("invalid_query", e.to_string()))?;
    if state.store.get_topic(&name).await?.is_none() {
        return Err(no_topic(&name));
    }
    let subscribers = state
        .store
        .topic_subscribers(&name, after.as_ref(), limit)
        .await?;
    let next = (subscribers.len() as i64 == limit)
        .then(|| subscribers.last().cloned())
        .flatten();
    Ok(Json(SubscribersPage { subscribers, next }))
}

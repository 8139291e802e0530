//! Users, their devices and their preferences.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, FixedOffset, Utc};
use herald_domain::{
    Category, Channel, DecidingRule, Device, DigestSchedule, Preferences, Priority, TimeZoneName,
    UserId,
};
use serde::{Deserialize, Serialize};

use crate::extract::{user_id, ApiJson, ApiPath, ApiQuery};
use crate::model::{UserBody, UserView};
use crate::{ApiError, AppState};

fn unknown_user(id: &UserId) -> ApiError {
    ApiError::not_found(
        "user_not_found",
        format!("no user {id}; create it with PUT /v1/users/{id}"),
    )
}

/// Creates or replaces a user's profile.
#[utoipa::path(
    put, path = "/v1/users/{id}", tag = "users",
    params(("id" = UserId, Path, description = "Your id for the user")),
    request_body = UserBody,
    responses(
        (status = 200, description = "Replaced", body = UserView),
        (status = 201, description = "Created", body = UserView),
        (status = 400, description = "Malformed JSON or user id", body = crate::error::ErrorBody),
        (status = 413, description = "Body larger than the server accepts (HERALD_MAX_BODY_BYTES, 256 KiB by default)", body = crate::error::ErrorBody),
        (status = 415, description = "Body not sent as application/json", body = crate::error::ErrorBody),
        (status = 422, description = "Unknown field; invalid e-mail, phone, time zone, locale or name", body = crate::error::ErrorBody),
    )
)]
pub async fn put_user(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<UserBody>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    let id = user_id(id)?;
    let profile = body
        .into_profile()
        .map_err(|m| ApiError::unprocessable("invalid_body", m))?;
    let (record, created) = state
        .store
        .put_user(&id, &profile, state.clock.now())
        .await?;
    Ok(crate::extract::put_answer(created, record.into()))
}

#[utoipa::path(
    get, path = "/v1/users/{id}", tag = "users",
    params(("id" = UserId, Path)),
    responses(
        (status = 200, body = UserView),
        (status = 400, description = "Not a user id", body = crate::error::ErrorBody),
        (status = 404, description = "No such user", body = crate::error::ErrorBody),
    )
)]
pub async fn get_user(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<UserView>, ApiError> {
    let id = user_id(id)?;
    let record = state
        .store
        .get_user(&id)
        .await?
        .ok_or_else(|| unknown_user(&id))?;
    Ok(Json(record.into()))
}

/// Registers a push token. A token registered to another user moves here.
#[utoipa::path(
    post, path = "/v1/users/{id}/devices", tag = "users",
    params(("id" = UserId, Path)),
    request_body = Device,
    responses(
        (status = 201, body = Device),
        (status = 400, description = "Malformed JSON or user id", body = crate::error::ErrorBody),
        (status = 404, description = "No such user", body = crate::error::ErrorBody),
        (status = 413, description = "Body larger than the server accepts (HERALD_MAX_BODY_BYTES, 256 KiB by default)", body = crate::error::ErrorBody),
        (status = 415, description = "Body not sent as application/json", body = crate::error::ErrorBody),
        (status = 422, description = "Unknown field, invalid platform or token", body = crate::error::ErrorBody),
    )
)]
pub async fn add_device(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(device): ApiJson<Device>,
) -> Result<(StatusCode, Json<Device>), ApiError> {
    let id = user_id(id)?;
    if !state
        .store
        .add_device(&id, &device, state.clock.now())
        .await?
    {
        return Err(unknown_user(&id));
    }
    Ok((StatusCode::CREATED, Json(device)))
}

#[utoipa::path(
    get, path = "/v1/users/{id}/devices", tag = "users",
    params(("id" = UserId, Path)),
    responses(
        (status = 200, body = Vec<Device>),
        (status = 400, description = "Not a user id", body = crate::error::ErrorBody),
        (status = 404, description = "No such user", body = crate::error::ErrorBody),
    )
)]
pub async fn list_devices(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Vec<Device>>, ApiError> {
    let id = user_id(id)?;
    if state.store.get_user(&id).await?.is_none() {
        return Err(unknown_user(&id));
    }
    Ok(Json(state.store.devices(&id).await?))
}

#[utoipa::path(
    get, path = "/v1/users/{id}/preferences", tag = "users",
    params(("id" = UserId, Path)),
    responses(
        (status = 200, body = Preferences),
        (status = 400, description = "Not a user id", body = crate::error::ErrorBody),
        (status = 404, description = "No such user", body = crate::error::ErrorBody),
    )
)]
pub async fn get_preferences(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Preferences>, ApiError> {
    let id = user_id(id)?;
    let record = state
        .store
        .get_user(&id)
        .await?
        .ok_or_else(|| unknown_user(&id))?;
    Ok(Json(record.preferences))
}

/// Replaces a user's preferences: channel-wide and per category × channel.
///
/// A quiet window's `start` and `end` must differ (a rule JSON Schema cannot
/// state; 422 otherwise).
#[utoipa::path(
    put, path = "/v1/users/{id}/preferences", tag = "users",
    params(("id" = UserId, Path)),
    request_body = Preferences,
    responses(
        (status = 200, body = Preferences),
        (status = 400, description = "Malformed JSON or user id", body = crate::error::ErrorBody),
        (status = 404, description = "No such user", body = crate::error::ErrorBody),
        (status = 413, description = "Body larger than the server accepts (HERALD_MAX_BODY_BYTES, 256 KiB by default)", body = crate::error::ErrorBody),
        (status = 415, description = "Body not sent as application/json", body = crate::error::ErrorBody),
        (status = 422, description = "Unknown field, channel or category name; a bad quiet window or digest", body = crate::error::ErrorBody),
    )
)]
pub async fn put_preferences(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(preferences): ApiJson<Preferences>,
) -> Result<Json<Preferences>, ApiError> {
    let id = user_id(id)?;
    if !state
        .store
        .put_preferences(&id, &preferences, state.clock.now())
        .await?
    {
        return Err(unknown_user(&id));
    }
    Ok(Json(preferences))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EffectiveQuery {
    /// The category to resolve.
    #[param(value_type = Category)]
    pub category: String,
    /// Resolve as a notification of this priority would be (default normal),
    /// to see what `critical` may bypass.
    pub priority: Option<Priority>,
}

/// Whether a channel is on, and the rule that decided it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EffectiveChannel {
    pub enabled: bool,
    pub decided_by: DecidingRule,
}

/// What a notification in one category would meet for this user, now.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EffectiveView {
    pub user_id: UserId,
    pub category: Category,
    pub priority: Priority,
    /// The user's zone, in which quiet hours and digests are read.
    pub time_zone: String,
    #[schema(value_type = BTreeMap<String, EffectiveChannel>)]
    pub channels: BTreeMap<Channel, EffectiveChannel>,
    /// If the user is inside quiet hours now: when they end, in their offset.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub quiet_until: Option<DateTime<FixedOffset>>,
    /// Whether this priority passes quiet hours in this category.
    pub bypasses_quiet_hours: bool,
    /// The user's scheduled digest for this category, if any.
    pub digest: Option<DigestSchedule>,
    /// When that digest is next sent, in the user's offset.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_digest_at: Option<DateTime<FixedOffset>>,
}

/// Resolves a user's preferences for one category: per channel, whether it
/// is on and which rule decided (`required_category`, `critical_bypass`,
/// `user_category_switch`, `category_default`, `user_channel_switch`,
/// `default`), and whether quiet hours or a digest would hold it now.
#[utoipa::path(
    get, path = "/v1/users/{id}/preferences/effective", tag = "users",
    params(("id" = UserId, Path), EffectiveQuery),
    responses(
        (status = 200, body = EffectiveView),
        (status = 400, description = "Bad user id, category or priority; an unknown query parameter", body = crate::error::ErrorBody),
        (status = 404, description = "No such user", body = crate::error::ErrorBody),
    )
)]
pub async fn effective_preferences(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<EffectiveQuery>,
) -> Result<Json<EffectiveView>, ApiError> {
    let id = user_id(id)?;
    let category = crate::categories::category(query.category)?;
    let priority = query.priority.unwrap_or_default();
    let user = state
        .store
        .get_user(&id)
        .await?
        .ok_or_else(|| unknown_user(&id))?;
    let policy = state
        .store
        .policies(std::slice::from_ref(&category))
        .await?
        .remove(&category)
        .unwrap_or_default();
    let tz = TimeZoneName::or_utc(user.profile.time_zone.as_ref());
    let now = state.clock.now();
    let prefs = &user.preferences;
    let channels = Channel::ALL
        .into_iter()
        .map(|channel| {
            let e = prefs.effective(&policy, &category, channel, priority);
            (
                channel,
                EffectiveChannel {
                    enabled: e.enabled,
                    decided_by: e.decided_by,
                },
            )
        })
        .collect();
    let local = |at: DateTime<Utc>| at.with_timezone(&tz).fixed_offset();
    let digest = prefs.digest_for(&category).copied();
    Ok(Json(EffectiveView {
        user_id: id,
        category,
        priority,
        time_zone: tz.name().to_owned(),
        channels,
        quiet_until: prefs.quiet_hours.quiet_until(tz, now).map(local),
        bypasses_quiet_hours: policy.bypasses_quiet_hours(priority),
        next_digest_at: digest.map(|d| local(d.next_after(tz, now))),
        digest,
    }))
}

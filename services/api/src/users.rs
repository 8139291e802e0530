//! Users, their devices and their preferences.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use herald_domain::{Device, Preferences, UserId};

use crate::extract::{user_id, ApiJson, ApiPath};
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
    params(("id" = String, Path, description = "Your id for the user")),
    request_body = UserBody,
    responses(
        (status = 200, description = "Replaced", body = UserView),
        (status = 201, description = "Created", body = UserView),
        (status = 400, body = crate::error::ErrorBody),
        (status = 422, description = "Invalid e-mail, phone, time zone or locale", body = crate::error::ErrorBody),
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
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(record.into())))
}

#[utoipa::path(
    get, path = "/v1/users/{id}", tag = "users",
    params(("id" = String, Path)),
    responses((status = 200, body = UserView), (status = 404, body = crate::error::ErrorBody))
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
    params(("id" = String, Path)),
    request_body = Device,
    responses(
        (status = 201, body = Device),
        (status = 404, body = crate::error::ErrorBody),
        (status = 422, description = "Invalid platform or token", body = crate::error::ErrorBody),
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
    params(("id" = String, Path)),
    responses((status = 200, body = Vec<Device>), (status = 404, body = crate::error::ErrorBody))
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
    params(("id" = String, Path)),
    responses((status = 200, body = Preferences), (status = 404, body = crate::error::ErrorBody))
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
#[utoipa::path(
    put, path = "/v1/users/{id}/preferences", tag = "users",
    params(("id" = String, Path)),
    request_body = Preferences,
    responses(
        (status = 200, body = Preferences),
        (status = 404, body = crate::error::ErrorBody),
        (status = 422, description = "Unknown channel or category name", body = crate::error::ErrorBody),
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

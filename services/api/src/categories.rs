//! Categories: the operator's rules per category (`/v1/admin/categories`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use herald_domain::{Category, CategoryPolicy};
use herald_store::CategoryRecord;
use serde::Serialize;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

use crate::extract::{ApiJson, ApiPath};
use crate::{ApiError, AppState};

/// A category and its policy.
#[derive(Debug, Serialize)]
pub struct CategoryView {
    pub name: Category,
    #[serde(flatten)]
    pub policy: CategoryPolicy,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The policy's own fields and `name`, `created_at`, `updated_at` in one
/// object. Not an `allOf` of the policy: the policy as a request body admits
/// no other fields, which would make every answer invalid against it.
impl PartialSchema for CategoryView {
    fn schema() -> RefOr<Schema> {
        let mut view = match CategoryPolicy::schema() {
            RefOr::T(Schema::Object(policy)) => policy,
            _ => unreachable!("CategoryPolicy derives an object schema"),
        };
        view.description = Some("A category and its policy.".into());
        view.additional_properties = None;
        let timestamp = || {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
        };
        view.properties.insert(
            "name".into(),
            Ref::from_schema_name(Category::name()).into(),
        );
        view.properties
            .insert("created_at".into(), timestamp().into());
        view.properties
            .insert("updated_at".into(), timestamp().into());
        // Answers always carry these, whatever the request left out.
        for field in [
            "name",
            "required",
            "default_enabled",
            "critical_bypasses_opt_out",
            "critical_bypasses_quiet_hours",
            "created_at",
            "updated_at",
        ] {
            view.required.push(field.into());
        }
        Schema::Object(view).into()
    }
}

impl ToSchema for CategoryView {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((Category::name().into_owned(), Category::schema()));
        <CategoryPolicy as ToSchema>::schemas(schemas);
    }
}

impl From<CategoryRecord> for CategoryView {
    fn from(r: CategoryRecord) -> Self {
        CategoryView {
            name: r.name,
            policy: r.policy,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

pub(crate) fn category(raw: String) -> Result<Category, ApiError> {
    Category::parse(raw).map_err(|e| ApiError::bad_request("invalid_category", e.to_string()))
}

/// Creates or replaces a category's policy: whether users may opt out,
/// whether it is on by default, what `critical` may bypass, when its
/// notifications go stale, and its frequency caps.
#[utoipa::path(
    put, path = "/v1/admin/categories/{name}", tag = "admin",
    params(("name" = Category, Path)),
    request_body = CategoryPolicy,
    responses(
        (status = 200, description = "Replaced", body = CategoryView),
        (status = 201, description = "Created", body = CategoryView),
        (status = 400, description = "Malformed JSON or name", body = crate::error::ErrorBody),
        (status = 413, description = "Body larger than the server accepts (HERALD_MAX_BODY_BYTES, 256 KiB by default)", body = crate::error::ErrorBody),
        (status = 415, description = "Body not sent as application/json", body = crate::error::ErrorBody),
        (status = 422, description = "Unknown field; a bad description, duration or cap", body = crate::error::ErrorBody),
    )
)]
pub async fn put(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiJson(policy): ApiJson<CategoryPolicy>,
) -> Result<(StatusCode, Json<CategoryView>), ApiError> {
    let name = category(name)?;
    let policy = policy
        .validate()
        .map_err(|e| ApiError::unprocessable("invalid_policy", e.to_string()))?;
    let (record, created) = state
        .store
        .put_category(&name, &policy, state.clock.now())
        .await?;
    Ok(crate::extract::put_answer(created, record.into()))
}

#[utoipa::path(
    get, path = "/v1/admin/categories/{name}", tag = "admin",
    params(("name" = Category, Path)),
    responses(
        (status = 200, body = CategoryView),
        (status = 400, description = "Not a category name", body = crate::error::ErrorBody),
        (status = 404, description = "Never defined: the default policy applies", body = crate::error::ErrorBody),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<CategoryView>, ApiError> {
    let name = category(name)?;
    let record = state.store.get_category(&name).await?.ok_or_else(|| {
        ApiError::not_found(
            "category_not_found",
            format!("no category {name} is defined; notifications in it get the default policy"),
        )
    })?;
    Ok(Json(record.into()))
}

/// Every defined category.
#[utoipa::path(
    get, path = "/v1/admin/categories", tag = "admin",
    responses((status = 200, body = Vec<CategoryView>))
)]
pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<CategoryView>>, ApiError> {
    let records = state.store.list_categories().await?;
    Ok(Json(records.into_iter().map(CategoryView::from).collect()))
}

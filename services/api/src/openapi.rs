//! The OpenAPI description, generated from the handlers themselves.
//!
//! Each handler's annotation lists what it can answer; the answers every
//! `/v1` route shares because of how it is mounted (an API key checked
//! before the handler runs: 401, 403) or because it reads the database (503
//! while the database is unreachable) are added here, once.

use axum::Json;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi};

/// The name of the security scheme in the document.
const API_KEY: &str = "api_key";

#[derive(OpenApi)]
#[openapi(
    info(title = "Herald", description = "Multi-channel notifications: e-mail, push, SMS and in-app."),
    modifiers(&ApiKeys),
    paths(
        crate::notifications::send,
        crate::notifications::get,
        crate::notifications::cancel,
        crate::notifications::list_templates,
        crate::deliveries::list,
        crate::deliveries::get,
        crate::deliveries::opened,
        crate::topics::put,
        crate::topics::get,
        crate::topics::delete,
        crate::topics::change_subscribers,
        crate::topics::list_subscribers,
        crate::categories::put,
        crate::categories::get,
        crate::categories::list,
        crate::users::effective_preferences,
        crate::users::put_user,
        crate::users::get_user,
        crate::users::add_device,
        crate::users::list_devices,
        crate::users::get_preferences,
        crate::users::put_preferences,
        crate::inbox::list,
        crate::inbox::mark_read,
        crate::health::healthz,
        crate::health::readyz,
        crate::ops::metrics,
        serve,
    ),
    tags(
        (name = "notifications", description = "Send and follow notifications"),
        (name = "users", description = "Recipients, their devices and preferences"),
        (name = "inbox", description = "The in-app inbox"),
        (name = "topics", description = "Subscriber lists for fan-out"),
        (name = "admin", description = "Operator settings: categories"),
        (name = "health", description = "Probes"),
    )
)]
pub struct ApiDoc;

/// Every `/v1` route sits behind the API-key check (`auth::require`): it takes
/// `Authorization: Bearer <key>` and answers 401 without a known key and 403
/// when the key lacks the route's scope. The probes and this document are open.
struct ApiKeys;

impl Modify for ApiKeys {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            API_KEY,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key from HERALD_API_KEYS, as `Authorization: Bearer <key>`. \
                         A server started without keys (loopback only) does not ask for one.",
                    ))
                    .build(),
            ),
        );
        let error = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build()
        };
        for (path, item) in openapi.paths.paths.iter_mut() {
            if !path.starts_with("/v1/") {
                continue;
            }
            let operations: [&mut Option<Operation>; 8] = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.options,
                &mut item.head,
                &mut item.patch,
                &mut item.trace,
            ];
            for operation in operations.into_iter().flatten() {
                operation.security = Some(vec![SecurityRequirement::new(
                    API_KEY,
                    Vec::<String>::new(),
                )]);
                let responses = &mut operation.responses.responses;
                responses
                    .entry("401".into())
                    .or_insert_with(|| error("No API key, or an unknown one").into());
                responses
                    .entry("403".into())
                    .or_insert_with(|| error("The API key lacks this endpoint's scope").into());
                responses.entry("503".into()).or_insert_with(|| {
                    error("The database is unreachable for the moment (`unavailable`); try again")
                        .into()
                });
            }
        }
    }
}

/// This document.
#[utoipa::path(
    get, path = "/openapi.json", tag = "health",
    responses((status = 200, description = "The OpenAPI 3.1 description of this API", content_type = "application/json"))
)]
pub async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

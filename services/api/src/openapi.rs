//! The OpenAPI description, generated from the handlers themselves.

use axum::Json;
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(title = "Herald", description = "Multi-channel notifications: e-mail, push, SMS and in-app."),
    paths(
        crate::notifications::send,
        crate::notifications::get,
        crate::notifications::cancel,
        crate::notifications::list_templates,
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

pub async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

//! The one place errors become HTTP answers: `{"error": {"code", "message"}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: `invalid_json`, `unknown_template`, …
    pub code: String,
    /// For people.
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// A failure on our side. The cause goes to the log; the caller gets an
    /// opaque message, since it may name internals.
    pub fn internal(cause: &dyn std::error::Error) -> Self {
        let mut chain = cause.to_string();
        let mut source = cause.source();
        while let Some(s) = source {
            chain.push_str(": ");
            chain.push_str(&s.to_string());
            source = s.source();
        }
        tracing::error!(error = %chain, "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the server log",
        )
    }
}

impl From<herald_store::StoreError> for ApiError {
    fn from(e: herald_store::StoreError) -> Self {
        if e.is_retriable() {
            let mut err = ApiError::internal(&e);
            err.status = StatusCode::SERVICE_UNAVAILABLE;
            err.code = "unavailable";
            err.message = "the database is unavailable; try again".into();
            return err;
        }
        ApiError::internal(&e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

pub async fn not_found() -> ApiError {
    ApiError::not_found("not_found", "no such endpoint")
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_that_may_answer_later_is_a_503_and_any_other_store_failure_a_500() {
        let later = ApiError::from(herald_store::StoreError::Closed);
        assert_eq!(
            (later.status, later.code),
            (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
        );
        let broken = ApiError::from(herald_store::StoreError::Corrupt {
            what: "user",
            detail: "bad row".into(),
        });
        assert_eq!(
            (broken.status, broken.code),
            (StatusCode::INTERNAL_SERVER_ERROR, "internal")
        );
    }
}

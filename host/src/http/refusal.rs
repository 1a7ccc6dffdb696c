//! How every route says no: a [`Refusal`] is a JSON body
//! `{"error": code, "message": text}` with a precise status, tagged with
//! its code ([`Refused`]) so that one middleware counts it. Handlers and
//! middleware never build an error response by hand.

use axum::{
    Json,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::json;

/// A refused request's reason code, attached to its response.
#[derive(Debug, Clone, Copy)]
pub struct Refused(pub &'static str);

/// A refusal: status, machine-readable code, and a sentence for people.
#[derive(Debug)]
pub struct Refusal {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl Refusal {
    /// A refusal with its status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into() }
    }

    /// Its machine-readable code, such as `too_deep`.
    pub fn code(&self) -> &'static str {
        self.code
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = Json(json!({ "error": self.code, "message": self.message }));
        let refused = axum::Extension(Refused(self.code));
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            return (self.status, [(header::RETRY_AFTER, "5")], refused, body).into_response();
        }
        (self.status, refused, body).into_response()
    }
}

/// 404 for any other path.
pub async fn not_found(uri: axum::http::Uri) -> Refusal {
    Refusal::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no such endpoint: {}; events go to POST /receive-event", uri.path()),
    )
}

/// 405 with `Allow`, for a route's other methods.
pub async fn method_not_allowed(allow: &'static str, method: axum::http::Method, uri: axum::http::Uri) -> Response {
    let refusal = Refusal::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {}; use {allow}", uri.path()),
    );
    ([(header::ALLOW, allow)], refusal).into_response()
}

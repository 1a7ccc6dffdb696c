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
    /// `Retry-After`, in seconds: when sending again may succeed.
    retry_after_secs: Option<u64>,
}

impl Refusal {
    /// A refusal with its status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        // A 503 is always passing: say when to try again.
        let retry_after_secs = (status == StatusCode::SERVICE_UNAVAILABLE).then_some(5);
        Self { status, code, message: message.into(), retry_after_secs }
    }

    /// With `Retry-After: secs`.
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs);
        self
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
        match self.retry_after_secs {
            Some(secs) => (self.status, [(header::RETRY_AFTER, secs.to_string())], refused, body).into_response(),
            None => (self.status, refused, body).into_response(),
        }
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

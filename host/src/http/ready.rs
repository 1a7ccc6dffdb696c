//! `GET /ready`: 200 when ready, else 503 with the reasons
//! ([`Health::reasons`]).

use std::sync::Arc;

use axum::{
    Json,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::json;

use crate::telemetry::health::Health;

/// `GET /ready`.
pub async fn ready(State(health): State<Arc<Health>>) -> Response {
    let reasons = health.reasons();
    if reasons.is_empty() {
        return Json(json!({ "status": "ready" })).into_response();
    }
    (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "not_ready", "reasons": reasons }))).into_response()
}

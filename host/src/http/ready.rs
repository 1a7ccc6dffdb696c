//! `GET /ready`: 200 when ready, else 503 with the reasons: in full
//! ([`Health::reasons`], which name the HIS's host, user and schema) for
//! the admin, as their kinds ([`Health::reason_kinds`]) for anyone else
//! on this machine. The log has the full reasons too.

use std::sync::Arc;

use axum::{
    Extension, Json,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::json;

use crate::{http::Caller, pipeline::quota::Quota, telemetry::health::Health};

/// `GET /ready`.
pub async fn ready(
    State((health, quota)): State<(Arc<Health>, Arc<Quota>)>,
    Extension(caller): Extension<Caller>,
) -> Response {
    let mut reasons = match caller {
        Caller::Admin => health.reasons(),
        Caller::Local => health.reason_kinds().into_iter().map(str::to_string).collect(),
    };
    if quota.is_full() {
        let usage = quota.usage();
        reasons.push(match caller {
            Caller::Admin => format!(
                "the journal is full: it holds {} bytes, its limit is {} (journal.max_bytes)",
                usage.used_bytes, usage.limits.max_bytes
            ),
            Caller::Local => "journal_full".to_string(),
        });
    }
    if reasons.is_empty() {
        return Json(json!({ "status": "ready" })).into_response();
    }
    (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "not_ready", "reasons": reasons }))).into_response()
}

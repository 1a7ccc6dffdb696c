//! Everything that speaks HTTP: the accept loop ([`server`]), the routes
//! ([`intake`], [`admin`], [`ready`], [`metrics`]), and what guards them
//! ([`auth`], [`ratelimit`]); every refusal is a [`refusal::Refusal`].
//!
//! Routes call down into the pipeline (the committer, the journal's
//! operator queries) and read telemetry; nothing below imports them.

pub mod admin;
pub mod auth;
pub mod body;
pub mod intake;
pub mod metrics;
pub mod ratelimit;
pub mod ready;
pub mod refusal;
pub mod server;

use std::{net::SocketAddr, sync::Arc};

use axum::{
    Json, Router,
    extract::{ConnectInfo, State},
    http::StatusCode,
    middleware::from_fn_with_state,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde_json::json;

use self::{
    admin::Admin,
    intake::Intake,
    metrics::Scrape,
    refusal::{Refusal, method_not_allowed, not_found},
};

/// Every route: intake, `/health`, `/ready`, `/metrics`, and the admin routes under
/// `/admin` when `admin` is given (that is, when `server.admin_token` is
/// set). The rate limit, when set, guards intake and admin; every refusal
/// is counted.
pub fn router(intake: Intake, admin: Option<Admin>) -> Router {
    let metrics = intake.metrics.clone();
    let scrape = Scrape { metrics: metrics.clone(), journal_path: intake.journal_path.clone() };
    let readiness = intake.health.clone();
    let limiter = intake.rate_limiter.clone();
    let admin_token = intake.admin_token.clone();
    let mut guarded = Router::new()
        .route("/receive-event", post(intake::receive_event).fallback(|m, u| method_not_allowed("POST", m, u)))
        // Shared, not cloned per request.
        .with_state(Arc::new(intake));
    if let Some(admin) = admin {
        guarded = guarded.nest("/admin", admin::routes(admin));
    }
    if let Some(limiter) = limiter {
        guarded = guarded.layer(from_fn_with_state(limiter, ratelimit::enforce));
    }
    let monitoring = Router::new()
        .route("/ready", get(ready::ready).with_state(readiness).fallback(|m, u| method_not_allowed("GET, HEAD", m, u)))
        .route(
            "/metrics",
            get(metrics::serve).with_state(scrape).fallback(|m, u| method_not_allowed("GET, HEAD", m, u)),
        )
        .route_layer(from_fn_with_state(admin_token, local_or_admin));
    Router::new()
        .route("/health", get(health).fallback(|m, u| method_not_allowed("GET, HEAD", m, u)))
        .merge(monitoring)
        .merge(guarded)
        .fallback(not_found)
        .layer(from_fn_with_state(metrics, metrics::count))
}

/// `/ready` and `/metrics` tell how the HIS is doing (its error messages
/// name hosts and users): they answer this machine, and others only with
/// `Authorization: Bearer <server.admin_token>`.
async fn local_or_admin(
    State(admin_token): State<Option<Arc<str>>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let admin = admin_token.as_deref().is_some_and(|token| auth::bearer_matches(request.headers(), token));
    if peer.ip().to_canonical().is_loopback() || admin {
        return next.run(request).await;
    }
    Refusal::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        format!(
            "{} answers this machine only; from another, send Authorization: Bearer <server.admin_token>",
            request.uri().path()
        ),
    )
    .into_response()
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

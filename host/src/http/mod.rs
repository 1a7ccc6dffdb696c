//! Everything that speaks HTTP: the accept loop ([`server`]), the routes
//! ([`intake`], [`admin`], [`ready`], [`metrics`]), and what guards them
//! ([`auth`], [`ratelimit`]); every refusal is a [`refusal::Refusal`].
//!
//! Two listeners: intake (`server.listen`, what a proxy may expose) serves
//! only `POST /receive-event` and `GET /health`; the operator's port
//! (`server.admin_listen`, loopback by default) serves `/ready`,
//! `/metrics` and `/admin`.
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

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

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
use crate::{
    pipeline::quota::Quota,
    telemetry::{health::Health, metrics::Metrics},
};

/// What the operator's routes need: `/ready`, `/metrics`, and `/admin`
/// when `server.admin_token` is set.
#[derive(Clone)]
pub struct Operator {
    /// The counters `/metrics` renders.
    pub metrics: Arc<Metrics>,
    /// What `/ready` reports.
    pub health: Arc<Health>,
    /// The journal, read by `/metrics` for its gauges.
    pub journal_path: PathBuf,
    /// How full the journal is (`/metrics`, `/ready`).
    pub quota: Arc<Quota>,
    /// `server.admin_token`: lets other machines read `/ready` and
    /// `/metrics`, which otherwise answer only this one, and shows
    /// `/ready`'s reasons in full.
    pub admin_token: Option<Arc<str>>,
    /// The `/admin` routes, when `server.admin_token` is set.
    pub admin: Option<Admin>,
}

/// The intake port (`server.listen`): `POST /receive-event` and
/// `GET /health`; and the operator's routes too when `operator` is given
/// (`server.operator_routes_on_intake_port`). Every refusal is counted.
pub fn intake_router(intake: Intake, operator: Option<Operator>) -> Router {
    let metrics = intake.metrics.clone();
    let mut router = Router::new()
        .route("/receive-event", post(intake::receive_event).fallback(|m, u| method_not_allowed("POST", m, u)))
        // Shared, not cloned per request.
        .with_state(Arc::new(intake))
        .route("/health", get(health).fallback(|m, u| method_not_allowed("GET, HEAD", m, u)));
    if let Some(operator) = operator {
        router = router.merge(operator_routes(operator));
    }
    router.fallback(not_found).layer(from_fn_with_state(metrics, metrics::count))
}

/// The operator's port (`server.admin_listen`): `/ready`, `/metrics`,
/// `/admin` (with `server.admin_token`) and `/health`. Every refusal is
/// counted.
pub fn operator_router(operator: Operator) -> Router {
    let metrics = operator.metrics.clone();
    Router::new()
        .route("/health", get(health).fallback(|m, u| method_not_allowed("GET, HEAD", m, u)))
        .merge(operator_routes(operator))
        .fallback(not_found)
        .layer(from_fn_with_state(metrics, metrics::count))
}

fn operator_routes(operator: Operator) -> Router {
    let scrape = Scrape {
        metrics: operator.metrics.clone(),
        journal_path: operator.journal_path.clone(),
        quota: operator.quota.clone(),
    };
    let monitoring = Router::new()
        .route(
            "/ready",
            get(ready::ready)
                .with_state((operator.health.clone(), operator.quota.clone()))
                .fallback(|m, u| method_not_allowed("GET, HEAD", m, u)),
        )
        .route(
            "/metrics",
            get(metrics::serve).with_state(scrape).fallback(|m, u| method_not_allowed("GET, HEAD", m, u)),
        )
        .route_layer(from_fn_with_state(operator.admin_token.clone(), local_or_admin));
    match operator.admin {
        Some(admin) => monitoring.nest("/admin", admin::routes(admin)),
        None => monitoring,
    }
}

/// Who asked for an operator's route: the admin (with
/// `server.admin_token`), or someone on this machine without it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// Sent the admin token.
    Admin,
    /// On this machine, without the token.
    Local,
}

/// `/ready` and `/metrics` tell how the HIS is doing (its error messages
/// name hosts and users): they answer this machine, and others only with
/// `Authorization: Bearer <server.admin_token>`.
async fn local_or_admin(
    State(admin_token): State<Option<Arc<str>>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let admin = admin_token.as_deref().is_some_and(|token| auth::bearer_matches(request.headers(), token));
    if admin || peer.ip().to_canonical().is_loopback() {
        request.extensions_mut().insert(if admin { Caller::Admin } else { Caller::Local });
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

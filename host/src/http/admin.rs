//! The admin HTTP routes: `GET /admin/events` and `POST /admin/replay`, the
//! same operations as the `events` and `replay` commands.
//!
//! They exist only when `server.admin_token` is set, and every request must
//! carry `Authorization: Bearer <token>`, compared in constant time. The
//! token is checked by a layer, before anything reads the query or body,
//! so that a stranger learns nothing but 401.

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use axum::{
    Json, Router,
    extract::{
        ConnectInfo, Query, Request, State,
        rejection::{JsonRejection, QueryRejection},
    },
    http::StatusCode,
    middleware::{Next, from_fn_with_state},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::json;

use crate::{
    clock,
    http::{
        auth::bearer_matches,
        ratelimit::{self, RateLimiter, Spend},
        refusal::{Refusal, method_not_allowed},
    },
    pipeline::{
        journal::{
            self,
            operations::{self, Filter, Selection},
        },
        mapping::Mappings,
        wakeup::Wakeup,
    },
};

/// What the admin routes need.
#[derive(Clone)]
pub struct Admin {
    /// `server.admin_token`.
    pub token: Arc<str>,
    /// The journal: each request opens its own connection.
    pub journal_path: PathBuf,
    /// The current mapping, for replaying unmapped events.
    pub mappings: Arc<Mappings>,
    /// Rung after a replay, so the worker starts at once.
    pub wakeup: Arc<Wakeup>,
    /// `server.rate_limit`: a wrong token spends the failures' bucket.
    pub rate_limiter: Option<Arc<RateLimiter>>,
}

/// The admin routes, to be nested under `/admin`.
pub fn routes(admin: Admin) -> Router {
    Router::new()
        .route("/events", get(events).fallback(|m, u| method_not_allowed("GET, HEAD", m, u)))
        .route("/replay", post(replay).fallback(|m, u| method_not_allowed("POST", m, u)))
        .route_layer(from_fn_with_state(admin.clone(), authorize))
        .with_state(admin)
}

async fn authorize(
    State(admin): State<Admin>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    let limiter = admin.rate_limiter.as_deref();
    if !bearer_matches(request.headers(), &admin.token) {
        let refusal = Refusal::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the admin routes need Authorization: Bearer <server.admin_token>",
        );
        return ratelimit::failed(limiter, peer.ip(), refusal).into_response();
    }
    if let Some(Err(limited)) = limiter.map(|limiter| limiter.admit(peer.ip(), Spend::Sender)) {
        return limited.into_response();
    }
    next.run(request).await
}

/// A query string or JSON body that does not fit, as a JSON refusal with
/// axum's status and message.
fn bad_request(status: StatusCode, message: String) -> Refusal {
    Refusal::new(status, "bad_request", message)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    status: Option<String>,
    #[serde(rename = "type")]
    event_type: Option<String>,
    since: Option<String>,
    limit: Option<usize>,
}

fn since(text: Option<String>) -> Result<Option<String>, Refusal> {
    text.map(|text| {
        operations::parse_since(&text).ok_or_else(|| {
            Refusal::new(
                StatusCode::BAD_REQUEST,
                "bad_since",
                format!("since {text:?}: expected {}", operations::SINCE_FORMS),
            )
        })
    })
    .transpose()
}

fn status(text: &str) -> Result<journal::Status, Refusal> {
    operations::parse_status(text).ok_or_else(|| {
        Refusal::new(
            StatusCode::BAD_REQUEST,
            "bad_status",
            format!("status {text:?}: expected pending, delivered, failed or unmapped"),
        )
    })
}

fn journal_error(e: impl std::fmt::Display) -> Refusal {
    Refusal::new(StatusCode::SERVICE_UNAVAILABLE, "journal_unavailable", e.to_string())
}

async fn events(
    State(admin): State<Admin>,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Response, Refusal> {
    let Query(query) = query.map_err(|r| bad_request(r.status(), r.body_text()))?;
    let filter = Filter {
        status: status(query.status.as_deref().unwrap_or("failed"))?,
        event_type: query.event_type,
        since: since(query.since)?,
        limit: query.limit.unwrap_or(100).min(10_000),
    };
    let rows = tokio::task::spawn_blocking(move || {
        let connection = journal::open(&admin.journal_path).map_err(journal_error)?;
        operations::list(&connection, &filter, clock::now_ms()).map_err(journal_error)
    })
    .await
    .map_err(journal_error)??;
    Ok(Json(json!({ "events": rows })).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayRequest {
    id: Option<i64>,
    status: Option<String>,
    #[serde(rename = "type")]
    event_type: Option<String>,
    since: Option<String>,
}

async fn replay(
    State(admin): State<Admin>,
    request: Result<Json<ReplayRequest>, JsonRejection>,
) -> Result<Response, Refusal> {
    let Json(request) = request.map_err(|r| bad_request(r.status(), r.body_text()))?;
    let selection = match (request.id, request.status) {
        (Some(id), _) => Selection::Id(id),
        (None, Some(text)) => Selection::Matching(Filter {
            status: status(&text)?,
            event_type: request.event_type,
            since: since(request.since)?,
            limit: 0,
        }),
        (None, None) => {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "send {\"id\": N} or {\"status\": \"failed\"}",
            ));
        }
    };
    let wakeup = admin.wakeup.clone();
    let report = tokio::task::spawn_blocking(move || {
        let mut connection = journal::open(&admin.journal_path).map_err(journal_error)?;
        operations::replay(&mut connection, &selection, &admin.mappings, clock::now_ms()).map_err(|e| match e {
            operations::ReplayError::Journal(e) => journal_error(e),
            other => Refusal::new(StatusCode::UNPROCESSABLE_ENTITY, "not_replayable", other.to_string()),
        })
    })
    .await
    .map_err(journal_error)??;
    wakeup.ring();
    // The counts, and what the operator should know about them.
    let mut answer = serde_json::to_value(report).expect("counts serialize");
    answer["notes"] = json!(report.notes());
    Ok(Json(answer).into_response())
}

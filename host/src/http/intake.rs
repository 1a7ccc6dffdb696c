//! HTTP intake: `POST /receive-event` and `GET /health`.
//!
//! An event is answered 2xx only after the journal has it on disk. Every
//! refusal is a JSON body `{"error": code, "message": text}` with a precise
//! status, and stores nothing.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    time::Duration,
};

use axum::{
    Json,
    extract::{ConnectInfo, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::json;

use crate::{
    clock,
    http::{
        auth::{Authenticator, Precheck, Rejection},
        body::{self, InFlight, ShapeLimits},
        ratelimit::{self, RateLimiter, Spend},
        refusal::Refusal,
    },
    pipeline::{
        committer::Committer,
        journal::{Appended, NewEvent, Status},
        mapping::{MappingError, Mappings, Members, kind_of},
        quota::{Over, Quota},
    },
    telemetry::metrics::{Metrics, Received},
};

/// What the handlers share.
#[derive(Clone)]
pub struct Intake {
    /// Where events are journaled.
    pub committer: Committer,
    /// Event type → mapping, to find each event's key.
    pub mappings: Arc<Mappings>,
    /// How much the journal may still take.
    pub quota: Arc<Quota>,
    /// `server.max_body_bytes`.
    pub max_body_bytes: usize,
    /// `server.max_json_depth`, `max_json_members` and `max_json_nodes`.
    pub shape: ShapeLimits,
    /// `server.max_bytes_in_flight`: room for the bodies being read and
    /// journaled at once.
    pub in_flight: InFlight,
    /// `server.delivery_id_field`.
    pub delivery_id_field: Option<String>,
    /// `server.duplicate_window_days`, in milliseconds.
    pub duplicate_window_ms: i64,
    /// `server.auth`: who may send events; `None` lets anyone.
    pub auth: Option<Arc<Authenticator>>,
    /// `server.request_timeout_secs`: how long a body may take to arrive.
    pub request_timeout: Duration,
    /// `server.rate_limit`: requests that failed authentication spend
    /// their own bucket, never the authenticated sender's.
    pub rate_limiter: Option<Arc<RateLimiter>>,
    /// `server.allow_unsigned_through_proxy`.
    pub allow_unsigned_through_proxy: bool,
    /// When intake last logged an unsigned request through a proxy (unix
    /// ms): once a minute, not once per request.
    pub proxy_warned_ms: Arc<AtomicI64>,
    /// Where events and refusals are counted.
    pub metrics: Arc<Metrics>,
}

/// The longest delivery id kept (Standard Webhooks ids are about 30).
const MAX_DELIVERY_ID_CHARS: usize = 256;

/// The longest `event_type` accepted. Buktor's are words
/// (`schedule_change`); a longer one would only grow every log line,
/// answer and metric that names it.
pub const MAX_EVENT_TYPE_CHARS: usize = 128;

/// `POST /receive-event`.
pub async fn receive_event(
    State(intake): State<Arc<Intake>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: axum::extract::Request,
) -> Result<Response, Refusal> {
    let received_at = clock::now_rfc3339();
    // The request's own headers, not a copy (the `HeaderMap` extractor clones).
    let (axum::http::request::Parts { headers, .. }, body) = request.into_parts();
    let limiter = intake.rate_limiter.as_deref();
    let address = peer.ip();
    let unauthenticated = |rejection: Rejection| {
        // Never the body: an unauthenticated request is not trusted enough to log.
        // The address lets a log watcher (fail2ban, say) block a prober.
        tracing::warn!(%peer, reason = rejection.code(), "refused a request that is not authenticated");
        ratelimit::failed(
            limiter,
            address,
            Refusal::new(StatusCode::UNAUTHORIZED, rejection.code(), rejection.to_string()),
        )
    };
    // The headers first: without credentials, the body is not even read.
    let precheck = match &intake.auth {
        Some(auth) => Some(auth.precheck(&headers, chrono::Utc::now().timestamp()).map_err(unauthenticated)?),
        None if !intake.allow_unsigned_through_proxy && came_through_proxy(&headers) => {
            intake.warn_about_proxy(peer);
            return Err(ratelimit::failed(limiter, address, unsigned_through_proxy()));
        }
        None => {
            // Without server.auth, every request is a sender's.
            limiter.map(|limiter| limiter.admit(address, Spend::Sender)).transpose()?;
            None
        }
    };
    check_content_type(&headers)?;
    let _room =
        intake.in_flight.admit(body::expected_size(&headers, intake.max_body_bytes), intake.request_timeout).await?;
    let bytes = body::read(&headers, body, intake.max_body_bytes, intake.request_timeout).await?;
    if let Some(auth) = &intake.auth {
        if let Some(Precheck::Signed(signed)) = &precheck {
            auth.verify(signed, &bytes).map_err(unauthenticated)?;
        }
        // Authenticated: from here on it spends the sender's bucket.
        limiter.map(|limiter| limiter.admit(address, Spend::Sender)).transpose()?;
    }
    body::check_shape(&bytes, intake.shape)?;
    let members = body::members(&bytes)?;
    let event_type = event_type_of(&members)?;
    let (status, event_key, extra_keys) = match intake.mappings.keys_of(&event_type, &members) {
        Some(keys) => {
            let keys = keys.map_err(|e| {
                let code = match e {
                    MappingError::MissingKey { .. } => "missing_key",
                    _ => "invalid_key",
                };
                Refusal::new(StatusCode::UNPROCESSABLE_ENTITY, code, e.to_string())
            })?;
            (Status::Pending, Some(keys.primary), keys.extra)
        }
        None => (Status::Unmapped, None, Vec::new()),
    };
    let delivery_id = delivery_id_of(&headers, &members, intake.delivery_id_field.as_deref())?;
    drop(members);
    // The bytes that arrived, journaled as they are (no copy: the body is
    // this request's alone). Parsing proved them UTF-8.
    let payload = String::from_utf8(Vec::from(bytes)).expect("parsed JSON is UTF-8");
    intake.quota.admit(&event_type, status == Status::Unmapped, payload.len() as u64).map_err(|over| {
        let code = match over {
            Over::Journal { .. } => "journal_full",
            Over::Unmapped { .. } => "unmapped_quota",
        };
        Refusal::new(StatusCode::INSUFFICIENT_STORAGE, code, format!("{over}; the event was not accepted"))
            .retry_after(60)
    })?;
    let received_ms = clock::now_ms();
    let journaled = NewEvent {
        event_type: event_type.clone(),
        payload,
        received_at,
        status,
        event_key,
        extra_keys,
        delivery_id,
        received_ms,
        duplicates_since_ms: received_ms - intake.duplicate_window_ms,
    };
    let appended = intake.committer.append(journaled).await.map_err(|e| {
        Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "journal_unavailable",
            format!("{e}; the event was not accepted, send it again later"),
        )
    })?;

    let id = match appended {
        Appended::New(id) => id,
        Appended::Duplicate(id) => {
            intake.metrics.received(&event_type, Received::Duplicate);
            tracing::info!(event_id = id, event_type = %event_type, "duplicate delivery: already journaled, not stored again");
            return Ok(answer(StatusCode::OK, id, "duplicate"));
        }
    };
    let outcome = if status == Status::Unmapped { Received::Unmapped } else { Received::Accepted };
    intake.metrics.received(&event_type, outcome);
    Ok(match status {
        Status::Unmapped => {
            let warning = format!(
                "no mapping for event_type {event_type:?}: the event is kept in the journal as unmapped and is not written to the HIS; add mapping.{event_type} to his-config.json"
            );
            tracing::warn!(event_id = id, event_type = %event_type, "unmapped event journaled");
            (StatusCode::ACCEPTED, Json(json!({ "id": id, "status": "unmapped", "warning": warning }))).into_response()
        }
        _ => {
            tracing::debug!(event_id = id, event_type = %event_type, "event journaled");
            answer(StatusCode::OK, id, "accepted")
        }
    })
}

/// `{"id": id, "status": status}`, written directly: the answer to every
/// event, so it skips building a JSON value first.
fn answer(status: StatusCode, id: i64, outcome: &'static str) -> Response {
    let body = format!(r#"{{"id":{id},"status":"{outcome}"}}"#);
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// The sender's delivery id: the `webhook-id` header (Standard Webhooks),
/// else the configured event field (a string or an integer).
fn delivery_id_of(headers: &HeaderMap, event: &Members<'_>, field: Option<&str>) -> Result<Option<String>, Refusal> {
    let invalid = |what: String| Refusal::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_delivery_id", what);
    let id = match headers.get("webhook-id") {
        Some(value) => {
            Some(value.to_str().map_err(|_| invalid("the webhook-id header is not text".into()))?.to_string())
        }
        None => match field.and_then(|f| event.raw(f).map(|raw| (f, raw.get()))) {
            None | Some((_, "null")) => None,
            Some((f, raw)) => match serde_json::from_str::<serde_json::Value>(raw) {
                Ok(serde_json::Value::String(s)) => Some(s),
                Ok(serde_json::Value::Number(n)) if n.is_i64() || n.is_u64() => Some(n.to_string()),
                _ => {
                    let shown: String = raw.chars().take(40).collect();
                    return Err(invalid(format!(
                        "{f} (server.delivery_id_field) must be a string or an integer, found {shown}"
                    )));
                }
            },
        },
    };
    match id {
        Some(id) if id.trim().is_empty() || id.chars().count() > MAX_DELIVERY_ID_CHARS => Err(invalid(format!(
            "a delivery id must be 1 to {MAX_DELIVERY_ID_CHARS} characters, found {}",
            id.chars().count()
        ))),
        other => Ok(other),
    }
}

/// The event's type: a non-empty string of at most [`MAX_EVENT_TYPE_CHARS`].
fn event_type_of(members: &Members<'_>) -> Result<String, Refusal> {
    let invalid = |found: &str| {
        Refusal::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_event_type",
            format!("event_type must be a non-empty string, found {found}"),
        )
    };
    let Some(raw) = members.raw("event_type") else {
        return Err(Refusal::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "missing_event_type",
            "the event has no event_type: add a string member \"event_type\", such as \"appointment\"",
        ));
    };
    let event_type: String = match serde_json::from_str(raw.get()) {
        Ok(text) => text,
        Err(_) => return Err(invalid(kind_of(raw.get()))),
    };
    if event_type.chars().count() > MAX_EVENT_TYPE_CHARS {
        return Err(Refusal::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "event_type_too_long",
            format!("event_type is longer than {MAX_EVENT_TYPE_CHARS} characters"),
        ));
    }
    if event_type.trim().is_empty() {
        return Err(invalid("an empty string"));
    }
    Ok(event_type)
}

/// Headers that proxies add (ngrok adds `X-Forwarded-For`, a typical nginx
/// site `X-Forwarded-For` or `X-Real-IP`).
const PROXY_HEADERS: [&str; 4] = ["forwarded", "x-forwarded-for", "x-real-ip", "via"];

fn came_through_proxy(headers: &HeaderMap) -> bool {
    PROXY_HEADERS.iter().any(|name| headers.contains_key(*name))
}

fn unsigned_through_proxy() -> Refusal {
    Refusal::new(
        StatusCode::UNAUTHORIZED,
        "unsigned_through_proxy",
        "this request came through a proxy, so it may come from anyone on the internet, and server.auth is not \
         set: configure signing (server.auth.webhook_secrets) before exposing the port",
    )
}

impl Intake {
    /// Logs an unsigned request through a proxy, at most once a minute.
    fn warn_about_proxy(&self, peer: SocketAddr) {
        let now = clock::now_ms();
        let last = self.proxy_warned_ms.load(Ordering::Relaxed);
        if now - last >= 60_000
            && self.proxy_warned_ms.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
        {
            tracing::warn!(
                %peer,
                "refused unsigned events that came through a proxy (it sends Forwarded, X-Forwarded-For, X-Real-IP \
                 or Via): the port is exposed, and server.auth is not set. Configure signing; this is logged once a minute"
            );
        }
    }
}

/// `application/json`, with or without parameters, or any `+json` type.
fn check_content_type(headers: &HeaderMap) -> Result<(), Refusal> {
    let value = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let essence = value.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json")) {
        return Ok(());
    }
    let found = if value.is_empty() { "none".to_string() } else { format!("{value:?}") };
    Err(Refusal::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_content_type",
        format!("send the event with Content-Type: application/json (found {found})"),
    ))
}

//! HTTP intake: `POST /receive-event` and `GET /health`.
//!
//! An event is answered 2xx only after the journal has it on disk. Every
//! refusal is a JSON body `{"error": code, "message": text}` with a precise
//! status, and stores nothing.

use std::{net::SocketAddr, path::PathBuf, sync::Arc, task::Poll, time::Duration};

use axum::{
    Json,
    body::{Body, to_bytes},
    extract::{ConnectInfo, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::json;

use crate::{
    clock,
    http::{
        auth::{Authenticator, Precheck, Rejection},
        ratelimit::RateLimiter,
        refusal::Refusal,
    },
    pipeline::{
        committer::Committer,
        journal::{Appended, NewEvent, Status},
        mapping::{MappingError, Mappings},
    },
    telemetry::{
        health::Health,
        metrics::{Metrics, Received},
    },
};

/// What the handlers share.
#[derive(Clone)]
pub struct Intake {
    /// Where events are journaled.
    pub committer: Committer,
    /// Event type → mapping, to find each event's key.
    pub mappings: Arc<Mappings>,
    /// `server.max_body_bytes`.
    pub max_body_bytes: usize,
    /// `server.max_json_depth`.
    pub max_json_depth: usize,
    /// `server.max_json_members`.
    pub max_json_members: usize,
    /// `server.delivery_id_field`.
    pub delivery_id_field: Option<String>,
    /// `server.duplicate_window_days`, in milliseconds.
    pub duplicate_window_ms: i64,
    /// `server.auth`: who may send events; `None` lets anyone.
    pub auth: Option<Arc<Authenticator>>,
    /// `server.request_timeout_secs`: how long a body may take to arrive.
    pub request_timeout: Duration,
    /// `server.rate_limit`, applied to every route but `/health` and
    /// `/metrics`.
    pub rate_limiter: Option<Arc<RateLimiter>>,
    /// Where events and refusals are counted.
    pub metrics: Arc<Metrics>,
    /// What `/ready` reports.
    pub health: Arc<Health>,
    /// The journal, read by `/metrics` for its gauges.
    pub journal_path: PathBuf,
    /// `server.admin_token`: lets other machines read `/ready` and
    /// `/metrics`, which otherwise answer only this one.
    pub admin_token: Option<Arc<str>>,
}

/// The longest delivery id kept (Standard Webhooks ids are about 30).
const MAX_DELIVERY_ID_CHARS: usize = 256;

/// `POST /receive-event`.
pub async fn receive_event(
    State(intake): State<Arc<Intake>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: axum::extract::Request,
) -> Result<Response, Refusal> {
    let received_at = clock::now_rfc3339();
    // The request's own headers, not a copy (the `HeaderMap` extractor clones).
    let (axum::http::request::Parts { headers, .. }, body) = request.into_parts();
    check_content_type(&headers)?;
    let unauthenticated = |rejection: Rejection| {
        // Never the body: an unauthenticated request is not trusted enough to log.
        // The address lets a log watcher (fail2ban, say) block a prober.
        tracing::warn!(%peer, reason = rejection.code(), "refused a request that is not authenticated");
        Refusal::new(StatusCode::UNAUTHORIZED, rejection.code(), rejection.to_string())
    };
    // The headers first: without credentials, the body is not even read.
    let precheck = match &intake.auth {
        Some(auth) => Some(auth.precheck(&headers, chrono::Utc::now().timestamp()).map_err(unauthenticated)?),
        None => None,
    };
    let bytes = read_body(&headers, body, intake.max_body_bytes, intake.request_timeout).await?;
    if let (Some(auth), Some(Precheck::Signed(signed))) = (&intake.auth, &precheck) {
        auth.verify(signed, &bytes).map_err(unauthenticated)?;
    }
    check_shape(&bytes, intake.max_json_depth, intake.max_json_members)?;
    let event = parse_event(&bytes)?;
    let event_type = event_type_of(&event)?.to_string();

    let (status, event_key) = match intake.mappings.get(&event_type) {
        Some(mapping) => {
            let key = mapping.key_of(&event_type, &event).map_err(|e| {
                let code = match e {
                    MappingError::MissingKey { .. } => "missing_key",
                    _ => "invalid_key",
                };
                Refusal::new(StatusCode::UNPROCESSABLE_ENTITY, code, e.to_string())
            })?;
            (Status::Pending, Some(key))
        }
        None => (Status::Unmapped, None),
    };
    let delivery_id = delivery_id_of(&headers, &event, intake.delivery_id_field.as_deref())?;
    let payload = String::from_utf8(bytes.to_vec()).expect("parsed JSON is UTF-8");
    let journaled = NewEvent {
        event_type: event_type.clone(),
        payload,
        received_at,
        status,
        event_key,
        delivery_id,
        duplicates_since_ms: clock::now_ms() - intake.duplicate_window_ms,
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
fn delivery_id_of(
    headers: &HeaderMap,
    event: &serde_json::Map<String, serde_json::Value>,
    field: Option<&str>,
) -> Result<Option<String>, Refusal> {
    let invalid = |what: String| Refusal::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_delivery_id", what);
    let id = match headers.get("webhook-id") {
        Some(value) => {
            Some(value.to_str().map_err(|_| invalid("the webhook-id header is not text".into()))?.to_string())
        }
        None => match field.and_then(|f| event.get(f).map(|v| (f, v))) {
            None | Some((_, serde_json::Value::Null)) => None,
            Some((_, serde_json::Value::String(s))) => Some(s.clone()),
            Some((_, serde_json::Value::Number(n))) if n.is_i64() || n.is_u64() => Some(n.to_string()),
            Some((f, other)) => {
                return Err(invalid(format!(
                    "{f} (server.delivery_id_field) must be a string or an integer, found {other}"
                )));
            }
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

async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    timeout: Duration,
) -> Result<axum::body::Bytes, Refusal> {
    let too_large = || {
        Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the body is larger than {limit} bytes (server.max_body_bytes)"),
        )
    };
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    // A small body usually came with the headers: read what is there
    // first, and arm the timer only for a body still on its way.
    let mut reading = std::pin::pin!(to_bytes(body, limit));
    let read = match std::future::poll_fn(|cx| Poll::Ready(reading.as_mut().poll(cx))).await {
        Poll::Ready(read) => read,
        Poll::Pending => tokio::time::timeout(timeout, reading).await.map_err(|_| {
            Refusal::new(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                format!("the body did not arrive within {} seconds (server.request_timeout_secs)", timeout.as_secs()),
            )
        })?,
    };
    read.map_err(|e| {
        let is_limit = std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
        if is_limit {
            too_large()
        } else {
            Refusal::new(StatusCode::BAD_REQUEST, "body_unreadable", format!("the body could not be read: {e}"))
        }
    })
}

/// Refuses bodies nested deeper than `max_depth`, or with more than
/// `max_members` object members, before anything parses them. A quick scan
/// of the bytes; malformed JSON is left to the parser's own message.
fn check_shape(bytes: &[u8], max_depth: usize, max_members: usize) -> Result<(), Refusal> {
    let (mut depth, mut members, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &byte in bytes {
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > max_depth {
                    return Err(Refusal::new(
                        StatusCode::BAD_REQUEST,
                        "too_deep",
                        format!("the JSON is nested deeper than {max_depth} levels (server.max_json_depth)"),
                    ));
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            b':' => {
                members += 1;
                if members > max_members {
                    return Err(Refusal::new(
                        StatusCode::BAD_REQUEST,
                        "too_many_members",
                        format!("the JSON has more than {max_members} members (server.max_json_members)"),
                    ));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn parse_event(bytes: &[u8]) -> Result<serde_json::Map<String, serde_json::Value>, Refusal> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        Refusal::new(StatusCode::BAD_REQUEST, "malformed_json", format!("the body is not valid JSON: {e}"))
    })?;
    match value {
        serde_json::Value::Object(map) => Ok(map),
        other => Err(Refusal::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "not_an_object",
            format!("the body must be one JSON object with an event_type, found {}", kind_of(&other)),
        )),
    }
}

fn event_type_of(event: &serde_json::Map<String, serde_json::Value>) -> Result<&str, Refusal> {
    match event.get("event_type") {
        Some(serde_json::Value::String(t)) if !t.trim().is_empty() => Ok(t),
        None => Err(Refusal::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "missing_event_type",
            "the event has no event_type: add a string member \"event_type\", such as \"appointment\"",
        )),
        Some(other) => Err(Refusal::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_event_type",
            format!("event_type must be a non-empty string, found {}", kind_of(other)),
        )),
    }
}

fn kind_of(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(s) if s.trim().is_empty() => "an empty string",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

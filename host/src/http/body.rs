//! What an event's body must be before anything parses it, and how little
//! of it intake parses.
//!
//! Memory per request is bounded, whatever the body holds:
//! - the body is at most `server.max_body_bytes`, and the bodies being
//!   read and journaled at once at most `server.max_bytes_in_flight`
//!   ([`InFlight`]): a request waits for room (at most
//!   `server.request_timeout_secs`, then 503);
//! - a byte scan refuses it before parsing when it nests deeper than
//!   `server.max_json_depth`, or holds more than `server.max_json_members`
//!   object members or `server.max_json_nodes` values (an array's elements
//!   count, so a body of empty arrays cannot grow into a large tree);
//! - intake parses only the top level, each member kept as its raw text
//!   ([`Members`]), and only the few members it reads (`event_type`, the
//!   key fields, the delivery id field) into values. The payload is
//!   journaled as the bytes that arrived, without a copy.
//!
//! A number is never parsed here either: `1e400` is valid JSON, and its
//! text goes to the journal as sent (the mapping writes it out exactly or
//! refuses it, naming the field).

use std::{sync::Arc, task::Poll, time::Duration};

use axum::{
    body::{Body, Bytes, to_bytes},
    http::{HeaderMap, StatusCode, header},
};
use serde_json::value::RawValue;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::{
    http::refusal::Refusal,
    pipeline::mapping::{Members, kind_of},
};

/// The body sizes `server.max_bytes_in_flight` allows at once, counted in
/// KiB (a semaphore counts in `u32`).
#[derive(Debug, Clone)]
pub struct InFlight {
    kib: Arc<Semaphore>,
    /// All of it, in KiB: no one body asks for more.
    capacity_kib: u32,
    limit_bytes: usize,
}

impl InFlight {
    /// Room for `limit_bytes` of bodies at once.
    pub fn new(limit_bytes: usize) -> Self {
        let capacity_kib = u32::try_from(limit_bytes.div_ceil(1024)).unwrap_or(u32::MAX).max(1);
        Self { kib: Arc::new(Semaphore::new(capacity_kib as usize)), capacity_kib, limit_bytes }
    }

    /// Waits, at most `timeout`, for room for a body of `bytes`; the room
    /// is given back when the permit is dropped (after the answer).
    pub async fn admit(&self, bytes: usize, timeout: Duration) -> Result<OwnedSemaphorePermit, Refusal> {
        let wanted = u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX).clamp(1, self.capacity_kib);
        let acquired = tokio::time::timeout(timeout, self.kib.clone().acquire_many_owned(wanted)).await;
        match acquired {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                format!(
                    "more than {} bytes of events are arriving at once (server.max_bytes_in_flight); send it again in a few seconds",
                    self.limit_bytes
                ),
            )),
        }
    }
}

/// How much room a body will take: its declared length, or the limit when
/// it is sent in chunks (its length is not known before it arrives).
pub fn expected_size(headers: &HeaderMap, limit: usize) -> usize {
    declared_length(headers).map_or(limit, |n| usize::try_from(n).unwrap_or(usize::MAX).min(limit))
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok())
}

/// Reads the body, at most `limit` bytes, within `timeout` once it is
/// found to be still arriving.
pub async fn read(headers: &HeaderMap, body: Body, limit: usize, timeout: Duration) -> Result<Bytes, Refusal> {
    let too_large = || {
        Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the body is larger than {limit} bytes (server.max_body_bytes)"),
        )
    };
    if declared_length(headers).is_some_and(|n| n > limit as u64) {
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

/// The shape limits a body must keep (`server.max_json_*`).
#[derive(Debug, Clone, Copy)]
pub struct ShapeLimits {
    /// `server.max_json_depth`.
    pub depth: usize,
    /// `server.max_json_members`.
    pub members: usize,
    /// `server.max_json_nodes`.
    pub nodes: usize,
}

/// Refuses a body nested deeper than its limit, or with more object
/// members or values, before anything parses it. A scan of the bytes that
/// allocates nothing but one byte per open container; malformed JSON is
/// left to the parser's own message.
pub fn check_shape(bytes: &[u8], limits: ShapeLimits) -> Result<(), Refusal> {
    let refuse = |code: &'static str, message: String| Err(Refusal::new(StatusCode::BAD_REQUEST, code, message));
    // The open containers (`{` or `[`), and whether a value may start here
    // (at the top, after `[`, after a `,` in an array, after `:`).
    let mut open: Vec<u8> = Vec::new();
    let (mut members, mut nodes, mut expect_value) = (0usize, 0usize, true);
    let (mut in_string, mut escaped, mut in_scalar) = (false, false, false);
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
        if in_scalar {
            if byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'+' | b'-') {
                continue;
            }
            in_scalar = false;
        }
        let starts_value = match byte {
            b'{' | b'[' | b'"' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n' => expect_value,
            _ => false,
        };
        if starts_value {
            nodes += 1;
            if nodes > limits.nodes {
                return refuse(
                    "too_many_nodes",
                    format!("the JSON has more than {} values (server.max_json_nodes)", limits.nodes),
                );
            }
            expect_value = false;
        }
        match byte {
            b'"' => in_string = true,
            b'{' | b'[' => {
                if open.len() >= limits.depth {
                    return refuse(
                        "too_deep",
                        format!("the JSON is nested deeper than {} levels (server.max_json_depth)", limits.depth),
                    );
                }
                open.push(byte);
                expect_value = byte == b'[';
            }
            b'}' | b']' => {
                open.pop();
            }
            b',' => expect_value = open.last() == Some(&b'['),
            b':' => {
                members += 1;
                if members > limits.members {
                    return refuse(
                        "too_many_members",
                        format!("the JSON has more than {} members (server.max_json_members)", limits.members),
                    );
                }
                expect_value = true;
            }
            b'-' | b'0'..=b'9' | b't' | b'f' | b'n' if starts_value => in_scalar = true,
            _ => {}
        }
    }
    Ok(())
}

/// The body's top level: an object, each member kept as raw text (see
/// [`Members`]), or a refusal that says what was sent instead.
pub fn members(bytes: &[u8]) -> Result<Members<'_>, Refusal> {
    let malformed = |message: String| Refusal::new(StatusCode::BAD_REQUEST, "malformed_json", message);
    let text = std::str::from_utf8(bytes)
        .map_err(|e| malformed(format!("the body is not valid JSON: it is not UTF-8 ({e})")))?;
    let value: &RawValue =
        serde_json::from_str(text).map_err(|e| malformed(format!("the body is not valid JSON: {e}")))?;
    if !value.get().starts_with('{') {
        return Err(Refusal::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "not_an_object",
            format!("the body must be one JSON object with an event_type, found {}", kind_of(value.get())),
        ));
    }
    Members::parse(value.get()).map_err(|e| malformed(format!("the body is not valid JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ShapeLimits = ShapeLimits { depth: 4, members: 5, nodes: 8 };

    fn code(json: &str) -> Option<&'static str> {
        check_shape(json.as_bytes(), LIMITS).err().map(|refusal| refusal.code())
    }

    #[test]
    fn every_value_counts_array_elements_too() {
        // 1 object + 3 members' values = 4; 1 array + 7 elements = 8.
        assert_eq!(code(r#"{"a": 1, "b": "x", "c": [true]}"#), None);
        assert_eq!(code("[[],[],[],[],[],[],[]]"), None);
        assert_eq!(code("[[],[],[],[],[],[],[],[]]"), Some("too_many_nodes"));
        assert_eq!(code("[1,2,3,4,5,6,7,-8e10]"), Some("too_many_nodes"));
        // Keys are not values; strings holding brackets are not containers.
        assert_eq!(code(r#"{"[[[[": "]]],,,,{{{", "n": null}"#), None);
        assert_eq!(code(r#"{"a":{"b":{"c":{"d":{}}}}}"#), Some("too_deep"));
        assert_eq!(code(r#"{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6}"#), Some("too_many_members"));
    }

    #[test]
    fn only_the_top_level_is_parsed_and_kinds_are_named() {
        let body = br#"{"event_type": "appointment", "appointment_id": 1e400, "items": [[[]]]}"#;
        let parsed = members(body).unwrap();
        assert_eq!(parsed.raw("items").unwrap().get(), "[[[]]]");
        assert_eq!(parsed.raw("appointment_id").unwrap().get(), "1e400");
        let refused = |body: &[u8]| members(body).err().map(|r| r.code());
        assert_eq!(refused(b"[1]"), Some("not_an_object"));
        assert_eq!(refused(b"{\"a\": \xff}"), Some("malformed_json"));
        assert_eq!(refused(b"{\"a\": 1,}"), Some("malformed_json"));
    }
}

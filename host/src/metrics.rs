//! Counters, and `GET /metrics` in the Prometheus text format.
//!
//! For now: every refused request, by its reason code, so that an operator
//! can see a flood of bad signatures or oversized bodies without reading
//! logs. Every refusal carries its code as a response extension
//! ([`Refused`]); one middleware ([`count`]) at the outside of the router
//! counts them all, whichever route or layer refused.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    sync::{Arc, Mutex},
};

use axum::{
    extract::{Request, State},
    http::header,
    middleware::Next,
    response::{IntoResponse, Response},
};

/// A refused request's reason code, attached to its response.
#[derive(Debug, Clone, Copy)]
pub struct Refused(pub &'static str);

/// The process's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Reason code → requests refused with it.
    refused: Mutex<BTreeMap<&'static str, u64>>,
}

impl Metrics {
    /// Counts one request refused with `reason`.
    pub fn refused(&self, reason: &'static str) {
        *self.refused.lock().unwrap_or_else(|p| p.into_inner()).entry(reason).or_default() += 1;
    }

    /// The Prometheus text exposition of every counter.
    pub fn render(&self) -> String {
        let mut text = String::new();
        text.push_str(
            "# HELP buktor_requests_refused_total Requests refused, by reason; none of them was journaled.\n",
        );
        text.push_str("# TYPE buktor_requests_refused_total counter\n");
        for (reason, count) in self.refused.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = writeln!(text, "buktor_requests_refused_total{{reason=\"{reason}\"}} {count}");
        }
        text
    }
}

/// The middleware that counts refusals.
pub async fn count(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    if let Some(Refused(reason)) = response.extensions().get::<Refused>() {
        metrics.refused(reason);
    }
    response
}

/// `GET /metrics`.
pub async fn serve(State(metrics): State<Arc<Metrics>>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], metrics.render()).into_response()
}

//! `GET /metrics`, and the middleware that counts every refusal.
//!
//! Every refusal carries its reason as a response extension
//! ([`Refused`]); one middleware ([`count`]) at the outside of the router
//! counts them all, whichever route or layer refused.

use std::{path::PathBuf, sync::Arc};

use axum::{
    extract::{Request, State},
    http::{StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};

use crate::{
    clock,
    http::refusal::Refused,
    pipeline::{journal, quota::Quota},
    telemetry::metrics::{JournalGauges, JournalSpace, Metrics},
};

/// What `GET /metrics` needs.
#[derive(Clone)]
pub struct Scrape {
    /// The counters.
    pub metrics: Arc<Metrics>,
    /// The journal, read (on a connection of its own) for the gauges.
    pub journal_path: PathBuf,
    /// How full the journal is.
    pub quota: Arc<Quota>,
}

/// The middleware that counts refusals.
pub async fn count(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    if let Some(Refused(reason)) = response.extensions().get::<Refused>() {
        metrics.refused(reason);
    }
    response
}

/// `GET /metrics`. A journal that cannot be read leaves its two gauges
/// out rather than failing the scrape.
pub async fn serve(State(scrape): State<Scrape>) -> Response {
    let path = scrape.journal_path.clone();
    let gauges = tokio::task::spawn_blocking(move || -> Option<JournalGauges> {
        // Read only, no migration: a scrape never changes the journal.
        let connection = journal::open_read_only(&path).ok()?;
        let (pending, oldest) = journal::pending_summary(&connection).ok()?;
        let age = oldest.and_then(|text| clock::age_secs(&text, clock::now_ms())).unwrap_or(0.0);
        Some(JournalGauges { pending, oldest_pending_age_secs: age })
    })
    .await
    .ok()
    .flatten();
    let usage = scrape.quota.usage();
    let space = JournalSpace {
        used_bytes: usage.used_bytes,
        max_bytes: usage.limits.max_bytes,
        unmapped_bytes: usage.unmapped_bytes,
        max_unmapped_bytes: usage.limits.max_unmapped_bytes,
    };
    let text = scrape.metrics.render(gauges.as_ref(), Some(&space));
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
}

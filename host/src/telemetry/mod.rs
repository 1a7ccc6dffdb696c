//! What the pipeline and intake report, and the HTTP routes show
//! ([`crate::http::metrics`], [`crate::http::ready`]): counters and
//! histograms ([`metrics`]), and readiness ([`health`]). Plain state: it
//! imports nothing above [`crate::sync`] and [`crate::clock`].

pub mod health;
pub mod metrics;

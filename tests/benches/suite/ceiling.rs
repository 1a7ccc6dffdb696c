//! The intake ceiling: a bare axum endpoint that parses the same JSON and
//! answers as the middleware does, with no I/O at all.
//!
//! It runs as a process of its own (this benchmark binary, started again
//! with [`ROLE`] set), on a default multi-threaded tokio runtime like the
//! middleware's, so that both meet the load generator on equal terms.

use std::{
    process::Command,
    sync::atomic::{AtomicI64, Ordering},
};

use axum::{Json, Router, http::StatusCode, routing::post};
use buktor_tests::Middleware;
use serde_json::{Value, json};

/// Set in the environment of the child process that serves the ceiling.
pub const ROLE: &str = "BUKTOR_BENCH_ROLE";

/// Starts the ceiling server, and returns it once it listens.
pub fn start() -> Middleware {
    let mut command = Command::new(std::env::current_exe().expect("this benchmark's path"));
    command.env(ROLE, "bare-axum");
    Middleware::start_command(command).unwrap_or_else(|e| panic!("the bare axum ceiling did not start: {e}"))
}

/// The child process's work: serve `POST /receive-event` on a free port
/// and announce it as the middleware does (`listening on http://…/`).
pub fn serve() {
    static NEXT_ID: AtomicI64 = AtomicI64::new(1);
    async fn receive(Json(event): Json<Value>) -> (StatusCode, Json<Value>) {
        // Look at the event as intake does before it journals it.
        let accepted = event.get("event_type").and_then(Value::as_str).is_some();
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let status = if accepted { StatusCode::OK } else { StatusCode::BAD_REQUEST };
        (status, Json(json!({ "id": id, "status": "accepted" })))
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        eprintln!("listening on http://{}/receive-event", listener.local_addr().expect("local address"));
        let app = Router::new().route("/receive-event", post(receive));
        axum::serve(listener, app).await.expect("serve");
    });
}

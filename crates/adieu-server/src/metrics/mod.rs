//! `/metrics`: Prometheus text format.

use crate::AppState;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::time::Duration;

/// Routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

async fn metrics(State(state): State<AppState>) -> Response {
    let stats = match state.store.queue_stats().await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "reading queue statistics failed");
            return (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response();
        }
    };
    let now = state.clock.now();
    let age = stats.oldest_created_at.map(|t| Duration::from_millis(u64::try_from(now.0 - t.0).unwrap_or(0)));
    let mut body = state.delivery.metrics.render(stats.depth, age);
    body.push_str("# HELP adieu_password_checks_total Password checks run (sign-in and account forms).\n");
    body.push_str("# TYPE adieu_password_checks_total counter\n");
    body.push_str(&format!("adieu_password_checks_total {}\n", state.passwords.checks()));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

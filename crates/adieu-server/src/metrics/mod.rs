//! `/metrics`: Prometheus text format. Delivery metrics (`crate::delivery::metrics`), HTTP
//! requests (`http`), sign-ins by method and outcome, tokens issued by grant type, open
//! sessions, `adieu_build_info` and the process (`process`).

mod counters;
pub(crate) mod http;
pub(crate) mod process;

pub use counters::{Counter, Histogram};

use crate::AppState;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::time::Duration;

/// The provider's counters (besides the delivery worker's).
#[derive(Debug)]
pub struct Metrics {
    /// Requests answered, by route pattern, method and status.
    pub http_requests: Counter,
    /// Time to answer, by route pattern.
    pub http_duration: Histogram,
    /// Sign-in attempts by method (`password`, `upstream`) and outcome (`success`,
    /// `bad_credentials`, `rate_limited`).
    pub sign_ins: Counter,
    /// Token responses by grant type (`authorization_code`, `refresh_token`).
    pub tokens_issued: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        process::started();
        Metrics {
            http_requests: Counter::new(
                "adieu_http_requests_total",
                "HTTP requests answered, by route, method and status.",
                &["route", "method", "status"],
            ),
            http_duration: Histogram::new(
                "adieu_http_request_duration_seconds",
                "Time from a request to its answer, by route.",
                &["route"],
            ),
            sign_ins: Counter::new(
                "adieu_sign_ins_total",
                "Sign-in attempts by method and outcome.",
                &["method", "outcome"],
            ),
            tokens_issued: Counter::new(
                "adieu_tokens_issued_total",
                "Token endpoint responses with tokens, by grant type.",
                &["grant_type"],
            ),
        }
    }
}

impl Metrics {
    /// Appends every metric of this struct, the build and the process.
    fn render(&self, out: &mut String) {
        self.http_requests.render(out);
        self.http_duration.render(out);
        self.sign_ins.render(out);
        self.tokens_issued.render(out);
        counters::gauge(
            out,
            "adieu_build_info",
            "The running version (always 1).",
            &format!("{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION")),
        );
        process::render(out);
    }
}

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
    match state.store.count_open_sessions().await {
        Ok(n) => counters::gauge(&mut body, "adieu_sessions_open", "OP sessions not ended.", &format!(" {n}")),
        Err(e) => tracing::warn!(error = %e, "counting open sessions failed"),
    }
    state.metrics.render(&mut body);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

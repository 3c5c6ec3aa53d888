//! `/healthz` (the process answers) and `/readyz` (the database answers too).

use crate::AppState;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

/// Routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz))
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready"),
        Err(e) => {
            // A write fault is logged once by the store when it begins; probes do not repeat it.
            match e {
                adieu_core::StoreError::Unavailable(_) => tracing::debug!(error = %e, "not ready"),
                _ => tracing::warn!(error = %e, "readiness check failed"),
            }
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
        }
    }
}

//! `/api/v1/logs`: the audit log, newest first; filter by `type` (exact, or a prefix ending in
//! `.`), `client_id`, `since` and `until` (Unix milliseconds), `limit` (default 100, at most 1000).

use super::{Admin, parse_query};
use crate::AppState;
use crate::error::OAuthError;
use adieu_core::audit::AuditFilter;
use adieu_core::time::UnixMillis;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

/// Routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/logs", get(list))
}

#[derive(Debug, Deserialize)]
struct LogQuery {
    #[serde(rename = "type")]
    kind: Option<String>,
    client_id: Option<String>,
    since: Option<i64>,
    until: Option<i64>,
    limit: Option<u32>,
}

async fn list(_: Admin, State(state): State<AppState>, RawQuery(q): RawQuery) -> Result<Response, OAuthError> {
    let q: LogQuery = parse_query(q)?;
    let filter = AuditFilter {
        kind: q.kind,
        client_id: q.client_id,
        since: q.since.map(UnixMillis),
        until: q.until.map(UnixMillis),
        limit: super::page_limit(q.limit)?,
    };
    Ok(Json(state.store.audit_events(&filter).await?).into_response())
}

//! `/api/v1/deliveries`: list (filter by status, client, session) with every attempt; one
//! delivery; retry one (a pending one now, a dead or rejected one in a new round).

use super::{Admin, not_found, parse_query};
use crate::AppState;
use crate::error::OAuthError;
use adieu_core::audit::Actor;
use adieu_core::delivery::{Attempt, Delivery, DeliveryStatus};
use adieu_core::id::{ClientId, SessionId};
use adieu_core::store::DeliveryFilter;
use adieu_proto::ErrorCode;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

/// Routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/deliveries", get(list))
        .route("/api/v1/deliveries/{id}", get(read))
        .route("/api/v1/deliveries/{id}/retry", post(retry))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    status: Option<String>,
    client_id: Option<String>,
    session_id: Option<String>,
    limit: Option<u32>,
}

/// A delivery with its attempts.
#[derive(Debug, Serialize)]
pub struct DeliveryView {
    /// The delivery.
    #[serde(flatten)]
    pub delivery: Delivery,
    /// Every attempt, oldest first.
    pub attempts: Vec<Attempt>,
}

async fn list(_: Admin, State(state): State<AppState>, RawQuery(q): RawQuery) -> Result<Response, OAuthError> {
    let q: ListQuery = parse_query(q)?;
    let status = q.status.map(|s| s.parse::<DeliveryStatus>()).transpose().map_err(OAuthError::invalid_request)?;
    let filter = DeliveryFilter {
        status,
        client_id: q.client_id.map(ClientId::new),
        session_id: q.session_id.map(SessionId::new),
        limit: super::page_limit(q.limit)?,
    };
    let mut out = Vec::new();
    for d in state.store.deliveries(&filter).await? {
        let attempts = state.store.delivery(&d.id).await?.map(|(_, a)| a).unwrap_or_default();
        out.push(DeliveryView { delivery: d, attempts });
    }
    Ok(Json(out).into_response())
}

async fn read(_: Admin, State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, OAuthError> {
    let (delivery, attempts) = state.store.delivery(&id).await?.ok_or_else(|| not_found("delivery"))?;
    Ok(Json(DeliveryView { delivery, attempts }).into_response())
}

async fn retry(_: Admin, State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, OAuthError> {
    if state.store.retry_delivery(&id, &Actor::AdminApi.name(), state.clock.now()).await?.is_some() {
        state.delivery.wake();
        let (delivery, attempts) = state.store.delivery(&id).await?.ok_or_else(|| not_found("delivery"))?;
        return Ok(Json(DeliveryView { delivery, attempts }).into_response());
    }
    match state.store.delivery(&id).await? {
        None => Err(not_found("delivery")),
        Some((d, _)) => Err(OAuthError {
            status: StatusCode::CONFLICT,
            code: ErrorCode::InvalidRequest,
            description: format!("only pending, dead and rejected deliveries can be retried; this one is {}", d.status),
            www_authenticate: None,
        }),
    }
}

//! `POST /api/v1/clients/{id}/check`: runs `adieu check-rp` against a client's back-channel
//! logout endpoint ([`crate::check_rp`]) and answers the report.

use super::{Admin, not_found};
use crate::AppState;
use crate::check_rp::{CheckError, check};
use crate::error::OAuthError;
use adieu_proto::ErrorCode;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};

/// Routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/clients/{id}/check", post(run))
}

async fn run(_: Admin, State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, OAuthError> {
    if id.is_empty() || id.len() > 128 {
        return Err(not_found("client"));
    }
    match check(&state, &id).await {
        Ok(report) => Ok(Json(report).into_response()),
        Err(CheckError::UnknownClient(_)) => Err(not_found("client")),
        Err(e @ CheckError::NoUri(_)) => Err(OAuthError {
            status: StatusCode::CONFLICT,
            ..OAuthError::bad(ErrorCode::InvalidRequest, e.to_string())
        }),
        Err(CheckError::Internal(e)) => Err(OAuthError::internal(e)),
    }
}

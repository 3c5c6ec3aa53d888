//! `/api/v1/sessions/{id}`: revoke one OP session (`session-revoked`), through
//! [`crate::user_admin::revoke_session`], audited with the actor `admin-api`.

use super::Admin;
use super::users::{ACTOR, user_error};
use crate::AppState;
use crate::error::OAuthError;
use crate::user_admin::{self, Ctx};
use adieu_core::id::SessionId;
use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::delete;

/// Routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/sessions/{id}", delete(revoke))
}

async fn revoke(_: Admin, State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, OAuthError> {
    let ended = user_admin::revoke_session(&Ctx::server(&state, &ACTOR.name()), &SessionId::new(id))
        .await
        .map_err(user_error)?;
    Ok(Json(super::users::revoked(std::slice::from_ref(&ended))).into_response())
}

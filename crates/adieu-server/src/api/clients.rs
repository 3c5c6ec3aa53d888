//! `/api/v1/clients`: create, list, read, update (PUT and PATCH: members present replace, `null`
//! removes the logout URI), delete.

use super::{Admin, not_found};
use crate::AppState;
use crate::client_metadata::{
    RegisterError, RegistrationError, UriPolicy, metadata_response, register, registration_from_metadata, update,
};
use crate::error::OAuthError;
use adieu_core::audit::Actor;
use adieu_core::id::ClientId;
use adieu_proto::ErrorCode;
use adieu_proto::client::parse_metadata;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

/// Routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/clients", get(list).post(create))
        .route("/api/v1/clients/{id}", get(read).put(replace).patch(replace).delete(remove))
}

/// The URI policy of this provider.
pub fn uri_policy(state: &AppState) -> UriPolicy {
    UriPolicy::for_settings(&state.settings)
}

/// Maps a registration failure to its protocol error.
pub fn register_error(e: RegisterError) -> OAuthError {
    match e {
        RegisterError::Invalid(RegistrationError { code, description, conflict: true }) => {
            OAuthError { status: axum::http::StatusCode::CONFLICT, ..OAuthError::bad(code, description) }
        }
        RegisterError::Invalid(RegistrationError { code, description, conflict: false }) => {
            OAuthError::bad(code, description)
        }
        RegisterError::Store(adieu_core::StoreError::Conflict(_)) => OAuthError {
            status: axum::http::StatusCode::CONFLICT,
            ..OAuthError::bad(ErrorCode::InvalidClientMetadata, "that client_id is already registered")
        },
        RegisterError::Store(e) => OAuthError::from(e),
    }
}

/// Parses a JSON metadata body.
pub fn metadata_body(body: &[u8]) -> Result<adieu_proto::client::ClientMetadataRequest, OAuthError> {
    let v: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| OAuthError::bad(ErrorCode::InvalidClientMetadata, format!("the body is not JSON: {e}")))?;
    parse_metadata(&v).map_err(|e| OAuthError::bad(ErrorCode::InvalidClientMetadata, e))
}

async fn list(_: Admin, State(state): State<AppState>) -> Result<Response, OAuthError> {
    let clients = state.store.list_clients().await?;
    Ok(Json(clients.iter().map(|c| metadata_response(c, None)).collect::<Vec<_>>()).into_response())
}

async fn create(_: Admin, State(state): State<AppState>, body: Bytes) -> Result<Response, OAuthError> {
    let req = metadata_body(&body)?;
    let reg = registration_from_metadata(req, true).map_err(|e| register_error(e.into()))?;
    let (client, secret) =
        register(state.store.as_ref(), reg, &uri_policy(&state), state.clock.now(), &Actor::AdminApi.name())
            .await
            .map_err(register_error)?;
    let mut res = (StatusCode::CREATED, Json(metadata_response(&client, secret))).into_response();
    // The answer carries the client secret.
    res.headers_mut().insert(axum::http::header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
    Ok(res)
}

async fn read(_: Admin, State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, OAuthError> {
    let c = state.store.client_by_id(&ClientId::new(id)).await?.ok_or_else(|| not_found("client"))?;
    Ok(Json(metadata_response(&c, None)).into_response())
}

async fn replace(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let req = metadata_body(&body)?;
    let updated = update(
        state.store.as_ref(),
        &ClientId::new(id),
        req,
        &uri_policy(&state),
        state.clock.now(),
        &Actor::AdminApi.name(),
    )
    .await
    .map_err(register_error)?
    .ok_or_else(|| not_found("client"))?;
    Ok(Json(metadata_response(&updated, None)).into_response())
}

async fn remove(_: Admin, State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, OAuthError> {
    if state.store.delete_client(&ClientId::new(id), &Actor::AdminApi.name(), state.clock.now()).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(not_found("client"))
    }
}

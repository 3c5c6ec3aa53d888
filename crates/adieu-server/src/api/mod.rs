//! The management API under `/api/v1` (JSON, admin bearer token).
//!
//! - [`clients`]: create, read, update, delete clients (the same validation as the CLI and
//!   dynamic registration; logout URI changes are audited and unsubscribing discards deliveries).
//! - [`deliveries`]: list and inspect deliveries with every attempt; retry dead ones.
//! - [`logs`]: the audit log.
//! - [`users`]: create, list, read, update, delete users; a user's sessions (list, revoke all).
//! - [`sessions`]: revoke one session.
//! - [`openapi`]: the OpenAPI 3.1 document of all of the above, at `/api/v1/openapi.json` (no token).
//!
//! Authentication: `Authorization: Bearer <token>` where the token is the configured
//! `admin_token` or one created with `adieu admin-token create` (stored as a hash).

pub mod check;
pub mod clients;
pub mod deliveries;
pub mod logs;
pub mod openapi;
pub mod sessions;
pub mod users;

use crate::AppState;
use crate::crypto::{constant_time_eq, hash_secret};
use crate::error::OAuthError;
use adieu_core::store::ApiTokenKind;
use adieu_proto::ErrorCode;
use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

/// Routes of the management API.
pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(clients::routes())
        .merge(check::routes())
        .merge(deliveries::routes())
        .merge(logs::routes())
        .merge(users::routes())
        .merge(sessions::routes())
        .merge(openapi::routes())
        // Answers carry users, sessions and secrets: never kept by a cache (RFC 9111 §5.2.2.5).
        .layer(tower_http::set_header::SetResponseHeaderLayer::overriding(
            axum::http::header::CACHE_CONTROL,
            axum::http::HeaderValue::from_static("no-store"),
        ))
}

/// A page size as the lists take it: absent (the default, 100) or 1 to 1000; anything else is
/// refused, as the OpenAPI document says.
pub fn page_limit(limit: Option<u32>) -> Result<Option<u32>, OAuthError> {
    match limit {
        Some(l) if !(1..=1000).contains(&l) => Err(OAuthError::invalid_request("limit must be 1 to 1000")),
        l => Ok(l),
    }
}

/// The bearer token of a request, if any.
pub fn bearer(parts: &Parts) -> Option<&str> {
    bearer_in(&parts.headers)
}

/// [`bearer`] from the headers alone.
pub fn bearer_in(headers: &axum::http::HeaderMap) -> Option<&str> {
    let v = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let t = v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer "))?.trim();
    (!t.is_empty() && t.len() <= 256).then_some(t)
}

/// An unauthenticated or unauthorised API call.
pub fn unauthorized() -> OAuthError {
    OAuthError {
        status: StatusCode::UNAUTHORIZED,
        code: ErrorCode::InvalidToken,
        description: "a valid bearer token is required".into(),
        www_authenticate: Some("Bearer realm=\"adieu\"".into()),
    }
}

/// Whether `token` is valid for `kind` (the admin token is valid for registration too).
pub async fn token_valid(state: &AppState, token: &str, kind: ApiTokenKind) -> Result<bool, OAuthError> {
    let hash = hash_secret(token);
    let configured = match kind {
        ApiTokenKind::Admin => vec![&state.settings.admin_token],
        ApiTokenKind::Registration => vec![&state.settings.registration_token, &state.settings.admin_token],
        // Only tokens made for it (`adieu admin-token create --kind global-token-revocation`).
        ApiTokenKind::GlobalRevocation => vec![],
    };
    for c in configured.into_iter().flatten() {
        if constant_time_eq(&hash_secret(&c.0), &hash) {
            return Ok(true);
        }
    }
    if state.store.api_token_exists(&hash, kind).await? {
        return Ok(true);
    }
    if kind == ApiTokenKind::Registration {
        return Ok(state.store.api_token_exists(&hash, ApiTokenKind::Admin).await?);
    }
    Ok(false)
}

/// Proof that the request carries an admin token.
#[derive(Debug, Clone, Copy)]
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = OAuthError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = bearer(parts).ok_or_else(unauthorized)?;
        if token_valid(state, token, ApiTokenKind::Admin).await? { Ok(Admin) } else { Err(unauthorized()) }
    }
}

/// Parses a query string into `T`, answering `invalid_request` on bad input.
pub fn parse_query<T: DeserializeOwned>(raw: Option<String>) -> Result<T, OAuthError> {
    serde_urlencoded::from_str(raw.as_deref().unwrap_or(""))
        .map_err(|e| OAuthError::invalid_request(format!("invalid query: {e}")))
}

/// A 404 in the API's error format.
pub fn not_found(what: &str) -> OAuthError {
    OAuthError {
        status: StatusCode::NOT_FOUND,
        code: ErrorCode::InvalidRequest,
        description: format!("no such {what}"),
        www_authenticate: None,
    }
}

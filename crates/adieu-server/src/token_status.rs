//! Token introspection (RFC 7662, `POST /introspect`) and revocation (RFC 7009, `POST /revoke`).
//!
//! Both take a form with `token` (and an optional `token_type_hint`, which only changes the order
//! of the look-ups) and authenticate the caller as a client, the same way as the token endpoint.
//!
//! Introspection is for resource servers, registered as confidential clients: public clients
//! cannot authenticate and get 401. An access token is active while it is neither revoked nor
//! expired and, unless it was issued under `offline_access`, while its OP session lasts: the
//! answer turns `active: false` as soon as the session ends, whatever ended it. A refresh token is
//! active for the client it was issued to (to any other caller it is `active: false`: it is that
//! client's credential alone) while it is neither rotated, revoked nor expired, and while its
//! session lasts unless it is an offline one. Inactive tokens answer `{"active": false}` and
//! nothing else (RFC 7662 §2.2).
//!
//! Revocation takes the caller's own tokens: a refresh token revokes its whole grant (every
//! refresh and access token issued from the same code), an access token only itself. An unknown
//! token, or another client's, answers 200 and changes nothing (RFC 7009 §2.2), so the endpoint
//! tells no one whether a token exists.

use crate::AppState;
use crate::crypto::hash_secret;
use crate::error::OAuthError;
use crate::token::{authenticate_client, form_params, invalid_client};
use adieu_core::client::{Client, TokenEndpointAuthMethod};
use adieu_core::grant::{AccessToken, RefreshToken};
use adieu_core::id::{ClientId, SessionId};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};
use std::collections::HashMap;

/// Routes of this module.
pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/introspect", post(introspect)).route("/revoke", post(revoke))
}

/// A token found by its hash.
enum Found {
    Access(AccessToken),
    Refresh(RefreshToken),
}

/// The form, and the client it authenticates.
async fn caller(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Client, HashMap<String, String>, String), OAuthError> {
    let p = form_params(headers, body)?;
    let client = authenticate_client(state, headers, &p).await?;
    let token = p.get("token").filter(|t| !t.is_empty()).cloned();
    let token = token.ok_or_else(|| OAuthError::invalid_request("token is required"))?;
    if token.len() > 4096 {
        return Err(OAuthError::invalid_request("token is too long"));
    }
    Ok((client, p, token))
}

/// The token, looked up in the order its hint suggests.
async fn find(state: &AppState, token: &str, hint: Option<&str>) -> Result<Option<Found>, OAuthError> {
    let hash = hash_secret(token);
    let refresh_first = hint == Some("refresh_token");
    for refresh in [refresh_first, !refresh_first] {
        let found = if refresh {
            state.store.refresh_token(&hash).await?.map(Found::Refresh)
        } else {
            state.store.access_token(&hash).await?.map(Found::Access)
        };
        if found.is_some() {
            return Ok(found);
        }
    }
    Ok(None)
}

async fn introspect(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    match introspection(&state, &headers, &body).await {
        Ok(v) => ([(header::CACHE_CONTROL, "no-store")], Json(v)).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn introspection(state: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<Value, OAuthError> {
    let (client, p, token) = caller(state, headers, body).await?;
    if client.token_endpoint_auth_method == TokenEndpointAuthMethod::None {
        return Err(invalid_client(false, "introspection is for confidential clients (resource servers)"));
    }
    let inactive = json!({ "active": false });
    let now = state.clock.now();
    let Some(found) = find(state, &token, p.get("token_type_hint").map(String::as_str)).await? else {
        return Ok(inactive);
    };
    let (session, client_id, sub, scope, offline, iat, exp, kind) = match &found {
        Found::Access(t) => {
            if t.revoked_at.is_some() || t.expires_at <= now {
                return Ok(inactive);
            }
            (&t.session_id, &t.client_id, &t.user_id, &t.scope, t.offline, t.created_at, t.expires_at, "Bearer")
        }
        Found::Refresh(t) => {
            if t.revoked_at.is_some() || t.rotated_at.is_some() || t.expires_at <= now || t.client_id != client.id {
                return Ok(inactive);
            }
            (&t.session_id, &t.client_id, &t.user_id, &t.scope, t.offline, t.created_at, t.expires_at, "refresh_token")
        }
    };
    let open = state.store.session_by_id(session).await?.is_some_and(|s| s.is_active(now, state.lifetime));
    if !open && !offline {
        return Ok(inactive);
    }
    let sid = sid_of(state, session, client_id).await?;
    let mut answer = json!({
        "active": true,
        "iss": state.issuer.as_ref(),
        "sub": sub.as_str(),
        "client_id": client_id.as_str(),
        "aud": client_id.as_str(),
        "scope": scope,
        "iat": iat.0 / 1000,
        "exp": exp.0 / 1000,
        "token_type": kind,
    });
    if let Some(sid) = sid {
        answer["sid"] = json!(sid);
    }
    Ok(answer)
}

/// The `sid` the client has for the session (its ID tokens' and logout tokens' `sid`).
async fn sid_of(state: &AppState, session: &SessionId, client: &ClientId) -> Result<Option<String>, OAuthError> {
    let parts = state.store.participations_of_sessions(std::slice::from_ref(session)).await?;
    Ok(parts.into_iter().find(|p| &p.client_id == client).map(|p| p.sid.to_string()))
}

async fn revoke(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    match revocation(&state, &headers, &body).await {
        Ok(()) => ([(header::CACHE_CONTROL, "no-store")], StatusCode::OK).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn revocation(state: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<(), OAuthError> {
    let (client, p, token) = caller(state, headers, body).await?;
    let now = state.clock.now();
    match find(state, &token, p.get("token_type_hint").map(String::as_str)).await? {
        Some(Found::Refresh(t)) if t.client_id == client.id => {
            let n = state.store.revoke_grant(&t.grant_id, now).await?;
            tracing::info!(client = %client.id, grant = %t.grant_id, revoked = n, "refresh token revoked with its grant");
        }
        Some(Found::Access(t)) if t.client_id == client.id => {
            state.store.revoke_access_token(&t.token_hash, now).await?;
            tracing::info!(client = %client.id, "access token revoked");
        }
        // Unknown, or another client's: nothing changes, and the answer does not say which.
        _ => {}
    }
    Ok(())
}

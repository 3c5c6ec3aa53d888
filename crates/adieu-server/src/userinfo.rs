//! The userinfo endpoint (Core §5.3): claims for a bearer access token (RFC 6750 §2.1).
//!
//! A token is valid while unexpired and unrevoked; a token without `offline_access` is also only
//! valid while its OP session is active (it is revoked when the session ends, and a session past
//! its idle or absolute lifetime is treated as ended here even before anything ends it).

use crate::AppState;
use crate::crypto::hash_secret;
use crate::error::OAuthError;
use adieu_proto::ErrorCode;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Map, Value, json};

/// Routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new().route("/userinfo", get(userinfo).post(userinfo))
}

fn invalid_token(description: &str) -> OAuthError {
    OAuthError {
        status: StatusCode::UNAUTHORIZED,
        code: ErrorCode::InvalidToken,
        description: description.to_owned(),
        www_authenticate: Some(format!("Bearer error=\"invalid_token\", error_description=\"{description}\"")),
    }
}

async fn userinfo(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match run(&state, &headers).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn run(state: &AppState, headers: &HeaderMap) -> Result<Response, OAuthError> {
    let Some(auth) = headers.get(header::AUTHORIZATION) else {
        let mut e = invalid_token("a bearer access token is required");
        e.www_authenticate = Some("Bearer".into());
        return Err(e);
    };
    let token = auth
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= 128)
        .ok_or_else(|| invalid_token("malformed bearer token"))?;
    let now = state.clock.now();
    let t = state
        .store
        .access_token(&hash_secret(token))
        .await?
        .filter(|t| t.revoked_at.is_none() && now < t.expires_at)
        .ok_or_else(|| invalid_token("the access token is invalid, expired or revoked"))?;
    if !t.offline {
        let active = state.store.session_by_id(&t.session_id).await?.is_some_and(|s| s.is_active(now, state.lifetime));
        if !active {
            return Err(invalid_token("the sign-in session has ended"));
        }
    }
    let user = state.store.user_by_id(&t.user_id).await?.ok_or_else(|| invalid_token("the user no longer exists"))?;
    let scopes: Vec<&str> = t.scope.split(' ').collect();
    let mut claims = Map::new();
    claims.insert("sub".into(), json!(user.id.as_str()));
    if scopes.contains(&"profile") {
        claims.insert("preferred_username".into(), json!(user.username));
    }
    if scopes.contains(&"email")
        && let Some(email) = &user.email
    {
        claims.insert("email".into(), json!(email));
        // adieu does not verify addresses itself; administrators enter them.
        claims.insert("email_verified".into(), json!(false));
    }
    let mut res = Json(Value::Object(claims)).into_response();
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

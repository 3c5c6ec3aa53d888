//! The token endpoint (RFC 6749 §3.2, Core §3.1.3): client authentication, then the grant.
//!
//! - `authorization_code`: one-time codes; a second use revokes every token issued from the code
//!   (RFC 6749 §4.1.2); the redirect URI must equal the request's; PKCE S256 is verified, and a
//!   `code_verifier` for a code issued without a challenge is refused (PKCE downgrade).
//! - `refresh_token`: rotation on every use; presenting a rotated token revokes the grant family;
//!   a token without `offline_access` works only while its OP session lasts (BC-RT-01).
//!
//! Client secrets are compared as hashes in constant time.

use crate::AppState;
use crate::authorize::parse_params;
use crate::crypto::{constant_time_eq, hash_secret, is_pkce_value, pkce_s256, random_secret};
use crate::error::OAuthError;
use crate::id_token::{IdTokenInput, mint};
use adieu_core::client::{Client, TokenEndpointAuthMethod};
use adieu_core::grant::{AccessToken, RefreshToken};
use adieu_core::id::{ClientId, SessionId, Sid, UserId};
use adieu_core::store::{CodeRedemption, RefreshUse};
use adieu_core::time::UnixMillis;
use adieu_proto::ErrorCode;
use adieu_proto::token::TokenResponse;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use std::collections::HashMap;
use std::time::Duration;

/// Routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new().route("/token", post(token))
}

async fn token(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    match run(&state, &headers, &body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn run(state: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<Response, OAuthError> {
    let p = form_params(headers, body)?;
    let client = authenticate_client(state, headers, &p).await?;
    match p.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            let res = authorization_code(state, &client, &p).await?;
            state.metrics.tokens_issued.inc(&["authorization_code"]);
            Ok(res)
        }
        Some("refresh_token") => {
            let res = refresh(state, &client, &p).await?;
            state.metrics.tokens_issued.inc(&["refresh_token"]);
            Ok(res)
        }
        Some(_) => {
            Err(OAuthError::bad(ErrorCode::UnsupportedGrantType, "supported: authorization_code, refresh_token"))
        }
        None => Err(OAuthError::invalid_request("grant_type is required")),
    }
}

/// The parameters of a client's form POST (the token, introspection and revocation endpoints):
/// `invalid_request` unless the body is `application/x-www-form-urlencoded` with each name once.
pub(crate) fn form_params(headers: &HeaderMap, body: &[u8]) -> Result<HashMap<String, String>, OAuthError> {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Err(OAuthError::invalid_request("the body must be application/x-www-form-urlencoded"));
    }
    parse_params(body).map_err(OAuthError::invalid_request)
}

/// 401 `invalid_client`, with a Basic challenge when the client tried Basic.
pub(crate) fn invalid_client(basic: bool, description: &str) -> OAuthError {
    OAuthError {
        status: StatusCode::UNAUTHORIZED,
        code: ErrorCode::InvalidClient,
        description: description.to_owned(),
        www_authenticate: basic.then(|| "Basic realm=\"adieu\"".to_owned()),
    }
}

fn form_decode(s: &str) -> Option<String> {
    // RFC 6749 §2.3.1: id and secret are form-urlencoded before Basic encoding.
    url::form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned())
}

/// Authenticates the client with the method it registered: `client_secret_basic`,
/// `client_secret_post`, or `none` (public client, identified by `client_id`).
pub async fn authenticate_client(
    state: &AppState,
    headers: &HeaderMap,
    p: &HashMap<String, String>,
) -> Result<Client, OAuthError> {
    let basic = match headers.get(header::AUTHORIZATION) {
        Some(v) => {
            let v = v.to_str().map_err(|_| invalid_client(true, "malformed Authorization header"))?;
            let Some(b64) = v.strip_prefix("Basic ").or_else(|| v.strip_prefix("basic ")) else {
                return Err(invalid_client(
                    true,
                    "only Basic client authentication is supported in the Authorization header",
                ));
            };
            let raw = STANDARD.decode(b64.trim()).map_err(|_| invalid_client(true, "malformed Basic credentials"))?;
            let raw = String::from_utf8(raw).map_err(|_| invalid_client(true, "malformed Basic credentials"))?;
            let (id, secret) =
                raw.split_once(':').ok_or_else(|| invalid_client(true, "malformed Basic credentials"))?;
            Some((
                form_decode(id).ok_or_else(|| invalid_client(true, "malformed Basic credentials"))?,
                form_decode(secret).ok_or_else(|| invalid_client(true, "malformed Basic credentials"))?,
            ))
        }
        None => None,
    };
    let (method, id, secret) = match (basic, p.get("client_secret")) {
        (Some(_), Some(_)) => return Err(OAuthError::invalid_request("use one client authentication method, not two")),
        (Some((id, secret)), None) => {
            if p.get("client_id").is_some_and(|c| *c != id) {
                return Err(OAuthError::invalid_request("client_id does not match the Basic credentials"));
            }
            (TokenEndpointAuthMethod::ClientSecretBasic, id, Some(secret))
        }
        (None, Some(secret)) => {
            let id = p.get("client_id").ok_or_else(|| OAuthError::invalid_request("client_id is required"))?;
            (TokenEndpointAuthMethod::ClientSecretPost, id.clone(), Some(secret.clone()))
        }
        (None, None) => {
            let id = p.get("client_id").ok_or_else(|| invalid_client(false, "client authentication is required"))?;
            (TokenEndpointAuthMethod::None, id.clone(), None)
        }
    };
    let is_basic = method == TokenEndpointAuthMethod::ClientSecretBasic;
    let client = state
        .store
        .client_by_id(&ClientId::new(id))
        .await?
        .ok_or_else(|| invalid_client(is_basic, "client authentication failed"))?;
    if client.token_endpoint_auth_method != method {
        return Err(invalid_client(
            is_basic,
            &format!("this client must authenticate with {}", client.token_endpoint_auth_method),
        ));
    }
    if let Some(secret) = secret {
        let stored = client.secret_hash.as_deref().unwrap_or("");
        if stored.is_empty() || !constant_time_eq(&hash_secret(&secret), stored) {
            return Err(invalid_client(is_basic, "client authentication failed"));
        }
    }
    Ok(client)
}

async fn authorization_code(
    state: &AppState,
    client: &Client,
    p: &HashMap<String, String>,
) -> Result<Response, OAuthError> {
    let code = p.get("code").ok_or_else(|| OAuthError::invalid_request("code is required"))?;
    let now = state.clock.now();
    let code_hash = hash_secret(code);
    // The client and redirect_uri are checked before the code is spent, so that a request with
    // another client's credentials or a wrong redirect_uri cannot burn a code it does not own.
    match state.store.code_by_hash(&code_hash).await? {
        None => return Err(OAuthError::invalid_grant("the code is invalid")),
        Some(c) if c.client_id != client.id => {
            return Err(OAuthError::invalid_grant("the code was issued to another client"));
        }
        Some(c) if p.get("redirect_uri") != Some(&c.redirect_uri) => {
            return Err(OAuthError::invalid_grant("redirect_uri does not match the authorization request"));
        }
        Some(_) => {}
    }
    let code = match state.store.redeem_code(&code_hash, now).await? {
        CodeRedemption::Redeemed(c) => c,
        CodeRedemption::AlreadyUsed(c) => {
            let n = state.store.revoke_grant(&c.grant_id, now).await?;
            tracing::warn!(client = %c.client_id, revoked = n, "authorization code reused; its tokens are revoked");
            return Err(OAuthError::invalid_grant("the code was already used; tokens issued from it are revoked"));
        }
        CodeRedemption::Unknown => return Err(OAuthError::invalid_grant("the code is invalid")),
    };
    if now >= code.expires_at {
        return Err(OAuthError::invalid_grant("the code has expired"));
    }
    check_code_verifier(code.code_challenge.as_deref(), p.get("code_verifier").map(String::as_str))?;
    let session = state.store.session_by_id(&code.session_id).await?;
    if !session.is_some_and(|s| s.is_active(now, state.lifetime)) {
        return Err(OAuthError::invalid_grant("the sign-in session has ended"));
    }
    let offline = code.scope.split(' ').any(|s| s == "offline_access");
    issue(
        state,
        client,
        Issue {
            grant_id: &code.grant_id,
            user_id: &code.user_id,
            session_id: &code.session_id,
            sid: &code.sid,
            scope: &code.scope,
            offline,
            auth_time: code.auth_time,
            nonce: code.nonce.clone(),
        },
    )
    .await
}

/// PKCE (RFC 7636 §4.6): the verifier must hash to the challenge; no verifier may be sent for a
/// code issued without a challenge (downgrade protection).
pub fn check_code_verifier(challenge: Option<&str>, verifier: Option<&str>) -> Result<(), OAuthError> {
    match (challenge, verifier) {
        (None, None) => Ok(()),
        (None, Some(_)) => {
            Err(OAuthError::invalid_grant("code_verifier sent for a code issued without code_challenge"))
        }
        (Some(_), None) => Err(OAuthError::invalid_grant("code_verifier is required")),
        (Some(c), Some(v)) => {
            if !is_pkce_value(v) {
                return Err(OAuthError::invalid_grant("code_verifier is malformed"));
            }
            if constant_time_eq(&pkce_s256(v), c) {
                Ok(())
            } else {
                Err(OAuthError::invalid_grant("code_verifier does not match code_challenge"))
            }
        }
    }
}

async fn refresh(state: &AppState, client: &Client, p: &HashMap<String, String>) -> Result<Response, OAuthError> {
    let presented = p.get("refresh_token").ok_or_else(|| OAuthError::invalid_request("refresh_token is required"))?;
    let now = state.clock.now();
    let t = match state.store.use_refresh_token(&hash_secret(presented), &client.id, now).await? {
        RefreshUse::Rotated(t) => t,
        RefreshUse::Replayed(t) => {
            let n = state.store.revoke_grant(&t.grant_id, now).await?;
            tracing::warn!(client = %t.client_id, revoked = n, "rotated refresh token presented again; grant revoked");
            return Err(OAuthError::invalid_grant("the refresh token was already used; the grant is revoked"));
        }
        RefreshUse::Revoked(_) => return Err(OAuthError::invalid_grant("the refresh token is revoked")),
        RefreshUse::Unknown | RefreshUse::WrongClient => {
            return Err(OAuthError::invalid_grant("the refresh token is invalid"));
        }
    };
    if now >= t.expires_at {
        return Err(OAuthError::invalid_grant("the refresh token has expired"));
    }
    if !t.offline {
        let session = state.store.session_by_id(&t.session_id).await?;
        if !session.is_some_and(|s| s.is_active(now, state.lifetime)) {
            return Err(OAuthError::invalid_grant("the sign-in session has ended"));
        }
    }
    if state.store.user_by_id(&t.user_id).await?.is_none() {
        return Err(OAuthError::invalid_grant("the user no longer exists"));
    }
    let scope = match p.get("scope") {
        None => t.scope.clone(),
        Some(requested) => {
            let granted: Vec<&str> = t.scope.split(' ').collect();
            let words: Vec<&str> = requested.split(' ').filter(|s| !s.is_empty()).collect();
            if let Some(extra) = words.iter().find(|w| !granted.contains(w)) {
                return Err(OAuthError::bad(ErrorCode::InvalidScope, format!("scope {extra:?} was not granted")));
            }
            words.join(" ")
        }
    };
    issue(
        state,
        client,
        Issue {
            grant_id: &t.grant_id,
            user_id: &t.user_id,
            session_id: &t.session_id,
            sid: &t.sid,
            scope: &scope,
            offline: t.offline,
            auth_time: t.auth_time,
            nonce: None,
        },
    )
    .await
}

struct Issue<'a> {
    grant_id: &'a str,
    user_id: &'a UserId,
    session_id: &'a SessionId,
    sid: &'a Sid,
    scope: &'a str,
    offline: bool,
    auth_time: UnixMillis,
    nonce: Option<String>,
}

async fn issue(state: &AppState, client: &Client, i: Issue<'_>) -> Result<Response, OAuthError> {
    let now = state.clock.now();
    let t = &state.settings.tokens;
    let access = random_secret();
    let access_row = AccessToken {
        token_hash: hash_secret(&access),
        grant_id: i.grant_id.to_owned(),
        client_id: client.id.clone(),
        user_id: i.user_id.clone(),
        session_id: i.session_id.clone(),
        scope: i.scope.to_owned(),
        offline: i.offline,
        created_at: now,
        expires_at: now.plus(Duration::from_secs(t.access_token_ttl_secs)),
        revoked_at: None,
    };
    let refresh = random_secret();
    let refresh_row = RefreshToken {
        token_hash: hash_secret(&refresh),
        grant_id: i.grant_id.to_owned(),
        client_id: client.id.clone(),
        user_id: i.user_id.clone(),
        session_id: i.session_id.clone(),
        sid: i.sid.clone(),
        scope: i.scope.to_owned(),
        offline: i.offline,
        auth_time: i.auth_time,
        created_at: now,
        expires_at: now.plus(Duration::from_secs(t.refresh_token_ttl_secs)),
        rotated_at: None,
        revoked_at: None,
    };
    // Atomic with revocation of the grant: a code reuse or refresh replay that raced this
    // request and revoked the grant first leaves nothing to issue.
    if !state.store.issue_tokens(&access_row, &refresh_row).await? {
        tracing::warn!(client = %client.id, "tokens not issued: the grant was revoked meanwhile (reuse or replay)");
        return Err(OAuthError::invalid_grant("the grant was revoked"));
    }
    let id_token = mint(
        state,
        IdTokenInput {
            client,
            user_id: i.user_id,
            sid: i.sid,
            auth_time: i.auth_time,
            nonce: i.nonce,
            access_token: &access,
        },
    )
    .map_err(OAuthError::internal)?;
    let body = TokenResponse {
        access_token: access,
        token_type: "Bearer".into(),
        expires_in: t.access_token_ttl_secs,
        refresh_token: Some(refresh),
        id_token,
        scope: i.scope.to_owned(),
    };
    let mut res = Json(body).into_response();
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    const V: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r7wW1gFWFOEjXk";
    const C: &str = "bwWFMyPfdG9qreDhH2lmftFx_dFeLDalzcT1gb_j68g";

    #[test]
    fn pkce_verifier_must_match_the_challenge() {
        check_code_verifier(Some(C), Some(V)).unwrap();
        assert!(check_code_verifier(Some(C), Some(&V.replace('d', "e"))).is_err());
        assert!(check_code_verifier(Some(C), None).is_err());
        assert!(check_code_verifier(Some(C), Some("short")).is_err());
    }

    #[test]
    fn pkce_downgrade_is_refused() {
        assert!(check_code_verifier(None, Some(V)).is_err());
        check_code_verifier(None, None).unwrap();
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        assert_eq!(form_decode("a%3Ab+c").unwrap(), "a:b c");
    }
}

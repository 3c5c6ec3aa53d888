//! The authorization endpoint (Core §3.1.2), GET and POST, as a pipeline of named checks:
//!
//! 1. [`parse_params`]: no parameter twice;
//! 2. [`check_client`], [`check_redirect_uri`]: until both hold, errors are shown, never redirected
//!    (RFC 6749 §4.1.2.1);
//! 3. [`check_request`]: `response_type=code`, no request objects, `openid` scope, PKCE S256
//!    (required for public clients), `prompt`, `max_age`; errors now go back to the client;
//! 4. sign-in if needed (`prompt=none` answers `login_required` instead);
//! 5. consent if needed ([`crate::consent_page`]; `prompt=none` answers `consent_required`);
//! 6. [`issue_code`]: the participation (and its `sid`) and a one-time code.

use crate::AppState;
use crate::browser::{ClientAddr, current_session};
use crate::crypto::{hash_secret, is_pkce_value, random_id, random_secret};
use crate::error::PageError;
use crate::i18n::msg;
use adieu_core::client::Client;
use adieu_core::grant::{AuthCode, PendingAuthorization};
use adieu_core::id::{ClientId, Sid};
use adieu_core::session::Session;
use adieu_proto::ErrorCode;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum_extra::extract::CookieJar;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;
use url::Url;

/// Routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new().route("/authorize", get(authorize_get).post(authorize_post))
}

/// Scopes adieu grants; others are dropped from the granted scope (RFC 6749 §3.3).
pub const SUPPORTED_SCOPES: [&str; 4] = ["openid", "profile", "email", "offline_access"];

async fn authorize_get(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    jar: CookieJar,
    RawQuery(q): RawQuery,
) -> Response {
    authorize(state, addr, jar, q.unwrap_or_default().as_bytes()).await
}

async fn authorize_post(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    jar: CookieJar,
    body: Bytes,
) -> Response {
    authorize(state, addr, jar, &body).await
}

/// Longest `state` kept and echoed (bytes): room for an application's own return data, and a
/// bound on what an anonymous request can make the provider store.
pub const MAX_STATE_LEN: usize = 2048;
/// Longest `nonce` (bytes).
pub const MAX_NONCE_LEN: usize = 512;

/// Decodes `application/x-www-form-urlencoded` pairs; a repeated parameter is an error (RFC 6749 §3.1).
pub fn parse_params(raw: &[u8]) -> Result<HashMap<String, String>, String> {
    let mut out = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(raw) {
        if v.is_empty() {
            continue; // RFC 6749 §3.1: parameters sent without a value are treated as omitted.
        }
        if out.insert(k.to_string(), v.to_string()).is_some() {
            return Err(format!("parameter {k} is repeated"));
        }
    }
    Ok(out)
}

/// An error that goes back to the client's redirect URI.
#[derive(Debug)]
pub struct RedirectError {
    /// The code.
    pub code: ErrorCode,
    /// The description.
    pub description: String,
}

fn rerr(code: ErrorCode, d: impl Into<String>) -> RedirectError {
    RedirectError { code, description: d.into() }
}

async fn authorize(state: AppState, addr: IpAddr, jar: CookieJar, raw: &[u8]) -> Response {
    match run(&state, addr, &jar, raw).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn run(state: &AppState, addr: IpAddr, jar: &CookieJar, raw: &[u8]) -> Result<Response, PageError> {
    let p = parse_params(raw).map_err(|e| PageError::bad_request(msg("Invalid sign-in request"), e))?;
    let client = check_client(state, &p).await?;
    let redirect_uri = check_redirect_uri(&client, &p)?;
    // A `state` too long to keep is not echoed either: the error goes back without it.
    let st = p.get("state").filter(|s| s.len() <= MAX_STATE_LEN).cloned();
    let request = match check_request(&client, &redirect_uri, &p) {
        Ok(r) => r,
        Err(e) => return Ok(error_redirect(state, &redirect_uri, st.as_deref(), e)),
    };
    let session = current_session(state, jar).await?;
    let now = state.clock.now();
    let needs_login = match &session {
        None => true,
        Some(s) => {
            request.prompt_login
                || request
                    .max_age
                    .is_some_and(|m| now.0 - s.auth_time.0 > i64::try_from(m).unwrap_or(i64::MAX).saturating_mul(1000))
        }
    };
    let prompt_none = p.get("prompt").is_some_and(|v| v.split(' ').any(|x| x == "none"));
    match session {
        Some(s) if !needs_login => {
            let after = crate::consent_page::After { prompt_none, addr: Some(addr) };
            crate::consent_page::proceed(state, &s, &client, &request, after).await
        }
        _ if prompt_none => Ok(error_redirect(
            state,
            &redirect_uri,
            st.as_deref(),
            rerr(ErrorCode::LoginRequired, "the user is not signed in"),
        )),
        _ => {
            let id = random_secret();
            let ttl = Duration::from_secs(state.settings.tokens.login_request_ttl_secs);
            let max = state.settings.login.max_pending_per_address;
            if !state.limiter.pending_request(addr, max, ttl, now).await? {
                tracing::warn!(%addr, "too many pending sign-in requests from this address");
                return Err(PageError::too_many_pending_sign_ins());
            }
            state.store.put_pending_authorization(&id, &request, now.plus(ttl)).await?;
            Ok(Redirect::to(&state.path(&format!("/login?request={id}"))).into_response())
        }
    }
}

/// The client exists.
pub async fn check_client(state: &AppState, p: &HashMap<String, String>) -> Result<Client, PageError> {
    let id = p.get("client_id").ok_or_else(|| {
        PageError::bad_request(
            msg("Invalid sign-in request"),
            msg("The link that brought you here does not say which application you are signing in to. \
             Go back to the application and try again."),
        )
    })?;
    state.store.client_by_id(&ClientId::new(id.clone())).await?.ok_or_else(|| {
        PageError::bad_request(
            msg("Unknown application"),
            msg("The application asking you to sign in is not registered here."),
        )
    })
}

/// The redirect URI is one of the client's, exactly (no prefix or pattern matching).
pub fn check_redirect_uri(client: &Client, p: &HashMap<String, String>) -> Result<String, PageError> {
    let wrong = || {
        PageError::bad_request(
            msg("Invalid sign-in request"),
            msg("The application asked to send you back to an address it has not registered, so you cannot be \
             sent back. Go back to the application and try again; if this keeps happening, its administrator \
             must fix its settings."),
        )
    };
    match p.get("redirect_uri") {
        Some(r) if client.redirect_uris.iter().any(|x| x == r) => Ok(r.clone()),
        // OIDC Core requires redirect_uri; tolerate its absence only when exactly one is registered.
        None if client.redirect_uris.len() == 1 => Ok(client.redirect_uris[0].clone()),
        _ => Err(wrong()),
    }
}

/// The rest of the request, once errors can be redirected.
pub fn check_request(
    client: &Client,
    redirect_uri: &str,
    p: &HashMap<String, String>,
) -> Result<PendingAuthorization, RedirectError> {
    check_response_type(p)?;
    if p.contains_key("request") || p.contains_key("request_uri") {
        return Err(rerr(ErrorCode::InvalidRequest, "request objects are not supported"));
    }
    if p.get("response_mode").is_some_and(|m| m != "query") {
        return Err(rerr(ErrorCode::InvalidRequest, "only response_mode=query is supported"));
    }
    let scope = check_scope(p)?;
    let code_challenge = check_pkce(client, p)?;
    let prompt_login = check_prompt(p)?;
    let max_age = check_max_age(p)?;
    let nonce = p.get("nonce").cloned();
    if nonce.as_ref().is_some_and(|n| n.len() > MAX_NONCE_LEN) {
        return Err(rerr(ErrorCode::InvalidRequest, "nonce is too long"));
    }
    if p.get("state").is_some_and(|s| s.len() > MAX_STATE_LEN) {
        return Err(rerr(ErrorCode::InvalidRequest, "state is longer than 2048 bytes"));
    }
    Ok(PendingAuthorization {
        client_id: client.id.clone(),
        redirect_uri: redirect_uri.to_owned(),
        scope,
        state: p.get("state").cloned(),
        nonce,
        code_challenge,
        max_age,
        prompt_login,
        prompt_consent: p.get("prompt").is_some_and(|v| v.split(' ').any(|x| x == "consent")),
    })
}

/// `response_type=code` only.
pub fn check_response_type(p: &HashMap<String, String>) -> Result<(), RedirectError> {
    match p.get("response_type").map(String::as_str) {
        Some("code") => Ok(()),
        None => Err(rerr(ErrorCode::InvalidRequest, "response_type is required")),
        Some(_) => Err(rerr(ErrorCode::UnsupportedResponseType, "only response_type=code is supported")),
    }
}

/// `openid` must be requested; unsupported scopes are dropped.
pub fn check_scope(p: &HashMap<String, String>) -> Result<String, RedirectError> {
    let requested = p.get("scope").map(String::as_str).unwrap_or("");
    let words: Vec<&str> = requested.split(' ').filter(|s| !s.is_empty()).collect();
    if !words.contains(&"openid") {
        return Err(rerr(ErrorCode::InvalidScope, "the openid scope is required"));
    }
    let granted: Vec<&str> = SUPPORTED_SCOPES.into_iter().filter(|s| words.contains(s)).collect();
    Ok(granted.join(" "))
}

/// PKCE (RFC 7636): S256 only; required for public clients.
pub fn check_pkce(client: &Client, p: &HashMap<String, String>) -> Result<Option<String>, RedirectError> {
    let challenge = p.get("code_challenge");
    let method = p.get("code_challenge_method").map(String::as_str);
    match (challenge, method) {
        (None, Some(_)) => Err(rerr(ErrorCode::InvalidRequest, "code_challenge_method without code_challenge")),
        (None, None) if client.is_public() => {
            Err(rerr(ErrorCode::InvalidRequest, "PKCE (code_challenge with S256) is required for public clients"))
        }
        (None, None) => Ok(None),
        (Some(c), Some("S256")) if c.len() == 43 && is_pkce_value(c) => Ok(Some(c.clone())),
        (Some(_), Some("S256")) => Err(rerr(ErrorCode::InvalidRequest, "code_challenge is not a valid S256 challenge")),
        (Some(_), _) => Err(rerr(ErrorCode::InvalidRequest, "code_challenge_method must be S256")),
    }
}

/// `prompt`: `none` alone, or any of `login consent select_account`. Returns whether a fresh
/// sign-in is required.
pub fn check_prompt(p: &HashMap<String, String>) -> Result<bool, RedirectError> {
    let Some(prompt) = p.get("prompt") else { return Ok(false) };
    let values: Vec<&str> = prompt.split(' ').filter(|s| !s.is_empty()).collect();
    if values.contains(&"none") && values.len() > 1 {
        return Err(rerr(ErrorCode::InvalidRequest, "prompt=none cannot be combined with other values"));
    }
    for v in &values {
        if !matches!(*v, "none" | "login" | "consent" | "select_account") {
            return Err(rerr(ErrorCode::InvalidRequest, format!("unsupported prompt value {v:?}")));
        }
    }
    Ok(values.contains(&"login") || values.contains(&"select_account"))
}

/// `max_age`: a non-negative integer of seconds.
pub fn check_max_age(p: &HashMap<String, String>) -> Result<Option<u64>, RedirectError> {
    p.get("max_age")
        .map(|m| {
            m.parse::<u64>().map_err(|_| rerr(ErrorCode::InvalidRequest, "max_age must be a non-negative integer"))
        })
        .transpose()
}

/// Appends parameters to a redirect URI, keeping its own query.
pub fn with_params(uri: &str, params: &[(&str, &str)]) -> String {
    match Url::parse(uri) {
        Ok(mut u) => {
            {
                let mut q = u.query_pairs_mut();
                for (k, v) in params {
                    q.append_pair(k, v);
                }
            }
            u.to_string()
        }
        Err(_) => uri.to_owned(),
    }
}

/// An error response sent to the client (RFC 6749 §4.1.2.1, with `iss` per RFC 9207).
pub fn error_redirect(state: &AppState, redirect_uri: &str, st: Option<&str>, e: RedirectError) -> Response {
    let mut params = vec![("error", e.code.as_str()), ("error_description", e.description.as_str())];
    if let Some(s) = st {
        params.push(("state", s));
    }
    params.push(("iss", &state.issuer));
    Redirect::to(&with_params(redirect_uri, &params)).into_response()
}

/// Records the participation (creating its `sid` once per session and client) and sends a code.
pub async fn issue_code(
    state: &AppState,
    session: &Session,
    client: &Client,
    req: &PendingAuthorization,
) -> Result<Response, PageError> {
    let now = state.clock.now();
    let participation = state.store.ensure_participation(&session.id, &client.id, &Sid::new(random_id()), now).await?;
    let code = random_secret();
    state
        .store
        .insert_code(&AuthCode {
            code_hash: hash_secret(&code),
            grant_id: random_id(),
            client_id: client.id.clone(),
            redirect_uri: req.redirect_uri.clone(),
            user_id: session.user_id.clone(),
            session_id: session.id.clone(),
            sid: participation.sid,
            scope: req.scope.clone(),
            nonce: req.nonce.clone(),
            code_challenge: req.code_challenge.clone(),
            auth_time: session.auth_time,
            created_at: now,
            expires_at: now.plus(Duration::from_secs(state.settings.tokens.code_ttl_secs)),
            used_at: None,
        })
        .await?;
    state.store.touch_session(&session.id, now).await?;
    let mut params = vec![("code", code.as_str())];
    if let Some(s) = &req.state {
        params.push(("state", s));
    }
    params.push(("iss", &state.issuer));
    Ok(Redirect::to(&with_params(&req.redirect_uri, &params)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn repeated_parameters_are_refused() {
        assert!(parse_params(b"scope=openid&scope=email").is_err());
        assert_eq!(parse_params(b"a=1&b=&c=3").unwrap().len(), 2);
    }

    #[test]
    fn prompt_none_cannot_be_combined() {
        assert!(check_prompt(&params(&[("prompt", "none login")])).is_err());
        assert!(!check_prompt(&params(&[("prompt", "none")])).unwrap());
        assert!(check_prompt(&params(&[("prompt", "login")])).unwrap());
        assert!(check_prompt(&params(&[("prompt", "bogus")])).is_err());
    }

    #[test]
    fn scope_requires_openid_and_drops_unknown_scopes() {
        assert!(check_scope(&params(&[("scope", "email")])).is_err());
        assert_eq!(check_scope(&params(&[("scope", "openid weird email")])).unwrap(), "openid email");
    }

    #[test]
    fn max_age_must_be_a_non_negative_integer() {
        assert_eq!(check_max_age(&params(&[("max_age", "30")])).unwrap(), Some(30));
        assert!(check_max_age(&params(&[("max_age", "-1")])).is_err());
        assert!(check_max_age(&params(&[("max_age", "soon")])).is_err());
    }

    #[test]
    fn with_params_keeps_the_registered_query() {
        assert_eq!(with_params("https://rp/cb?x=1", &[("code", "a b")]), "https://rp/cb?x=1&code=a+b");
    }
}

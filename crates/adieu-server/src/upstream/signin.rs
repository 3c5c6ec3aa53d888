//! Signing in through an upstream: `GET /upstream/{id}/start` sends the browser to the upstream's
//! authorization endpoint (code flow, PKCE S256, `state`, `nonce`); `GET /upstream/{id}/callback`
//! brings it back. The callback is a pipeline of named checks, in order:
//!
//! 1. [`check_state`]: the `state` is the one this browser was given (a cookie set at the start,
//!    compared in constant time) and names a pending sign-in of this upstream, which is taken,
//!    so a callback works once (no replay), and not after `tokens.login_request_ttl_secs`;
//! 2. [`check_issuer_parameter`]: an `iss` parameter (RFC 9207), if sent, is the upstream's
//!    (mix-up defence);
//! 3. the upstream's `error`, if it answered one;
//! 4. [`exchange_code`]: the code, with the PKCE verifier and `client_secret_basic`;
//! 5. the ID token ([`adieu_rp::id_token`]): signature with the upstream's keys, `alg` allow-list,
//!    `iss`, `aud`, `azp`, `exp`, `iat`, and the `nonce` of this sign-in;
//! 6. [`super::account::link_or_create`]: the local user linked to the upstream account;
//! 7. the session, exactly as a password sign-in makes it ([`crate::sign_in::sign_in_with`]),
//!    remembering the upstream `iss`/`sub`/`sid` (BC-SID-04) and where the callback came from
//!    ([`SignInFrom`]);
//! 8. the authorization request the sign-in started from, if any, resumes.

use super::account::link_or_create;
use super::registry::{Discovered, Upstream, read_limited};
use crate::AppState;
use crate::browser::ClientAddr;
use crate::crypto::{constant_time_eq, hash_secret, pkce_s256, random_secret};
use crate::delivery::outbound::Outbound;
use crate::error::PageError;
use crate::i18n::msg;
use crate::sign_in::SignInFrom;
use adieu_core::upstream::{PendingUpstreamLogin, UpstreamSignIn};
use adieu_rp::id_token::{IdTokenError, VerifiedIdToken, verify_id_token_cached};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// The cookie that binds a sign-in to the browser that started it: it holds the `state`.
fn state_cookie_name(state: &AppState) -> &'static str {
    if state.cookies.secure { "__Host-adieu_upstream" } else { "adieu_upstream" }
}

/// A browser-session cookie; the pending sign-in it points to expires server-side.
fn state_cookie(state: &AppState, value: String) -> Cookie<'static> {
    Cookie::build((state_cookie_name(state), value))
        .path("/")
        .http_only(true)
        // Lax: the callback is a top-level GET from the upstream's site.
        .same_site(SameSite::Lax)
        .secure(state.cookies.secure)
        .build()
}

fn state_cookie_removal(state: &AppState) -> Cookie<'static> {
    let mut c = state_cookie(state, String::new());
    c.make_removal();
    c
}

/// The upstream named in the path, or a 404 page.
pub fn check_upstream(state: &AppState, id: &str) -> Result<Arc<Upstream>, PageError> {
    state.upstreams.get(id).cloned().ok_or_else(|| PageError {
        status: StatusCode::NOT_FOUND,
        title: msg("Unknown sign-in provider").into(),
        message: msg("This sign-in provider is not configured here.").into(),
    })
}

fn unavailable(upstream: &Upstream) -> PageError {
    PageError {
        status: StatusCode::BAD_GATEWAY,
        title: msg("Sign-in is not available").into(),
        message: crate::i18n::tr_with(
            "{name} cannot be reached right now. Please try again in a moment, or sign in another way.",
            &[("name", &upstream.settings.display_name)],
        ),
    }
}

fn failed(upstream: &Upstream) -> PageError {
    PageError::bad_request(
        msg("Sign-in failed"),
        crate::i18n::tr_with(
            "The sign-in with {name} could not be completed. Go back to the application and start again.",
            &[("name", &upstream.settings.display_name)],
        ),
    )
}

/// The redirect URI adieu registers at the upstream.
pub fn callback_uri(state: &AppState, upstream: &Upstream) -> String {
    state.url(&format!("/upstream/{}/callback", upstream.settings.id))
}

#[derive(Debug, Deserialize)]
pub(super) struct StartQuery {
    request: Option<String>,
}

/// `GET /upstream/{id}/start[?request=…]`: starts the upstream's code flow.
pub(super) async fn start(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Path(id): Path<String>,
    jar: CookieJar,
    Query(q): Query<StartQuery>,
) -> Result<Response, PageError> {
    let upstream = check_upstream(&state, &id)?;
    let now = state.clock.now();
    // The authorization request to resume must still be waiting (it is checked again at the end).
    let request = q.request.filter(|r| !r.is_empty());
    let pending = match &request {
        Some(r) if r.len() <= 100 => state.store.pending_authorization(r, now).await?,
        Some(_) => None,
        None => None,
    };
    if request.is_some() && pending.is_none() {
        return Err(PageError::bad_request(
            msg("This sign-in has expired"),
            msg("The sign-in request is unknown or too old. Go back to the application and start again."),
        ));
    }
    let discovered = upstream.discovered().await.map_err(|_| unavailable(&upstream))?;
    let (st, nonce, verifier) = (random_secret(), random_secret(), random_secret());
    let ttl = Duration::from_secs(state.settings.tokens.login_request_ttl_secs);
    if !state.limiter.pending_request(addr, state.settings.login.max_pending_per_address, ttl, now).await? {
        tracing::warn!(%addr, "too many pending upstream sign-ins from this address");
        return Err(PageError::too_many_pending_sign_ins());
    }
    state
        .store
        .put_upstream_login(&PendingUpstreamLogin {
            state_hash: hash_secret(&st),
            upstream_id: upstream.settings.id.clone(),
            nonce: nonce.clone(),
            code_verifier: verifier.clone(),
            request_id: request,
            created_at: now,
            expires_at: now.plus(ttl),
        })
        .await?;
    let mut url = Url::parse(&discovered.authorization_endpoint).map_err(|_| unavailable(&upstream))?;
    {
        let mut p = url.query_pairs_mut();
        p.append_pair("response_type", "code")
            .append_pair("client_id", &upstream.settings.client_id)
            .append_pair("redirect_uri", &callback_uri(&state, &upstream))
            .append_pair("scope", &upstream.settings.scope())
            .append_pair("state", &st)
            .append_pair("nonce", &nonce)
            .append_pair("code_challenge", &pkce_s256(&verifier))
            .append_pair("code_challenge_method", "S256");
        // An application that asked for a fresh sign-in gets one at the upstream too.
        if let Some(req) = &pending {
            if req.prompt_login {
                p.append_pair("prompt", "login");
            }
            if let Some(m) = req.max_age {
                p.append_pair("max_age", &m.to_string());
            }
        }
    }
    tracing::info!(upstream = %upstream.settings.id, "sign-in sent to the upstream");
    Ok((jar.add(state_cookie(&state, st)), Redirect::to(url.as_str())).into_response())
}

#[derive(Debug, Deserialize)]
pub(super) struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    iss: Option<String>,
    error: Option<String>,
}

/// `GET /upstream/{id}/callback`: the pipeline in the module documentation.
pub(super) async fn callback(
    State(state): State<AppState>,
    from: SignInFrom,
    Path(id): Path<String>,
    jar: CookieJar,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let removal = state_cookie_removal(&state);
    match finish(&state, &id, &jar, q, &from).await {
        Ok((jar, res)) => (jar.add(removal), res).into_response(),
        Err(e) => (jar.add(removal), e).into_response(),
    }
}

async fn finish(
    state: &AppState,
    id: &str,
    jar: &CookieJar,
    q: CallbackQuery,
    from: &SignInFrom,
) -> Result<(CookieJar, Response), PageError> {
    let upstream = check_upstream(state, id)?;
    let pending = check_state(state, &upstream, jar, q.state.as_deref()).await?;
    check_issuer_parameter(&upstream, q.iss.as_deref())?;
    if let Some(e) = &q.error {
        tracing::info!(upstream = %upstream.settings.id, error = %e.chars().take(64).collect::<String>(), "the upstream answered an error");
        return Err(PageError::bad_request(
            msg("Sign-in cancelled"),
            crate::i18n::tr_with(
                "{name} did not sign you in. Go back to the application and start again.",
                &[("name", &upstream.settings.display_name)],
            ),
        ));
    }
    let code = q.code.filter(|c| !c.is_empty() && c.len() <= 2048).ok_or_else(|| failed(&upstream))?;
    let discovered = upstream.discovered().await.map_err(|_| unavailable(&upstream))?;
    let tokens = exchange_code(state, &upstream, &discovered, &code, &pending.code_verifier).await?;
    let now = state.clock.now();
    let id_token = verify_id_token_cached(
        &tokens.id_token,
        discovered.logout.keys(),
        &discovered.id_tokens,
        &pending.nonce,
        now.as_secs(),
    )
    .await
    .map_err(|e| id_token_refused(&upstream, &e))?;
    let user = link_or_create(state, &upstream, &discovered, &id_token, tokens.access_token.as_deref()).await?;
    let signed_in = UpstreamSignIn {
        issuer: upstream.settings.issuer.clone(),
        sub: id_token.subject().to_owned(),
        sid: id_token.sid().map(str::to_owned),
        at: now,
    };
    let (jar, session) = crate::sign_in::sign_in_with(state, jar.clone(), &user, Some(&signed_in), from).await?;
    state.metrics.sign_ins.inc(&["upstream", "success"]);
    tracing::info!(
        upstream = %upstream.settings.id,
        sub = %user.id,
        session = %session.id,
        upstream_sid = id_token.sid().is_some(),
        "signed in through an upstream"
    );
    resume(state, &session, pending.request_id.as_deref(), jar).await
}

/// 1. The `state` must be the one this browser was sent off with, and name a pending sign-in of
///    this upstream that has not been used or expired. It is taken here: a second callback with it
///    finds nothing.
pub async fn check_state(
    state: &AppState,
    upstream: &Upstream,
    jar: &CookieJar,
    st: Option<&str>,
) -> Result<PendingUpstreamLogin, PageError> {
    let refused = |why: &str| {
        tracing::warn!(upstream = %upstream.settings.id, why, "upstream callback refused");
        PageError::bad_request(
            msg("Sign-in failed"),
            msg("This sign-in did not start in this browser, was already completed, or took too long. \
             Go back to the application and start again."),
        )
    };
    let st = st.filter(|s| !s.is_empty() && s.len() <= 100).ok_or_else(|| refused("no state"))?;
    let cookie = jar.get(state_cookie_name(state)).map(|c| c.value()).unwrap_or("");
    if cookie.is_empty() || !constant_time_eq(cookie, st) {
        return Err(refused("the state is not this browser's"));
    }
    let pending = state
        .store
        .take_upstream_login(&hash_secret(st), state.clock.now())
        .await?
        .ok_or_else(|| refused("unknown, used or expired state"))?;
    if pending.upstream_id != upstream.settings.id {
        return Err(refused("the state belongs to another upstream"));
    }
    Ok(pending)
}

/// 2. RFC 9207: an `iss` in the authorization response must be the upstream's issuer.
pub fn check_issuer_parameter(upstream: &Upstream, iss: Option<&str>) -> Result<(), PageError> {
    match iss {
        Some(i) if i != upstream.settings.issuer => {
            tracing::warn!(upstream = %upstream.settings.id, "the authorization response names another issuer (mix-up)");
            Err(failed(upstream))
        }
        _ => Ok(()),
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    id_token: String,
    #[serde(default)]
    access_token: Option<String>,
}

/// `application/x-www-form-urlencoded` encoding of a client id or secret for HTTP Basic
/// (RFC 6749 §2.3.1).
fn form_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// 4. The code exchange at the upstream's token endpoint, with `client_secret_basic` and the PKCE
///    verifier.
async fn exchange_code(
    state: &AppState,
    upstream: &Upstream,
    d: &Discovered,
    code: &str,
    verifier: &str,
) -> Result<TokenResponse, PageError> {
    let s = &upstream.settings;
    let secret = s.client_secret.as_ref().map(|x| x.0.as_str()).unwrap_or_default();
    let redirect_uri = callback_uri(state, upstream);
    let req = upstream
        .outbound()
        .request(reqwest::Method::POST, &d.token_endpoint)
        .map_err(|e| {
            tracing::warn!(upstream = %s.id, error = %e, "token endpoint refused by the outbound policy");
            unavailable(upstream)
        })?
        .basic_auth(form_encode(&s.client_id), Some(form_encode(secret)))
        .header(reqwest::header::ACCEPT, "application/json")
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri.as_str()),
            ("code_verifier", verifier),
        ]);
    let res = req.send().await.map_err(|e| {
        tracing::warn!(upstream = %s.id, error = %Outbound::describe_error(&e), "code exchange failed");
        unavailable(upstream)
    })?;
    let status = res.status();
    let body = read_limited(res).await.map_err(|e| {
        tracing::warn!(upstream = %s.id, error = %e, "reading the token response failed");
        unavailable(upstream)
    })?;
    if !status.is_success() {
        let error = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(|e| e.chars().take(64).collect::<String>()));
        tracing::warn!(upstream = %s.id, %status, error = ?error, "the upstream refused the code");
        return Err(if status.is_server_error() { unavailable(upstream) } else { failed(upstream) });
    }
    serde_json::from_slice(&body).map_err(|e| {
        tracing::warn!(upstream = %s.id, error = %e, "the token response has no id_token");
        failed(upstream)
    })
}

fn id_token_refused(upstream: &Upstream, e: &IdTokenError) -> PageError {
    tracing::warn!(upstream = %upstream.settings.id, error = %e, "the upstream's ID token was refused");
    match e {
        IdTokenError::Keys(_) => unavailable(upstream),
        _ => failed(upstream),
    }
}

/// 8. Back to the application whose authorization request the sign-in started from, or to the
///    start page.
async fn resume(
    state: &AppState,
    session: &adieu_core::Session,
    request_id: Option<&str>,
    jar: CookieJar,
) -> Result<(CookieJar, Response), PageError> {
    let now = state.clock.now();
    let Some(id) = request_id else { return Ok((jar, Redirect::to(&state.path("/")).into_response())) };
    let expired = || {
        PageError::bad_request(
            msg("This sign-in has expired"),
            msg(
                "You are signed in, but the application's request is too old. Go back to the application and start again.",
            ),
        )
    };
    let req = state.store.pending_authorization(id, now).await?.ok_or_else(expired)?;
    let client = state.store.client_by_id(&req.client_id).await?.ok_or_else(expired)?;
    state.store.delete_pending_authorization(id).await?;
    let after = crate::consent_page::After { prompt_none: false, addr: None };
    let res = crate::consent_page::proceed(state, session, &client, &req, after).await?;
    Ok((jar, res))
}

/// What the ID token says about the person, for the local account.
pub(super) fn profile_claims(t: &VerifiedIdToken) -> (Option<String>, Option<String>, bool) {
    (
        t.string_claim("preferred_username").map(str::to_owned),
        t.string_claim("email").map(str::to_owned),
        t.claims().get("email_verified").and_then(serde_json::Value::as_bool).unwrap_or(false),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_6749_2_3_1_basic_credentials_are_form_encoded() {
        assert_eq!(form_encode("a b:c/é"), "a+b%3Ac%2F%C3%A9");
        assert_eq!(form_encode("plain-id_1.x~"), "plain-id_1.x%7E");
    }
}

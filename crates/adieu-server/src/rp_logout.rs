//! RP-Initiated Logout 1.0 at the `end_session_endpoint` (`/logout`, GET and POST, RPI-02).
//!
//! Pipeline: [`validate`] the request (RPI-03/04/07/09: a hint must be ours, `client_id` must match
//! it, a `post_logout_redirect_uri` must be registered exactly and is only honoured with a valid
//! hint); then either end the browser's session at once (the hint names this browser's current
//! session and user) or ask the user first (RPI-05: no hint, or a hint for another session). The
//! confirmation form posts to `/logout/confirm`, which validates everything again.
//!
//! Ending goes through [`crate::session_end::end_session`] with initiator `rp-logout`.

use crate::AppState;
use crate::authorize::{parse_params, with_params};
use crate::browser::{check_csrf, csrf_token, current_session};
use crate::error::PageError;
use crate::i18n::msg;
use crate::id_token::{HintClaims, verify_hint};
use adieu_core::client::Client;
use adieu_core::delivery::Verdict;
use adieu_core::id::{ClientId, Sid};
use adieu_core::initiator::Initiator;
use adieu_core::session::{EndedSession, Session};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum_extra::extract::CookieJar;
use minijinja::context;
use std::collections::HashMap;

/// Routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new().route("/logout", get(logout_get).post(logout_post)).route("/logout/confirm", post(confirm))
}

/// Parameters carried through the confirmation page.
const CARRIED: [&str; 4] = ["id_token_hint", "client_id", "post_logout_redirect_uri", "state"];

/// A validated logout request.
#[derive(Debug)]
pub struct LogoutRequest {
    /// The verified hint.
    pub hint: Option<HintClaims>,
    /// The client the request is from (by `client_id` or the hint's `aud`).
    pub client: Option<Client>,
    /// Where to send the browser afterwards: registered exactly, and backed by a valid hint.
    pub redirect: Option<String>,
    /// `state` to echo (RPI-03).
    pub state: Option<String>,
    /// A registered `post_logout_redirect_uri` was given without a hint: no redirect (RPI-07).
    pub redirect_withheld: bool,
}

fn invalid(message: &str) -> PageError {
    PageError::bad_request(msg("Sign-out request not accepted"), message)
}

/// Validates the request (RPI-03, RPI-04, RPI-07, RPI-09). Any failure aborts the whole request:
/// nothing is ended and nobody is redirected.
pub async fn validate(state: &AppState, p: &HashMap<String, String>) -> Result<LogoutRequest, PageError> {
    // RPI-04: the hint must have been issued by us; an expired one is fine.
    let hint = match p.get("id_token_hint") {
        Some(h) => {
            Some(verify_hint(state, h).map_err(|_| invalid(msg("The application sent a sign-out request that this provider did not issue, so it is not accepted. Nothing was signed out; go back to the application and try again.")))?)
        }
        None => None,
    };
    // RPI-03: client_id and the hint's audience must agree.
    if let (Some(cid), Some(h)) = (p.get("client_id"), &hint)
        && !h.aud.contains(cid)
    {
        return Err(invalid(msg(
            "The sign-out request names one application but was issued to another, so it is not accepted. Nothing was signed out; go back to the application and try again.",
        )));
    }
    let client_id = p.get("client_id").map(String::as_str).or_else(|| hint.as_ref().and_then(|h| h.aud.first()));
    let client = match client_id {
        Some(id) => Some(
            state
                .store
                .client_by_id(&ClientId::new(id))
                .await?
                .ok_or_else(|| invalid(msg("The application asking to sign you out is not registered here.")))?,
        ),
        None => None,
    };
    // RPI-07: exact match with a registered URI, and only with a valid hint.
    let mut redirect = None;
    let mut redirect_withheld = false;
    if let Some(uri) = p.get("post_logout_redirect_uri") {
        let client = client
            .as_ref()
            .ok_or_else(|| invalid(msg("The sign-out request asks to send you back to an address without saying which application it is from, so it is not accepted. Nothing was signed out.")))?;
        if !client.post_logout_redirect_uris.iter().any(|r| r == uri) {
            return Err(invalid(msg(
                "The application asked to send you back to an address it has not registered, so the sign-out request is not accepted. Nothing was signed out.",
            )));
        }
        if hint.is_some() {
            redirect = Some(uri.clone());
        } else {
            redirect_withheld = true;
        }
    }
    Ok(LogoutRequest { hint, client, redirect, state: p.get("state").cloned(), redirect_withheld })
}

/// Whether the hint names this browser's session and user (RPI-05).
async fn hint_matches(state: &AppState, hint: &HintClaims, session: &Session) -> Result<bool, PageError> {
    if hint.sub != session.user_id.as_str() {
        return Ok(false);
    }
    let Some(sid) = &hint.sid else { return Ok(false) };
    let p = state.store.participation_by_sid(&Sid::new(sid.clone())).await?;
    Ok(p.is_some_and(|p| p.session_id == session.id && hint.aud.contains(p.client_id.as_str())))
}

async fn logout_get(State(state): State<AppState>, jar: CookieJar, RawQuery(q): RawQuery) -> Response {
    start(state, jar, q.unwrap_or_default().as_bytes()).await.unwrap_or_else(IntoResponse::into_response)
}

async fn logout_post(State(state): State<AppState>, jar: CookieJar, body: Bytes) -> Response {
    start(state, jar, &body).await.unwrap_or_else(IntoResponse::into_response)
}

async fn start(state: AppState, jar: CookieJar, raw: &[u8]) -> Result<Response, PageError> {
    let deadline = wait_deadline(&state);
    let p = parse_params(raw).map_err(|e| invalid(&e))?;
    let req = validate(&state, &p).await?;
    let Some(session) = current_session(&state, &jar).await? else {
        // Not signed in here: logging out is idempotent (RPI-09), nothing to end.
        return Ok(finish(&state, jar, &req, None).await);
    };
    let confirmed = match &req.hint {
        Some(h) => hint_matches(&state, h, &session).await?,
        None => false,
    };
    if confirmed {
        let ended = end_and_wait(&state, &session.id, deadline).await?;
        return Ok(finish(&state, jar, &req, ended).await);
    }
    // RPI-05: ask the user.
    let username = state.store.user_by_id(&session.user_id).await?.map(|u| u.username);
    let (jar, csrf) = csrf_token(&state, jar);
    let params: Vec<(&str, String)> = CARRIED.iter().filter_map(|k| p.get(*k).map(|v| (*k, v.clone()))).collect();
    let html = state.pages.render(
        "logout_confirm.html",
        context! {
            action => state.path("/logout/confirm"),
            csrf => csrf,
            params => params,
            client_name => req.client.as_ref().map(|c| c.name.clone()),
            username => username,
        },
    );
    Ok((jar, html).into_response())
}

async fn confirm(State(state): State<AppState>, jar: CookieJar, headers: HeaderMap, body: Bytes) -> Response {
    confirm_inner(state, jar, headers, &body).await.unwrap_or_else(IntoResponse::into_response)
}

async fn confirm_inner(state: AppState, jar: CookieJar, headers: HeaderMap, raw: &[u8]) -> Result<Response, PageError> {
    let deadline = wait_deadline(&state);
    let mut p = parse_params(raw).map_err(|e| invalid(&e))?;
    let csrf = p.remove("csrf").unwrap_or_default();
    if check_csrf(&state, &jar, &headers, &csrf).is_err() {
        return Err(PageError::form_refused(msg(
            "The sign-out form expired or was sent from another site. Reload the page and try again.",
        )));
    }
    let yes = p.remove("confirm").is_some_and(|c| c == "yes");
    let req = validate(&state, &p).await?;
    if !yes {
        let html = state.pages.render(
            "message.html",
            context! { title => msg("You are still signed in"), message => msg("Nothing was changed. You can close this page.") },
        );
        return Ok(html.into_response());
    }
    let ended = match current_session(&state, &jar).await? {
        Some(s) => end_and_wait(&state, &s.id, deadline).await?,
        None => None,
    };
    Ok(finish(&state, jar, &req, ended).await)
}

type Ended = Option<(EndedSession, HashMap<ClientId, Verdict>)>;

/// The moment the logout page stops waiting: the configured budget from when the request arrived.
fn wait_deadline(state: &AppState) -> tokio::time::Instant {
    tokio::time::Instant::now() + std::time::Duration::from_millis(state.settings.delivery.logout_wait_ms)
}

/// Ends the session with `rp-logout` and waits for first attempts until `deadline`
/// (BC-SEND-08: notify before redirecting, without letting a slow application hang the user).
async fn end_and_wait(
    state: &AppState,
    session: &adieu_core::SessionId,
    deadline: tokio::time::Instant,
) -> Result<Ended, PageError> {
    let (ended, outcomes) =
        crate::session_end::end_session_and_wait(state, session, Initiator::RpLogout, deadline).await?;
    Ok(ended.map(|e| (e, outcomes)))
}

/// Clears the cookie, then redirects (with `state`) or shows the signed-out page. With
/// front-channel applications in the session, the page is shown either way: it loads their frames,
/// then follows the redirect (`crate::frontchannel`).
async fn finish(state: &AppState, jar: CookieJar, req: &LogoutRequest, ended: Ended) -> Response {
    let jar = jar.add(state.cookies.session_removal());
    let target = req.redirect.as_ref().map(|uri| match &req.state {
        Some(s) => with_params(uri, &[("state", s)]),
        None => uri.clone(),
    });
    let apps = match &ended {
        Some((e, outcomes)) => crate::signed_out::lines_after_sign_out(state, e, outcomes).await,
        None => Vec::new(),
    };
    let frames = crate::signed_out::has_frames(&apps);
    if let Some(target) = &target
        && !frames
    {
        return (jar, Redirect::to(target)).into_response();
    }
    let status_url = match &ended {
        Some((e, _)) if crate::signed_out::telling(&apps) => Some(crate::signed_out::status_path(state, &e.session.id)),
        _ => None,
    };
    let note = req.redirect_withheld.then_some(msg(
        "You were not sent back to the application automatically because the request did not prove where it came from.",
    ));
    let html = state.pages.render(
        "logged_out.html",
        context! {
            ended => ended.is_some(), apps => minijinja::Value::from(minijinja::value::Serde(&apps)), note => note,
            status_url => status_url, frames => frames, frame_wait_ms => crate::frontchannel::FRAME_WAIT_MS,
            continue_url => target, script => crate::signed_out::script_path(state), home => state.path("/")
        },
    );
    (jar, crate::signed_out::page(html, &apps)).into_response()
}

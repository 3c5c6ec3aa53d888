//! The consent screen, between sign-in and the code ([`adieu_core::consent`] decides when).
//!
//! 1. [`proceed`]: after the user is signed in, either issues the code or keeps the request
//!    (as a pending authorization, for `tokens.login_request_ttl_secs`) and sends the browser to
//!    `GET /consent?request=…`; with `prompt=none` it answers `consent_required` instead.
//! 2. `GET /consent` shows the application, the signed-in user, what each scope means and where
//!    the browser goes next, with "Allow" and "Deny".
//! 3. `POST /consent` (CSRF-checked) takes the pending request in one step, so a repeated or
//!    raced submission is answered once. "Allow" stores the consent (the requested scopes merged
//!    into what was allowed before; audited as `consent.granted`) and issues the code; "Deny"
//!    sends `access_denied` back to the application.

use crate::AppState;
use crate::authorize::{RedirectError, error_redirect, issue_code};
use crate::browser::{check_csrf, csrf_token, current_session};
use crate::crypto::random_secret;
use crate::error::PageError;
use crate::i18n::msg;
use adieu_core::client::Client;
use adieu_core::consent::{self, Consent};
use adieu_core::grant::PendingAuthorization;
use adieu_core::id::{ClientId, UserId};
use adieu_core::session::Session;
use adieu_core::store::StoreResult;
use adieu_proto::ErrorCode;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use axum_extra::extract::CookieJar;
use minijinja::context;
use serde::Deserialize;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

/// Routes of this module.
pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/consent", get(show).post(decide)).route("/account/consents/withdraw", post(withdraw)).layer(
        tower_http::set_header::SetResponseHeaderLayer::overriding(
            axum::http::header::CACHE_CONTROL,
            axum::http::HeaderValue::from_static("no-store"),
        ),
    )
}

/// How the request reached [`proceed`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct After {
    /// `prompt=none`: never show a page.
    pub prompt_none: bool,
    /// The browser's address, to bound its pending requests (when it could loop cheaply).
    pub addr: Option<IpAddr>,
}

/// Issues the code, or asks for consent first when [`consent::needed`] says so.
pub(crate) async fn proceed(
    state: &AppState,
    session: &Session,
    client: &Client,
    req: &PendingAuthorization,
    after: After,
) -> Result<Response, PageError> {
    let granted = state.store.consent(&session.user_id, &client.id).await?;
    if !consent::needed(client, req, granted.as_ref()) {
        return issue_code(state, session, client, req).await;
    }
    if after.prompt_none {
        let e = RedirectError {
            code: ErrorCode::ConsentRequired,
            description: "the user must be asked for consent".into(),
        };
        return Ok(error_redirect(state, &req.redirect_uri, req.state.as_deref(), e));
    }
    let now = state.clock.now();
    let ttl = Duration::from_secs(state.settings.tokens.login_request_ttl_secs);
    if let Some(addr) = after.addr
        && !state.limiter.pending_request(addr, state.settings.login.max_pending_per_address, ttl, now).await?
    {
        tracing::warn!(%addr, "too many pending consent requests from this address");
        return Err(PageError::too_many_pending_sign_ins());
    }
    let id = random_secret();
    state.store.put_pending_authorization(&id, req, now.plus(ttl)).await?;
    Ok(Redirect::to(&state.path(&format!("/consent?request={id}"))).into_response())
}

fn expired() -> PageError {
    PageError::bad_request(
        msg("This request has expired"),
        msg(
            "The application's request is unknown, already answered or too old. Go back to the application and start again.",
        ),
    )
}

fn signed_out() -> PageError {
    PageError::bad_request(
        msg("You are no longer signed in"),
        msg("Go back to the application and sign in again; you will then be asked again."),
    )
}

/// What each scope lets the application do, in the words the screen uses.
fn describe(scope: &str) -> Option<&'static str> {
    match scope {
        "openid" => Some(msg("Know who you are: an identifier of your account for this application")),
        "profile" => Some(msg("See your username")),
        "email" => Some(msg("See your email address")),
        consent::OFFLINE_ACCESS => Some(msg(
            "Keep access to your account when you are not using it, also after you sign out, until you withdraw it",
        )),
        _ => None,
    }
}

#[derive(Debug, Deserialize)]
struct ShowQuery {
    request: Option<String>,
}

async fn show(
    State(state): State<AppState>,
    jar: CookieJar,
    Query(q): Query<ShowQuery>,
) -> Result<Response, PageError> {
    let id = q.request.filter(|r| !r.is_empty() && r.len() <= 100).ok_or_else(expired)?;
    let session = current_session(&state, &jar).await?.ok_or_else(signed_out)?;
    let req = state.store.pending_authorization(&id, state.clock.now()).await?.ok_or_else(expired)?;
    let client = state.store.client_by_id(&req.client_id).await?.ok_or_else(expired)?;
    let username = state.store.user_by_id(&session.user_id).await?.map(|u| u.username).unwrap_or_default();
    let destination = url::Url::parse(&req.redirect_uri).ok().and_then(|u| u.host_str().map(str::to_owned));
    let scopes: Vec<&str> = req.scope.split(' ').filter_map(describe).collect();
    let (jar, csrf) = csrf_token(&state, jar);
    let html = state.pages.render(
        "consent.html",
        context! {
            action => state.path("/consent"), csrf => csrf, request => id, client_name => client.name,
            username => username, scopes => scopes, destination => destination, account => state.path("/account"),
        },
    );
    Ok((jar, html).into_response())
}

#[derive(Debug, Deserialize)]
struct DecideForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    request: String,
    #[serde(default)]
    decision: String,
}

async fn decide(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    Form(form): Form<DecideForm>,
) -> Result<Response, PageError> {
    if check_csrf(&state, &jar, &headers, &form.csrf).is_err() {
        return Err(PageError::form_refused(msg(
            "The form expired or was sent from another site. Go back to the application and start again.",
        )));
    }
    let allow = match form.decision.as_str() {
        "allow" => true,
        "deny" => false,
        _ => return Err(PageError::bad_request(msg("Invalid answer"), msg("Choose Allow or Deny."))),
    };
    if form.request.is_empty() || form.request.len() > 100 {
        return Err(expired());
    }
    let session = current_session(&state, &jar).await?.ok_or_else(signed_out)?;
    let now = state.clock.now();
    let req = state.store.take_pending_authorization(&form.request, now).await?.ok_or_else(expired)?;
    let client = state.store.client_by_id(&req.client_id).await?.ok_or_else(expired)?;
    if !allow {
        tracing::info!(sub = %session.user_id, client = %client.id, "consent denied");
        let e =
            RedirectError { code: ErrorCode::AccessDenied, description: "the user did not allow the request".into() };
        return Ok(error_redirect(&state, &req.redirect_uri, req.state.as_deref(), e));
    }
    let existing = state.store.consent(&session.user_id, &client.id).await?;
    let given = Consent::merged(existing.as_ref(), &session.user_id, &client.id, &req.scope, now);
    state.store.put_consent(&given).await?;
    tracing::info!(sub = %session.user_id, client = %client.id, scope = %req.scope, "consent given");
    issue_code(&state, &session, &client, &req).await
}

/// The account page's list of what the user allowed, most recent first: each application's id,
/// name, what it may do and since when.
pub(crate) async fn allowed(state: &AppState, user: &UserId) -> StoreResult<Vec<minijinja::Value>> {
    let consents = state.store.consents_of_user(user).await?;
    let ids: Vec<ClientId> = consents.iter().map(|c| c.client_id.clone()).collect();
    let names: HashMap<ClientId, String> =
        state.store.clients_by_ids(&ids).await?.into_iter().map(|c| (c.id, c.name)).collect();
    Ok(consents
        .iter()
        .filter_map(|c| {
            let scopes: Vec<&str> = c.scopes.iter().filter_map(|s| describe(s)).collect();
            Some(context! {
                client => c.client_id.as_str(), name => names.get(&c.client_id)?, scopes => scopes,
                granted => crate::account_page::utc(c.granted_at),
            })
        })
        .collect())
}

#[derive(Debug, Deserialize)]
struct WithdrawForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    client: String,
}

/// `POST /account/consents/withdraw`: the account page's "Withdraw" (CSRF-checked, own consents
/// only: another user's cannot be named).
async fn withdraw(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    Form(form): Form<WithdrawForm>,
) -> Result<Response, PageError> {
    if check_csrf(&state, &jar, &headers, &form.csrf).is_err() {
        return Err(PageError::form_refused(msg(
            "The form expired or was sent from another site. Nothing was changed. Reload the page and try again.",
        )));
    }
    let session = current_session(&state, &jar).await?.ok_or_else(signed_out)?;
    let client = ClientId::new(form.client.trim());
    let withdrawn = match client.as_str().len() {
        1..=128 => state.store.delete_consent(&session.user_id, &client, state.clock.now()).await?,
        _ => false,
    };
    tracing::info!(sub = %session.user_id, %client, withdrawn, "account page: consent withdrawn");
    let notice = if withdrawn { "consent-withdrawn" } else { "consent-already-withdrawn" };
    Ok(Redirect::to(&state.path(&format!("/account?notice={notice}"))).into_response())
}

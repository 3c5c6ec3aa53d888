//! The sign-in page (`GET /login`) and form (`POST /login`).
//!
//! The form is plain HTML (fields `username`, `password`, `csrf`, and `request` when the sign-in
//! continues an authorization request), so it works in any browser and for scripted clients that
//! keep cookies. Checks, in order: CSRF ([`crate::browser::check_csrf`]), the pending request,
//! attempt limits ([`crate::ratelimit`]), the password (argon2id; an unknown user costs the same
//! time). Failure always says the same thing. Success rotates the session cookie (no fixation).

use crate::AppState;
use crate::browser::{ClientAddr, check_csrf, csrf_token};
use crate::error::PageError;
use crate::i18n::msg;
use crate::ratelimit::Account;
use crate::sign_in::{SignInFrom, sign_in_from};
use adieu_core::client::Client;
use adieu_core::grant::PendingAuthorization;
use axum::Router;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum_extra::extract::CookieJar;
use minijinja::context;
use serde::Deserialize;

/// Routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new().route("/login", get(show).post(submit))
}

const BAD_CREDENTIALS: &str = msg("The username or password is incorrect.");
const TOO_MANY: &str = msg("Too many sign-in attempts. Please wait a few minutes and try again.");

#[derive(Debug, Deserialize)]
struct ShowQuery {
    request: Option<String>,
}

/// The submitted form.
#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
    request: Option<String>,
}

impl std::fmt::Debug for LoginForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginForm").field("username", &self.username).field("password", &"<redacted>").finish()
    }
}

async fn pending(
    state: &AppState,
    id: Option<&str>,
) -> Result<Option<(String, PendingAuthorization, Client)>, PageError> {
    let Some(id) = id.filter(|s| !s.is_empty()) else { return Ok(None) };
    let expired = || {
        PageError::bad_request(
            msg("This sign-in has expired"),
            msg("The sign-in request is unknown or too old. Go back to the application and start again."),
        )
    };
    if id.len() > 100 {
        return Err(expired());
    }
    let req = state.store.pending_authorization(id, state.clock.now()).await?.ok_or_else(expired)?;
    let client = state.store.client_by_id(&req.client_id).await?.ok_or_else(expired)?;
    Ok(Some((id.to_owned(), req, client)))
}

#[allow(clippy::too_many_arguments)] // one flat call per form outcome reads best here
fn page(
    state: &AppState,
    status: StatusCode,
    jar: CookieJar,
    csrf: &str,
    request: Option<&str>,
    client: Option<&Client>,
    username: &str,
    error: Option<&str>,
) -> Response {
    let html = state.pages.render(
        "login.html",
        context! {
            action => state.path("/login"),
            csrf => csrf,
            request => request,
            client_name => client.map(|c| c.name.clone()),
            username => username,
            error => error,
            upstreams => crate::upstream::buttons(state, request)
                .into_iter()
                .map(|b| context! { label => b.label, href => b.href })
                .collect::<Vec<_>>(),
        },
    );
    (status, jar, html).into_response()
}

async fn show(
    State(state): State<AppState>,
    jar: CookieJar,
    Query(q): Query<ShowQuery>,
) -> Result<Response, PageError> {
    let pend = pending(&state, q.request.as_deref()).await?;
    let (jar, csrf) = csrf_token(&state, jar);
    let (request, client) = match &pend {
        Some((id, _, c)) => (Some(id.as_str()), Some(c)),
        None => (None, None),
    };
    Ok(page(&state, StatusCode::OK, jar, &csrf, request, client, "", None))
}

async fn submit(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    jar: CookieJar,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, PageError> {
    if check_csrf(&state, &jar, &headers, &form.csrf).is_err() {
        return Err(PageError::form_refused(msg(
            "The sign-in form expired or was sent from another site. Reload the page and sign in again.",
        )));
    }
    let pend = pending(&state, form.request.as_deref()).await?;
    let (jar, csrf) = csrf_token(&state, jar);
    let (request, client) = match &pend {
        Some((id, _, c)) => (Some(id.as_str()), Some(c)),
        None => (None, None),
    };
    let now = state.clock.now();
    let username = form.username.trim();
    if username.is_empty() || username.len() > 320 {
        return Ok(page(&state, StatusCode::UNAUTHORIZED, jar, &csrf, request, client, "", Some(BAD_CREDENTIALS)));
    }
    let user = state.store.user_by_login(username).await?;
    let account = match &user {
        Some(u) => Account::User(&u.id),
        None => Account::Unknown(username),
    };
    if let Err(limit) = state.limiter.reserve(addr, account, now).await? {
        tracing::warn!(%addr, limited = ?limit, "sign-in attempt refused by the limiter");
        state.metrics.sign_ins.inc(&["password", "rate_limited"]);
        return Ok(page(&state, StatusCode::TOO_MANY_REQUESTS, jar, &csrf, request, client, username, Some(TOO_MANY)));
    }
    let ok = state.passwords.verify(&form.password, user.as_ref().map(|u| u.password_hash.as_str())).await;
    let Some(user) = user.filter(|_| ok) else {
        tracing::info!(%addr, "sign-in failed");
        state.metrics.sign_ins.inc(&["password", "bad_credentials"]);
        return Ok(page(
            &state,
            StatusCode::UNAUTHORIZED,
            jar,
            &csrf,
            request,
            client,
            username,
            Some(BAD_CREDENTIALS),
        ));
    };
    state.limiter.succeeded(Account::User(&user.id)).await?;
    let (jar, session) = sign_in_from(&state, jar, &user, &SignInFrom::new(addr, &headers)).await?;
    tracing::info!(sub = %user.id, session = %session.id, "signed in");
    state.metrics.sign_ins.inc(&["password", "success"]);
    match pend {
        Some((id, req, client)) => {
            state.store.delete_pending_authorization(&id).await?;
            let after = crate::consent_page::After { prompt_none: false, addr: Some(addr) };
            let res = crate::consent_page::proceed(&state, &session, &client, &req, after).await?;
            Ok((jar, res).into_response())
        }
        None => Ok((jar, Redirect::to(&state.path("/"))).into_response()),
    }
}

//! The self-service account page (`GET /account`) and its forms, for the signed-in user.
//!
//! The page lists the user's active sessions (this browser's first and marked, each with when it
//! was created and last used, and the browser, system and address it was signed in from, as
//! [`SessionDevice::describe`] says) and the applications signed in through each. Its forms are plain
//! HTML POSTs:
//!
//! | form | what it does | initiator of the sessions it ends |
//! |---|---|---|
//! | `POST /account/sign-out-everywhere` | ends every session of the user, this one too | `session-revoked` |
//! | `POST /account/sessions/revoke` (`session`) | ends one session of the user | `session-revoked` |
//! | `POST /account/password` | a new password; needs the current one | `password-changed` (this one too; every token revoked) |
//! | `POST /account/email` | a new (or no) email; needs the current password | `email-identifier-changed` (this one too) |
//!
//! Every form runs the same checks as the sign-in form, in order: CSRF
//! ([`crate::browser::check_csrf`] with the hidden `csrf` field), an active session of an existing
//! user, and where a password is checked, the attempt limits ([`crate::ratelimit`], shared with the
//! sign-in form and keyed by the username) before argon2 verification on the hashing pool. The
//! change then goes through [`crate::user_admin`], the same functions as the management API and the CLI,
//! audited with the actor `account:<user id>` ([`actor`]).
//!
//! A change that ends this browser's session too answers with a page that says so, with a link to
//! sign in again. Without a session, `GET /account` answers 401 with a sign-in link and shows nothing
//! of any account (after a plain sign-in the start page links back here). Every answer is
//! `Cache-Control: no-store`.

use crate::AppState;
use crate::browser::{ClientAddr, check_csrf, csrf_token, current_session};
use crate::error::PageError;
use crate::i18n::{msg, tr, tr_with};
use crate::password::check_policy;
use crate::ratelimit::Account;
use crate::user_admin::{self, Ctx, UserError, UserPatch};
use adieu_core::audit::Actor;
use adieu_core::delivery::notified;
use adieu_core::id::SessionId;
use adieu_core::initiator::Initiator;
use adieu_core::session::{Session, SessionDevice};
use adieu_core::user::{User, normalize_email};
use adieu_core::{StoreError, UnixMillis};
use axum::Router;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum_extra::extract::CookieJar;
use minijinja::context;
use serde::Deserialize;
use std::collections::HashMap;
use tower_http::set_header::SetResponseHeaderLayer;

/// Routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/account", get(show))
        .route("/account/sign-out-everywhere", post(sign_out_everywhere))
        .route("/account/sessions/revoke", post(revoke_session))
        .route("/account/password", post(change_password))
        .route("/account/email", post(change_email))
        .layer(SetResponseHeaderLayer::overriding(header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
}

/// The audit actor of changes a user makes on this page: `account:<user id>`.
pub fn actor(user: &User) -> String {
    Actor::Account(user.id.as_str()).name().into_owned()
}

const WRONG_PASSWORD: &str = msg("The current password is incorrect. Nothing was changed.");
const TOO_MANY: &str = msg("Too many attempts with a wrong password. Please wait a few minutes and try again.");
const UNAVAILABLE: &str = msg("Something went wrong on our side. Nothing was changed; please try again later.");

/// A page shown instead of carrying out a form.
#[derive(Debug)]
pub struct Refusal(Response);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        self.0
    }
}

impl From<PageError> for Refusal {
    fn from(e: PageError) -> Self {
        Refusal(e.into_response())
    }
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        PageError::from(e).into()
    }
}

impl From<UserError> for Refusal {
    fn from(e: UserError) -> Self {
        let page = |status, title: &str, message: String| PageError { status, title: title.into(), message };
        match e {
            UserError::Store(e) => PageError::from(e),
            UserError::NoSuchUser => page(
                StatusCode::UNAUTHORIZED,
                msg("You are not signed in"),
                msg("This account no longer exists.").into(),
            ),
            UserError::NoSuchSession => not_found(),
            e @ (UserError::Invalid(_) | UserError::Taken(_) | UserError::SessionEnded(_)) => {
                page(StatusCode::BAD_REQUEST, msg("Nothing was changed"), e.to_string())
            }
        }
        .into()
    }
}

fn not_found() -> PageError {
    PageError {
        status: StatusCode::NOT_FOUND,
        title: msg("No such session").into(),
        message: msg("You have no session with this id. Nothing was changed.").into(),
    }
}

/// The signed-in browser: its session and its user.
#[derive(Debug)]
struct SignedIn {
    session: Session,
    user: User,
}

async fn signed_in(state: &AppState, jar: &CookieJar) -> Result<Option<SignedIn>, StoreError> {
    let Some(session) = current_session(state, jar).await? else { return Ok(None) };
    let user = state.store.user_by_id(&session.user_id).await?;
    Ok(user.map(|user| SignedIn { session, user }))
}

fn not_signed_in(state: &AppState) -> Response {
    let html = state.pages.render(
        "message.html",
        context! {
            title => msg("You are not signed in"),
            message => msg("Sign in to see where you are signed in and to change your password or email address."),
            link => state.path("/login"),
            link_text => msg("Sign in"),
        },
    );
    (StatusCode::UNAUTHORIZED, html).into_response()
}

/// The first checks of every form, in order: CSRF, then an active session of an existing user.
async fn check_form(state: &AppState, jar: &CookieJar, headers: &HeaderMap, csrf: &str) -> Result<SignedIn, Refusal> {
    if check_csrf(state, jar, headers, csrf).is_err() {
        return Err(PageError::form_refused(msg(
            "The form expired or was sent from another site. Nothing was changed. Reload the page and try again.",
        ))
        .into());
    }
    signed_in(state, jar).await?.ok_or_else(|| Refusal(not_signed_in(state)))
}

/// Attempt limits, then argon2 (the order of the sign-in form). `Err` is the status and
/// text to show on the page.
async fn check_current_password(
    state: &AppState,
    addr: std::net::IpAddr,
    user: &User,
    password: &str,
) -> Result<(), (StatusCode, &'static str)> {
    let now = state.clock.now();
    let unavailable = |e: adieu_core::StoreError| {
        tracing::error!(error = %e, "account page: the attempt limits could not be read or written");
        (StatusCode::INTERNAL_SERVER_ERROR, UNAVAILABLE)
    };
    if let Err(limit) = state.limiter.reserve(addr, Account::User(&user.id), now).await.map_err(unavailable)? {
        tracing::warn!(%addr, sub = %user.id, limited = ?limit, "account page: password check refused by the limiter");
        return Err((StatusCode::TOO_MANY_REQUESTS, TOO_MANY));
    }
    if !state.passwords.verify(password, Some(&user.password_hash)).await {
        tracing::info!(%addr, sub = %user.id, "account page: wrong current password");
        return Err((StatusCode::UNAUTHORIZED, WRONG_PASSWORD));
    }
    state.limiter.succeeded(Account::User(&user.id)).await.map_err(unavailable)?;
    Ok(())
}

/// A message after a redirect back to the page. Only these fixed texts are shown, so nothing from
/// the URL is reflected.
fn notice_text(code: &str) -> Option<&'static str> {
    match code {
        "session-ended" => Some(msg("The session was signed out.")),
        "session-already-ended" => Some(msg("That session had already ended.")),
        "email-unchanged" => Some(msg("Your email address is unchanged.")),
        "consent-withdrawn" => Some(msg("The application's access was withdrawn; it will ask again.")),
        "consent-already-withdrawn" => Some(msg("That application had nothing allowed any more.")),
        _ => None,
    }
}

#[derive(Debug, Deserialize)]
struct ShowQuery {
    notice: Option<String>,
}

/// What one kind of ending would tell: the names of the applications told, and of those that
/// are not (no back-channel logout URI, or not subscribed to that initiator), sorted, once each.
#[derive(Debug, Default)]
struct Told {
    told: Vec<String>,
    not_told: Vec<String>,
}

impl Told {
    fn value(self) -> minijinja::Value {
        context! { told => self.told, not_told => self.not_told }
    }
}

/// [`Told`] for `initiator` over the applications `clients` (every client the sessions on the page
/// were signed in to), by the rule of [`adieu_core::delivery::notified`].
fn told(clients: &[adieu_core::client::Client], ids: &[&str], initiator: Initiator) -> Told {
    let mut out = Told::default();
    for c in clients.iter().filter(|c| ids.contains(&c.id.as_str())) {
        let list = if notified(initiator, c.backchannel_logout_uri.as_deref(), &c.backchannel_logout_initiators) {
            &mut out.told
        } else {
            &mut out.not_told
        };
        list.push(c.name.clone());
    }
    out.told.sort();
    out.told.dedup();
    out.not_told.sort();
    out.not_told.dedup();
    out
}

async fn page(
    state: &AppState,
    jar: CookieJar,
    who: &SignedIn,
    status: StatusCode,
    notice: Option<&str>,
    error: Option<(&str, &str)>,
) -> Result<Response, Refusal> {
    let now = state.clock.now();
    let (mut views, clients) =
        user_admin::sessions_and_clients(state.store.as_ref(), &who.user.id, now, state.lifetime).await?;
    // This browser first, then the others newest first (a stable sort keeps their order).
    views.sort_by_key(|v| v.id != who.session.id.as_str());
    // Which applications each form would tell, exactly (the same rule the store applies).
    let all: Vec<&str> = clients.iter().map(|c| c.id.as_str()).collect();
    // Where each session was signed in from (none for one that predates the record).
    let session_ids: Vec<SessionId> = views.iter().map(|v| SessionId::new(v.id.clone())).collect();
    let devices: HashMap<String, SessionDevice> =
        state.store.session_devices(&session_ids).await?.into_iter().map(|(id, d)| (id.into_string(), d)).collect();
    let sessions: Vec<minijinja::Value> = views
        .into_iter()
        .map(|v| {
            let mine: Vec<&str> = v.applications.iter().map(|a| a.client_id.as_str()).collect();
            let tells = told(&clients, &mine, Initiator::SessionRevoked);
            let applications: Vec<String> = v.applications.into_iter().map(|a| a.client_name).collect();
            let device = devices.get(&v.id);
            context! {
                device => device.map(SessionDevice::describe),
                user_agent => device.and_then(SessionDevice::user_agent),
                current => v.id == who.session.id.as_str(),
                created => utc(v.created_at),
                last_used => utc(v.last_seen_at),
                applications => applications,
                tells => tells.value(),
                id => v.id,
            }
        })
        .collect();
    let (jar, csrf) = csrf_token(state, jar);
    let html = state.pages.render(
        "account.html",
        context! {
            username => &who.user.username,
            email => &who.user.email,
            sessions => sessions,
            csrf => csrf,
            notice => notice,
            error => error.map(|(field, message)| context! { field => field, message => message }),
            allowed => crate::consent_page::allowed(state, &who.user.id).await?,
            withdraw_action => state.path("/account/consents/withdraw"),
            everywhere_tells => told(&clients, &all, Initiator::SessionRevoked).value(),
            password_tells => told(&clients, &all, Initiator::PasswordChanged).value(),
            email_tells => told(&clients, &all, Initiator::EmailIdentifierChanged).value(),
            everywhere_action => state.path("/account/sign-out-everywhere"),
            revoke_action => state.path("/account/sessions/revoke"),
            password_action => state.path("/account/password"),
            email_action => state.path("/account/email"),
        },
    );
    Ok((status, jar, html).into_response())
}

/// This browser's session has ended: the cookie goes, and a page says what happened.
fn signed_out(state: &AppState, jar: CookieJar, title: &str, message: &str) -> Response {
    let html = state.pages.render(
        "message.html",
        context! { title => title, message => message, link => state.path("/login"), link_text => msg("Sign in again") },
    );
    (jar.add(state.cookies.session_removal()), html).into_response()
}

async fn show(State(state): State<AppState>, jar: CookieJar, Query(q): Query<ShowQuery>) -> Result<Response, Refusal> {
    let Some(who) = signed_in(&state, &jar).await? else { return Ok(not_signed_in(&state)) };
    let notice = q.notice.as_deref().and_then(notice_text);
    page(&state, jar, &who, StatusCode::OK, notice, None).await
}

/// A form with only the CSRF token.
#[derive(Debug, Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn sign_out_everywhere(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Result<Response, Refusal> {
    let who = check_form(&state, &jar, &headers, &form.csrf).await?;
    let actor = actor(&who.user);
    let ended = user_admin::revoke_all_sessions(&Ctx::server(&state, &actor), &who.user.id).await?;
    tracing::info!(sub = %who.user.id, sessions = ended.len(), "account page: signed out everywhere");
    let (told_ids, _) = adieu_core::session::EndedSession::told_and_not(&ended);
    let mut names: Vec<String> = state.store.clients_by_ids(&told_ids).await?.into_iter().map(|c| c.name).collect();
    names.sort();
    let tells = match names.as_slice() {
        [] => tr("No application was subscribed to be told."),
        names => tr_with("Being told: {names}.", &[("names", &names.join(", "))]),
    };
    let ended_text = match ended.len() {
        0 | 1 => tr("Your session in this browser has ended."),
        n => tr_with("All {n} of your sessions have ended, the one in this browser too.", &[("n", &n.to_string())]),
    };
    let message = format!("{ended_text} {tells}");
    Ok(signed_out(&state, jar, msg("You are signed out everywhere"), &message))
}

#[derive(Debug, Deserialize)]
struct RevokeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    session: String,
}

async fn revoke_session(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    Form(form): Form<RevokeForm>,
) -> Result<Response, Refusal> {
    let who = check_form(&state, &jar, &headers, &form.csrf).await?;
    // Only the user's own sessions: an unknown id and another user's look the same.
    let id = SessionId::new(form.session.trim());
    let found = match id.as_str().len() {
        1..=128 => state.store.session_by_id(&id).await?,
        _ => None,
    };
    let Some(target) = found.filter(|s| s.user_id == who.user.id) else { return Err(not_found().into()) };
    let actor = actor(&who.user);
    match user_admin::revoke_session(&Ctx::server(&state, &actor), &target.id).await {
        Ok(_) if target.id == who.session.id => {
            Ok(signed_out(&state, jar, msg("You are signed out"), msg("The session in this browser has ended.")))
        }
        Ok(_) => Ok(Redirect::to(&state.path("/account?notice=session-ended")).into_response()),
        Err(UserError::SessionEnded(_)) => {
            Ok(Redirect::to(&state.path("/account?notice=session-already-ended")).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

/// The password form.
#[derive(Deserialize)]
struct PasswordForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    new_password_again: String,
}

impl std::fmt::Debug for PasswordForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordForm").finish_non_exhaustive()
    }
}

async fn change_password(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    jar: CookieJar,
    headers: HeaderMap,
    Form(form): Form<PasswordForm>,
) -> Result<Response, Refusal> {
    let who = check_form(&state, &jar, &headers, &form.csrf).await?;
    // Cheap checks first: no password is checked (and no attempt counted) for a form that cannot succeed.
    if form.new_password != form.new_password_again {
        let error = msg("The two new passwords are not the same. Nothing was changed.");
        return page(&state, jar, &who, StatusCode::BAD_REQUEST, None, Some(("new_password_again", error))).await;
    }
    if let Err(e) = check_policy(&form.new_password) {
        let error =
            tr_with("The new password is not accepted: {reason}. Nothing was changed.", &[("reason", &e.to_string())]);
        return page(&state, jar, &who, StatusCode::BAD_REQUEST, None, Some(("new_password", &error))).await;
    }
    if let Err((status, error)) = check_current_password(&state, addr, &who.user, &form.current_password).await {
        return page(&state, jar, &who, status, None, Some(("current_password", error))).await;
    }
    let actor = actor(&who.user);
    let patch = UserPatch { password: Some(form.new_password.clone()), ..UserPatch::default() };
    match user_admin::update(&Ctx::server(&state, &actor), &who.user.id, patch).await {
        Ok(up) => {
            tracing::info!(sub = %who.user.id, sessions = up.ended.len(), "account page: password changed");
            let message = msg("You were signed out everywhere, in this browser too, and the applications are being \
                           told. Sign in again with your new password.");
            Ok(signed_out(&state, jar, msg("Your password was changed"), message))
        }
        Err(UserError::Invalid(e)) => {
            page(&state, jar, &who, StatusCode::BAD_REQUEST, None, Some(("new_password", &e))).await
        }
        Err(e) => Err(e.into()),
    }
}

/// The email form.
#[derive(Deserialize)]
struct EmailForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    current_password: String,
}

impl std::fmt::Debug for EmailForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailForm").field("email", &self.email).finish_non_exhaustive()
    }
}

async fn change_email(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    jar: CookieJar,
    headers: HeaderMap,
    Form(form): Form<EmailForm>,
) -> Result<Response, Refusal> {
    let who = check_form(&state, &jar, &headers, &form.csrf).await?;
    // An empty field removes the address (the user still signs in with the username).
    let email = match form.email.trim() {
        "" => None,
        raw => match normalize_email(raw) {
            Ok(e) => Some(e),
            Err(e) => {
                let error = tr_with(
                    "The email address is not accepted: {reason}. Nothing was changed.",
                    &[("reason", &e.to_string())],
                );
                return page(&state, jar, &who, StatusCode::BAD_REQUEST, None, Some(("email", &error))).await;
            }
        },
    };
    if let Err((status, error)) = check_current_password(&state, addr, &who.user, &form.current_password).await {
        return page(&state, jar, &who, status, None, Some(("email_current_password", error))).await;
    }
    let actor = actor(&who.user);
    let patch = UserPatch { email: Some(email), ..UserPatch::default() };
    match user_admin::update(&Ctx::server(&state, &actor), &who.user.id, patch).await {
        Ok(up) if up.initiator.is_some() => {
            tracing::info!(sub = %who.user.id, sessions = up.ended.len(), "account page: email changed");
            let message = msg("You were signed out everywhere, in this browser too, and the applications are being \
                           told. Sign in again.");
            Ok(signed_out(&state, jar, msg("Your email address was changed"), message))
        }
        Ok(_) => Ok(Redirect::to(&state.path("/account?notice=email-unchanged")).into_response()),
        Err(UserError::Invalid(e)) => page(&state, jar, &who, StatusCode::BAD_REQUEST, None, Some(("email", &e))).await,
        Err(UserError::Taken(_)) => {
            let error = msg("Another account uses this email address. Nothing was changed.");
            page(&state, jar, &who, StatusCode::CONFLICT, None, Some(("email", error))).await
        }
        Err(e) => Err(e.into()),
    }
}

/// `2025-03-01 14:05 UTC` for a Unix time in milliseconds (proleptic Gregorian calendar; Howard
/// Hinnant's `civil_from_days`).
pub(crate) fn utc(t: UnixMillis) -> String {
    let secs = t.0.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let (era, doe) = (z.div_euclid(146_097), z.rem_euclid(146_097));
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02} UTC", rem / 3600, rem % 3600 / 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_shown_as_utc_calendar_dates() {
        assert_eq!(utc(UnixMillis(0)), "1970-01-01 00:00 UTC");
        assert_eq!(utc(UnixMillis(951_782_400_000)), "2000-02-29 00:00 UTC");
        assert_eq!(utc(UnixMillis(1_709_251_199_000)), "2024-02-29 23:59 UTC");
        assert_eq!(utc(UnixMillis(4_102_444_740_000)), "2099-12-31 23:59 UTC");
    }

    #[test]
    fn only_known_notices_are_shown() {
        assert!(notice_text("session-ended").is_some());
        assert_eq!(notice_text("<script>"), None);
    }
}

//! The signed-out page: which applications of the ended session were told, and its live status.
//!
//! The page shown right after a sign-out knows the first attempts that finished within
//! `delivery.logout_wait_ms`; applications still being told show "Being told". While any is, the
//! page polls `GET /logout/status/{session}` (JSON with `Accept: application/json`) once a second
//! for up to a minute and updates its badges in place (an `aria-live` list, so screen readers hear
//! the change); without JavaScript, its "Check again" link opens the same address as a page.
//!
//! The status is read from the store (the deliveries of that session), so it is the same on every
//! replica. It is shown only for a session that has ended, and only for [`STATUS_WINDOW`] after it
//! ended; otherwise the answer is a 404, which says nothing about whether the session exists. A
//! session id is an unguessable random value that only its user (the account page) and the
//! operators see.

use crate::AppState;
use crate::error::PageError;
use crate::i18n::msg;
use adieu_core::client::{Client, LogoutChannel};
use adieu_core::delivery::{Delivery, DeliveryStatus, Verdict};
use adieu_core::id::{ClientId, SessionId};
use adieu_core::initiator::Initiator;
use adieu_core::session::{EndedSession, Participation};
use adieu_core::store::DeliveryFilter;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use minijinja::context;
use serde::Serialize;
use std::collections::HashMap;
use std::time::Duration;

/// How long after a session ended its status stays readable.
pub(crate) const STATUS_WINDOW: Duration = Duration::from_secs(15 * 60);

/// The longest session id looked up (ours are much shorter).
const MAX_ID_LEN: usize = 128;

/// Routes of this module.
pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/logout/status/{session}", get(status)).route("/assets/signed-out.js", get(script))
}

/// The page's script (`assets/signed-out.js`).
const SCRIPT: &str = include_str!("../assets/signed-out.js");

/// The signed-out page's policy: the provider's usual one (no script anywhere else), plus its own
/// script and the status reads, both from the provider itself.
const PAGE_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; script-src 'self'; \
                        connect-src 'self'; frame-ancestors 'none'; base-uri 'none'";

async fn script() -> Response {
    let headers = [(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "max-age=3600")];
    (headers, SCRIPT).into_response()
}

/// The signed-out page `html` showing `apps`, with the policy that lets its script run and its
/// front-channel frames load.
pub(crate) fn page(html: axum::response::Html<String>, apps: &[AppLine]) -> Response {
    let csp = crate::frontchannel::page_csp(PAGE_CSP, apps.iter().filter_map(|a| a.frame.as_deref()));
    match axum::http::HeaderValue::try_from(csp) {
        Ok(csp) => ([(header::CONTENT_SECURITY_POLICY, csp)], html).into_response(),
        // Origins are ASCII serializations; should one not be a header value, no frame may load.
        Err(_) => ([(header::CONTENT_SECURITY_POLICY, PAGE_CSP)], html).into_response(),
    }
}

/// Where the page's script is served.
pub(crate) fn script_path(state: &AppState) -> String {
    state.path("/assets/signed-out.js")
}

/// What the signed-out page says about one application.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Badge {
    /// It confirmed (2xx).
    Told,
    /// Its delivery is being sent, or waits for its next attempt.
    Telling,
    /// It refused, or every attempt failed.
    Failed,
    /// It has no back-channel logout URI, or is not subscribed to this initiator (or unsubscribed
    /// before it was told).
    NotTold,
    /// Its front-channel frame is loading in this page (the page's script updates it).
    InBrowser,
    /// Its front-channel frame was rendered when the user signed out in the browser.
    SentByBrowser,
    /// It has only a front channel, and the session did not end in a browser.
    BrowserOnly,
}

impl Badge {
    /// From an attempt's verdict, if one finished; `written` says whether a delivery exists.
    pub(crate) fn of_verdict(verdict: Option<&Verdict>, written: bool) -> Badge {
        match verdict {
            Some(Verdict::Delivered) => Badge::Told,
            Some(Verdict::Rejected | Verdict::Dead { .. }) => Badge::Failed,
            Some(Verdict::Retry { .. }) | None if written => Badge::Telling,
            _ => Badge::NotTold,
        }
    }

    /// From the stored delivery, if one was written.
    pub(crate) fn of_delivery(d: Option<&Delivery>) -> Badge {
        match d.map(|d| d.status) {
            Some(DeliveryStatus::Delivered) => Badge::Told,
            Some(DeliveryStatus::Pending | DeliveryStatus::Leased) => Badge::Telling,
            Some(DeliveryStatus::Rejected | DeliveryStatus::Dead) => Badge::Failed,
            Some(DeliveryStatus::Discarded) | None => Badge::NotTold,
        }
    }

    /// The badge's style class.
    pub(crate) fn class(self) -> &'static str {
        match self {
            Badge::Told => "ok",
            Badge::Telling | Badge::InBrowser => "pending",
            Badge::Failed => "failed",
            Badge::NotTold | Badge::SentByBrowser | Badge::BrowserOnly => "none",
        }
    }

    /// What it says.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Badge::Told => msg("Signed out"),
            Badge::Telling => msg("Being told"),
            Badge::Failed => msg("Could not be told"),
            Badge::NotTold => msg("Not told: not subscribed to this kind of sign-out"),
            Badge::InBrowser => msg("Being told in this browser"),
            Badge::SentByBrowser => msg("Told through your browser"),
            Badge::BrowserOnly => msg("Not told: it can be told only through the browser you sign out in"),
        }
    }
}

/// One application's line.
#[derive(Debug, Serialize)]
pub(crate) struct AppLine {
    /// Client id (the line's key for updates).
    id: String,
    /// Display name.
    name: String,
    /// Badge style.
    state: &'static str,
    /// Badge text, in the request's language.
    status: String,
    /// Whether it is still being told over the back channel.
    #[serde(skip)]
    telling: bool,
    /// The front-channel logout address this page loads in a frame for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    frame: Option<String>,
}

/// The lines of the applications of `participations`, in the order they were signed in to, each
/// with the badge (and frame) `line` gives it.
async fn lines(
    state: &AppState,
    participations: &[Participation],
    line: impl Fn(&Client, &Participation) -> (Badge, Option<String>),
) -> Result<Vec<AppLine>, PageError> {
    let ids: Vec<ClientId> = participations.iter().map(|p| p.client_id.clone()).collect();
    // The clients in one query, not one per application.
    let clients: HashMap<ClientId, Client> =
        state.store.clients_by_ids(&ids).await?.into_iter().map(|c| (c.id.clone(), c)).collect();
    Ok(participations
        .iter()
        .filter_map(|p| {
            let c = clients.get(&p.client_id)?;
            let (b, frame) = line(c, p);
            Some(AppLine {
                id: p.client_id.to_string(),
                name: c.name.clone(),
                state: b.class(),
                status: crate::i18n::tr(b.label()),
                telling: b == Badge::Telling,
                frame,
            })
        })
        .collect())
}

/// The page's lines right after the sign-out, from the first attempts that finished in time.
pub(crate) async fn lines_after_sign_out(
    state: &AppState,
    ended: &EndedSession,
    outcomes: &HashMap<ClientId, Verdict>,
) -> Vec<AppLine> {
    let written: Vec<&ClientId> = ended.deliveries.iter().map(|d| &d.client_id).collect();
    let browser = ended.session.end_reason == Some(Initiator::RpLogout);
    let line = |c: &Client, p: &Participation| match c.logout_channel() {
        LogoutChannel::Front if browser => match c.frontchannel_logout_url(&state.issuer, p.sid.as_str()) {
            Some(url) => (Badge::InBrowser, Some(url)),
            None => (Badge::NotTold, None),
        },
        LogoutChannel::Front => (Badge::BrowserOnly, None),
        _ => (Badge::of_verdict(outcomes.get(&c.id), written.contains(&&c.id)), None),
    };
    // The page still shows the user signed out if the names cannot be read.
    lines(state, &ended.participations, line).await.unwrap_or_default()
}

/// Whether any line is still being told over the back channel.
pub(crate) fn telling(lines: &[AppLine]) -> bool {
    lines.iter().any(|l| l.telling)
}

/// Whether the page holds front-channel frames.
pub(crate) fn has_frames(lines: &[AppLine]) -> bool {
    lines.iter().any(|l| l.frame.is_some())
}

/// `GET /logout/status/{session}`: the signed-out page, current (JSON if asked).
async fn status(State(state): State<AppState>, Path(session): Path<String>, headers: HeaderMap) -> Response {
    match current(&state, &session).await {
        Ok(Some(apps)) => {
            let done = !telling(&apps);
            if wants_json(&headers) {
                return Json(serde_json::json!({ "done": done, "apps": apps })).into_response();
            }
            let url = (!done).then(|| status_path(&state, &SessionId::new(session)));
            let lines = minijinja::Value::from(minijinja::value::Serde(&apps));
            let ctx = context! { ended => true, apps => lines, status_url => url, script => script_path(&state), home => state.path("/") };
            page(state.pages.render("logged_out.html", ctx), &apps)
        }
        Ok(None) if wants_json(&headers) => {
            (StatusCode::NOT_FOUND, Json(serde_json::json!({ "error": "not_found" }))).into_response()
        }
        Ok(None) => PageError {
            status: StatusCode::NOT_FOUND,
            title: msg("Nothing to show").into(),
            message: msg("There is no recent sign-out at this address. Sign-outs are shown here for 15 minutes.")
                .into(),
        }
        .into_response(),
        Err(e) => e.into_response(),
    }
}

/// The lines of a session that ended within [`STATUS_WINDOW`], from the store; `None` otherwise.
async fn current(state: &AppState, session: &str) -> Result<Option<Vec<AppLine>>, PageError> {
    if session.is_empty() || session.len() > MAX_ID_LEN {
        return Ok(None);
    }
    let id = SessionId::new(session);
    let Some(s) = state.store.session_by_id(&id).await? else { return Ok(None) };
    let now = state.clock.now();
    let window = i64::try_from(STATUS_WINDOW.as_millis()).unwrap_or(i64::MAX);
    if s.ended_at.is_none_or(|t| now.0 - t.0 > window) {
        return Ok(None);
    }
    let participations = state.store.participations_of_sessions(std::slice::from_ref(&id)).await?;
    let filter = DeliveryFilter { session_id: Some(id), limit: Some(1000), ..Default::default() };
    let deliveries = state.store.deliveries(&filter).await?;
    let by_client: HashMap<&ClientId, &Delivery> = deliveries.iter().map(|d| (&d.client_id, d)).collect();
    let browser = s.end_reason == Some(Initiator::RpLogout);
    let line = |c: &Client, _: &Participation| match c.logout_channel() {
        LogoutChannel::Front if browser => (Badge::SentByBrowser, None),
        LogoutChannel::Front => (Badge::BrowserOnly, None),
        _ => (Badge::of_delivery(by_client.get(&c.id).copied()), None),
    };
    Ok(Some(lines(state, &participations, line).await?))
}

fn wants_json(headers: &HeaderMap) -> bool {
    headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("application/json"))
}

/// Where the status of the sign-out of `session` is read.
pub(crate) fn status_path(state: &AppState, session: &SessionId) -> String {
    state.path(&format!("/logout/status/{}", urlencoding(session.as_str())))
}

/// Percent-encodes everything but unreserved characters (ids are URL-safe; this is a guard).
fn urlencoding(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

//! Upstream OpenID Providers (`[[upstreams]]`): people sign in to adieu through another provider,
//! and when they sign out there, that provider's back-channel logout ends their adieu sessions
//! (initiator `idp-logout`), which adieu passes on to its own applications (BC-SEND-09).
//!
//! - [`registry`]: the configured upstreams, discovery on first use, keys, verifiers; every call
//!   out follows the delivery outbound policy.
//! - [`signin`]: `GET /upstream/{id}/start` and `GET /upstream/{id}/callback` (code flow, PKCE
//!   S256, state bound to the browser and used once, nonce, ID token checks).
//! - [`account`]: the local user linked to an upstream account (created on first sign-in; no
//!   linking by email).
//! - [`backchannel`]: `POST /upstream/{id}/backchannel-logout`.
//!
//! At the upstream, register adieu as a confidential client with the redirect URI
//! `{issuer}/upstream/{id}/callback`, the back-channel logout URI
//! `{issuer}/upstream/{id}/backchannel-logout` and `backchannel_logout_session_required = true`;
//! [`registration_hint`] says so at start-up.

pub mod account;
pub mod backchannel;
pub mod registry;
pub mod signin;

pub use registry::{Upstream, Upstreams};

use crate::AppState;
use axum::Router;
use axum::routing::{get, post};
use serde::Serialize;

/// Routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/upstream/{id}/start", get(signin::start))
        .route("/upstream/{id}/callback", get(signin::callback))
        .route("/upstream/{id}/backchannel-logout", post(backchannel::logout))
}

/// A "Sign in with …" button on the sign-in page.
#[derive(Debug, Clone, Serialize)]
pub struct Button {
    /// "Sign in with {display_name}".
    pub label: String,
    /// Where it goes: `/upstream/{id}/start`, with the pending authorization request.
    pub href: String,
}

/// The sign-in page's upstream buttons, continuing authorization request `request` if any.
pub fn buttons(state: &AppState, request: Option<&str>) -> Vec<Button> {
    state
        .upstreams
        .iter()
        .map(|u| {
            let mut href = state.path(&format!("/upstream/{}/start", u.settings.id));
            if let Some(r) = request {
                let q: String = url::form_urlencoded::Serializer::new(String::new()).append_pair("request", r).finish();
                href = format!("{href}?{q}");
            }
            Button { label: format!("Sign in with {}", u.settings.display_name), href }
        })
        .collect()
}

/// What to register at each upstream, for the start-up log.
pub fn registration_hint(state: &AppState, upstream: &Upstream) -> (String, String) {
    (
        signin::callback_uri(state, upstream),
        state.url(&format!("/upstream/{}/backchannel-logout", upstream.settings.id)),
    )
}

/// At start-up: logs, for each upstream, the URIs to register there, and discovers it in the
/// background (a failure is logged; sign-ins retry it).
pub fn announce(state: &AppState) {
    for u in state.upstreams.iter() {
        let (redirect_uri, backchannel) = registration_hint(state, u);
        tracing::info!(
            upstream = %u.settings.id,
            issuer = %u.settings.issuer,
            %redirect_uri,
            backchannel_logout_uri = %backchannel,
            "upstream provider configured: register these URIs there, with backchannel_logout_session_required = true"
        );
        let u = u.clone();
        tokio::spawn(async move {
            let _ = u.discovered().await;
        });
    }
}

//! `POST /upstream/{id}/backchannel-logout`: an upstream tells adieu that a person signed out
//! there (Back-Channel Logout 1.0, adieu as the RP). adieu verifies the logout token with
//! `adieu-rp` (BC-RP-01..08: the upstream's keys and algorithms, `iss` = the upstream's issuer,
//! `aud` = adieu's client id there, `jti` replay cache), ends the local sessions it names through
//! [`crate::session_end::end_session`] with initiator `idp-logout`, and so passes the logout on to
//! adieu's own applications (BC-SEND-09).
//!
//! Which sessions (BC-RP-14): those signed in with the token's upstream `sid` (and its `sub`, when
//! both are given); with only a `sub`, every session of that upstream account whose upstream
//! sign-in was not after the token's `iat` (BC-SEC-06). None matching is still success.
//!
//! Answers, as `adieu-rp`'s endpoint does: `200` with `Cache-Control: no-store`; `400`
//! `invalid_request` for an invalid request or token (BC-RP-12, BC-RESP-02/03); `415`, `413`;
//! `503` (with `Retry-After`) when the store or the upstream's keys are unavailable, so an upstream
//! that retries tries again; `404` for an upstream id that is not configured.

use crate::AppState;
use adieu_core::audit::Actor;
use adieu_core::audit::{AuditEvent, AuditKind};
use adieu_core::initiator::Initiator;
use adieu_core::upstream::UpstreamSessionQuery;
use adieu_rp::axum::{DEFAULT_BODY_LIMIT, LogoutRejection, read_logout_token};
use adieu_rp::verifier::VerifyFailure;
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

pub(super) async fn logout(State(state): State<AppState>, Path(id): Path<String>, req: Request) -> Response {
    let Some(upstream) = state.upstreams.get(&id).cloned() else {
        let body = json!({"error": "invalid_request", "error_description": "no such upstream provider"});
        return (
            StatusCode::NOT_FOUND,
            [(header::CACHE_CONTROL, "no-store"), (header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response();
    };
    let raw = match read_logout_token(req, DEFAULT_BODY_LIMIT).await {
        Ok(t) => t,
        Err(r) => return r.into_response(),
    };
    let Ok(discovered) = upstream.discovered().await else { return LogoutRejection::Unavailable.into_response() };
    let now = state.clock.now();
    let token = match discovered.logout.verify(&raw, now.as_secs()).await {
        Ok(t) => t,
        Err(e) => {
            tracing::info!(upstream = %upstream.settings.id, error = %e, "upstream logout token refused");
            return match e {
                VerifyFailure::Invalid(e) => LogoutRejection::Invalid(e.to_string()),
                _ => LogoutRejection::Unavailable,
            }
            .into_response();
        }
    };
    let (sub, sid) = (token.subject().sub(), token.subject().sid());
    // Invariant: a verified token names a sub or a sid (BC-RP-05).
    let Some(query) = UpstreamSessionQuery::for_token(token.issuer(), sub, sid, token.issued_at()) else {
        return LogoutRejection::Invalid("the logout token names neither a subject nor a session".into())
            .into_response();
    };
    let sessions = match state.store.upstream_sessions(&query).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "finding the sessions of an upstream logout failed");
            return LogoutRejection::Unavailable.into_response();
        }
    };
    let mut ended = 0u64;
    for session in &sessions {
        match crate::session_end::end_session(&state, session, Initiator::IdpLogout).await {
            Ok(Some(_)) => ended += 1,
            Ok(None) => {}
            Err(e) => {
                // Those already ended stay ended; the upstream's retry ends the rest.
                tracing::error!(error = %e, "ending a session for an upstream logout failed");
                return LogoutRejection::Unavailable.into_response();
            }
        }
    }
    let event = AuditEvent::new(
        AuditKind::UpstreamLogout,
        &Actor::System.name(),
        now,
        json!({ "upstream": upstream.settings.id, "sub": sub, "sid": sid, "sessions_ended": ended }),
    );
    if let Err(e) = state.store.append_audit(&event).await {
        tracing::warn!(error = %e, "auditing an upstream logout failed");
    }
    if let Err(e) = discovered.logout.logout_succeeded(&token, now.as_secs()).await {
        tracing::warn!(error = %e, "recording the upstream logout token's jti failed");
    }
    tracing::info!(upstream = %upstream.settings.id, sessions = ended, "upstream back-channel logout");
    ([(header::CACHE_CONTROL, "no-store")], StatusCode::OK).into_response()
}

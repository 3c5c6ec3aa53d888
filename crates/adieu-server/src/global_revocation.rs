//! Global Token Revocation (draft-parecki-oauth-global-token-revocation-06):
//! `POST /global-token-revocation`.
//!
//! A trusted caller (a security incident tool, an upstream identity provider) says "this user
//! must sign in again everywhere". It holds a credential of its own, an API token of kind
//! `global-token-revocation` (`adieu admin-token create --kind global-token-revocation`), which can
//! do this and nothing else; the management API's admin token is refused here with 403, since a
//! credential that can do everything should not be handed to such a tool.
//!
//! The body is JSON, `{"sub_id": {...}}`, a subject identifier (RFC 9493) of format `email`,
//! `opaque` (`{"format": "opaque", "id": "<our sub>"}`) or `iss_sub` (our issuer and sub). In one
//! transaction every open session of the user ends with `session-revoked`, so each subscribed
//! application is told over the back channel, and every access and refresh token is revoked,
//! `offline_access` ones included; the request is audited (`user.tokens_revoked`, actor
//! `global-token-revocation`). Answers: 204 done; 400 a body that is not such an object; 401 no
//! or an unknown credential; 403 a credential of another kind; 404 no such user; 422 a subject
//! identifier format this provider does not support.

use crate::AppState;
use crate::api::{bearer_in, token_valid, unauthorized};
use crate::error::OAuthError;
use adieu_core::id::UserId;
use adieu_core::store::ApiTokenKind;
use adieu_core::user::User;
use adieu_proto::ErrorCode;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::Value;

/// The actor its changes are audited with.
pub(crate) const ACTOR: &str = "global-token-revocation";

/// Routes of this module.
pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/global-token-revocation", post(revoke))
}

fn error(status: StatusCode, code: ErrorCode, description: &str) -> OAuthError {
    OAuthError { status, code, description: description.into(), www_authenticate: None }
}

async fn revoke(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    match run(&state, &headers, &body).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

async fn run(state: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<(), OAuthError> {
    authorize(state, headers).await?;
    let sub_id: Value = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("sub_id").cloned())
        .filter(Value::is_object)
        .ok_or_else(|| OAuthError::invalid_request("the body must be a JSON object with a sub_id object"))?;
    let user = find(state, &sub_id).await?;
    let ended = state.store.revoke_user_everywhere(&user.id, ACTOR, state.clock.now()).await?;
    let (ended, tokens) = ended.ok_or_else(no_such_user)?;
    crate::session_end::announce(Some(&state.delivery), &ended);
    tracing::info!(sub = %user.id, sessions = ended.len(), tokens, "global token revocation");
    Ok(())
}

/// 401 without a credential or with an unknown one; 403 with a credential of another kind.
async fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), OAuthError> {
    let token = bearer_in(headers).ok_or_else(unauthorized)?;
    if token_valid(state, token, ApiTokenKind::GlobalRevocation).await? {
        return Ok(());
    }
    // Valid for registration means a registration or an admin token.
    if token_valid(state, token, ApiTokenKind::Registration).await? {
        return Err(error(
            StatusCode::FORBIDDEN,
            ErrorCode::InvalidRequest,
            "this credential may not revoke tokens: use a token of kind global-token-revocation",
        ));
    }
    Err(unauthorized())
}

fn no_such_user() -> OAuthError {
    error(StatusCode::NOT_FOUND, ErrorCode::InvalidRequest, "no such user")
}

/// The user `sub_id` names (RFC 9493 formats `email`, `opaque` and `iss_sub`).
async fn find(state: &AppState, sub_id: &Value) -> Result<User, OAuthError> {
    let field = |name: &str| sub_id.get(name).and_then(Value::as_str).filter(|s| !s.is_empty() && s.len() <= 320);
    let missing = |name: &str| OAuthError::invalid_request(format!("sub_id needs a string member {name}"));
    let user = match sub_id.get("format").and_then(Value::as_str) {
        Some("email") => {
            let email = field("email").ok_or_else(|| missing("email"))?;
            let found = state.store.user_by_login(email).await?;
            found.filter(|u| u.email.as_deref().is_some_and(|e| e.eq_ignore_ascii_case(email)))
        }
        Some("opaque") => {
            let id = field("id").ok_or_else(|| missing("id"))?;
            state.store.user_by_id(&UserId::new(id)).await?
        }
        Some("iss_sub") => {
            let (iss, sub) = (field("iss").ok_or_else(|| missing("iss"))?, field("sub").ok_or_else(|| missing("sub"))?);
            if iss.trim_end_matches('/') != state.issuer.trim_end_matches('/') {
                return Err(no_such_user());
            }
            state.store.user_by_id(&UserId::new(sub)).await?
        }
        Some(other) => {
            let what = format!("the subject identifier format {other:?} is not supported (email, opaque, iss_sub)");
            return Err(error(StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::InvalidRequest, &what));
        }
        None => return Err(missing("format")),
    };
    user.ok_or_else(no_such_user)
}

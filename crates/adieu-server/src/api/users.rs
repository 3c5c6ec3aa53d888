//! `/api/v1/users`: create, list (paged, `q` filter), read, update (PATCH), delete; a user's
//! sessions: list, and revoke them all. Every change goes through [`crate::user_admin`] and is
//! audited with the actor `admin-api`.

use super::{Admin, not_found, parse_query};
use crate::AppState;
use crate::error::OAuthError;
use crate::user_admin::{self, Ctx, NewUser, UserError, UserPatch, UserView};
use adieu_core::audit::Actor;
use adieu_core::id::UserId;
use adieu_core::user::UserQuery;
use adieu_proto::ErrorCode;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// The audit actor of the management API.
pub const ACTOR: Actor<'static> = Actor::AdminApi;

/// Routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/users", get(list).post(create))
        .route("/api/v1/users/{id}", get(read).patch(update).delete(remove))
        .route("/api/v1/users/{id}/sessions", get(sessions).delete(revoke_all))
}

/// Maps a user operation's failure to the API's error form.
pub fn user_error(e: UserError) -> OAuthError {
    let conflict = |d: String| OAuthError {
        status: StatusCode::CONFLICT,
        code: ErrorCode::InvalidRequest,
        description: d,
        www_authenticate: None,
    };
    match e {
        UserError::Invalid(d) => OAuthError::invalid_request(d),
        e @ UserError::Taken(_) => conflict(e.to_string()),
        UserError::NoSuchUser => not_found("user"),
        UserError::NoSuchSession => not_found("session"),
        e @ UserError::SessionEnded(_) => conflict(e.to_string()),
        UserError::Store(e) => OAuthError::from(e),
    }
}

/// The JSON object of a request body, refusing anything else and members not in `allowed`
/// (a misspelt `pasword` must not be ignored silently).
fn body_object(body: &[u8], allowed: &[&str]) -> Result<Map<String, Value>, OAuthError> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| OAuthError::invalid_request(format!("the body is not JSON: {e}")))?;
    let Value::Object(map) = v else { return Err(OAuthError::invalid_request("the body must be a JSON object")) };
    if let Some(k) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(OAuthError::invalid_request(format!("unknown member {k:?} (allowed: {})", allowed.join(", "))));
    }
    Ok(map)
}

/// A string member: absent → `None`, a string → `Some(Some(s))`, `null` → `Some(None)` if `nullable`.
fn string_member(map: &Map<String, Value>, name: &str, nullable: bool) -> Result<Option<Option<String>>, OAuthError> {
    match map.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(Some(s.clone()))),
        Some(Value::Null) if nullable => Ok(Some(None)),
        Some(_) => Err(OAuthError::invalid_request(format!(
            "{name} must be a string{}",
            if nullable { " or null" } else { "" }
        ))),
    }
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    q: Option<String>,
    cursor: Option<String>,
    limit: Option<u32>,
}

/// base64url without padding, as the cursors are written; any well-formed base64url is read (the
/// unused bits of the last character are not checked), as the OpenAPI document's pattern says.
const CURSOR: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireNone),
);

fn decode_cursor(c: &str) -> Result<String, OAuthError> {
    CURSOR
        .decode(c)
        .ok()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .ok_or_else(|| OAuthError::invalid_request("invalid cursor"))
}

async fn list(_: Admin, State(state): State<AppState>, RawQuery(q): RawQuery) -> Result<Response, OAuthError> {
    let q: ListQuery = parse_query(q)?;
    let query = UserQuery {
        contains: q.q.filter(|s| !s.trim().is_empty()),
        after: q.cursor.as_deref().map(decode_cursor).transpose()?,
        limit: super::page_limit(q.limit)?,
    };
    let (page, next) = user_admin::list(state.store.as_ref(), &query).await.map_err(user_error)?;
    let views: Vec<UserView> = page.iter().map(UserView::from).collect();
    Ok(Json(json!({ "users": views, "next_cursor": next.map(|n| URL_SAFE_NO_PAD.encode(n)) })).into_response())
}

async fn create(_: Admin, State(state): State<AppState>, body: Bytes) -> Result<Response, OAuthError> {
    let map = body_object(&body, &["username", "email", "password"])?;
    let username = string_member(&map, "username", false)?.flatten();
    let password = string_member(&map, "password", false)?.flatten();
    let (Some(username), Some(password)) = (username, password) else {
        return Err(OAuthError::invalid_request("username and password are required"));
    };
    let email = string_member(&map, "email", true)?.flatten();
    let user = user_admin::create(&Ctx::server(&state, &ACTOR.name()), NewUser { username, email, password })
        .await
        .map_err(user_error)?;
    Ok((StatusCode::CREATED, Json(UserView::from(&user))).into_response())
}

async fn read(_: Admin, State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, OAuthError> {
    let u = state.store.user_by_id(&UserId::new(id)).await?.ok_or_else(|| not_found("user"))?;
    Ok(Json(UserView::from(&u)).into_response())
}

async fn update(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let map = body_object(&body, &["username", "email", "password"])?;
    let patch = UserPatch {
        username: string_member(&map, "username", false)?.flatten(),
        email: string_member(&map, "email", true)?,
        password: string_member(&map, "password", false)?.flatten(),
    };
    let updated =
        user_admin::update(&Ctx::server(&state, &ACTOR.name()), &UserId::new(id), patch).await.map_err(user_error)?;
    Ok(Json(UserView::from(&updated.user)).into_response())
}

async fn remove(_: Admin, State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, OAuthError> {
    let ended = user_admin::delete(&Ctx::server(&state, &ACTOR.name()), &UserId::new(id)).await.map_err(user_error)?;
    Ok(Json(revoked(&ended)).into_response())
}

async fn sessions(_: Admin, State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, OAuthError> {
    let list = user_admin::sessions(state.store.as_ref(), &UserId::new(id), state.clock.now(), state.lifetime)
        .await
        .map_err(user_error)?;
    Ok(Json(list).into_response())
}

async fn revoke_all(_: Admin, State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, OAuthError> {
    let ended = user_admin::revoke_all_sessions(&Ctx::server(&state, &ACTOR.name()), &UserId::new(id))
        .await
        .map_err(user_error)?;
    Ok(Json(revoked(&ended)).into_response())
}

/// The answer of every call that ends sessions (`RevokedSessions` in the OpenAPI document): which
/// sessions ended, which applications were told and which were not (no back-channel logout URI, or
/// not subscribed to the initiator).
pub(super) fn revoked(ended: &[adieu_core::session::EndedSession]) -> serde_json::Value {
    let ids: Vec<&str> = ended.iter().map(|e| e.session.id.as_str()).collect();
    let (told, not) = adieu_core::session::EndedSession::told_and_not(ended);
    json!({
        "sessions_ended": ids.len(),
        "session_ids": ids,
        "notified_clients": told,
        "not_notified_clients": not,
    })
}

//! Rows → domain types (the PostgreSQL column types: BIGINT, BOOLEAN, TEXT, BYTEA), and the column
//! lists queries select.
//!
//! Queries name their columns instead of `SELECT *`: sqlx prepares and caches statements per
//! connection, and PostgreSQL refuses to run a cached `SELECT *` whose tables have gained a column
//! since ("cached plan must not change result type"). With named columns, a replica keeps working
//! while a newer replica migrates the schema (a rolling upgrade).

/// The columns of `users` that [`user`] reads.
macro_rules! user_cols {
    () => {
        "id, username, email, password_hash, created_at, updated_at"
    };
}
/// The columns of `clients` that [`client`] reads.
macro_rules! client_cols {
    () => {
        "id, name, secret_hash, redirect_uris, post_logout_redirect_uris, backchannel_logout_uri,
         backchannel_logout_session_required, backchannel_logout_initiators, token_endpoint_auth_method,
         id_token_signed_response_alg, created_at, updated_at"
    };
}
/// The columns of `sessions` that [`session`] reads.
macro_rules! session_cols {
    () => {
        "id, user_id, auth_time, created_at, last_seen_at, ended_at, end_reason"
    };
}
/// The columns of `participations` that [`participation`] reads.
macro_rules! participation_cols {
    () => {
        "session_id, client_id, sid, created_at"
    };
}
/// The columns of `auth_codes` that [`code`] reads.
macro_rules! code_cols {
    () => {
        "code_hash, grant_id, client_id, redirect_uri, user_id, session_id, sid, scope, nonce, code_challenge,
         auth_time, created_at, expires_at, used_at"
    };
}
/// The columns of `access_tokens` that [`access`] reads.
macro_rules! access_cols {
    () => {
        "token_hash, grant_id, client_id, user_id, session_id, scope, offline, created_at, expires_at, revoked_at"
    };
}
/// The columns of `refresh_tokens` that [`refresh`] reads.
macro_rules! refresh_cols {
    () => {
        "token_hash, grant_id, client_id, user_id, session_id, sid, scope, offline, auth_time, created_at,
         expires_at, rotated_at, revoked_at"
    };
}
/// The columns of `deliveries` that [`delivery`] reads, and `total_attempts`.
macro_rules! delivery_cols {
    () => {
        "id, session_id, client_id, sub, sid, initiator, status, attempts, total_attempts, next_attempt_at,
         lease_until, round_started_at, created_at, finished_at, last_error"
    };
}
/// The columns of `delivery_attempts` that [`attempt`] reads.
macro_rules! attempt_cols {
    () => {
        "delivery_id, number, at, latency_ms, http_status, error"
    };
}
/// The columns of `audit_log` that [`audit`] reads.
macro_rules! audit_cols {
    () => {
        "id, at, kind, actor, client_id, user_id, session_id, delivery_id, detail"
    };
}
pub(super) use {
    access_cols, attempt_cols, audit_cols, client_cols, code_cols, delivery_cols, participation_cols, refresh_cols,
    session_cols, user_cols,
};

use super::{backend, json_err};
use adieu_core::audit::AuditEvent;
use adieu_core::client::{Client, TokenEndpointAuthMethod};
use adieu_core::delivery::{Attempt, Delivery};
use adieu_core::grant::{AccessToken, AuthCode, RefreshToken};
use adieu_core::id::{ClientId, SessionId, Sid, UserId};
use adieu_core::initiator::Initiator;
use adieu_core::session::{Participation, Session};
use adieu_core::store::{StoreError, StoreResult};
use adieu_core::time::UnixMillis;
use adieu_core::user::User;
use sqlx::Row;
use sqlx::postgres::PgRow;
use std::str::FromStr;

fn opt_ms(v: Option<i64>) -> Option<UnixMillis> {
    v.map(UnixMillis)
}

fn text(r: &PgRow, c: &str) -> StoreResult<String> {
    r.try_get::<String, _>(c).map_err(backend)
}

fn ms(r: &PgRow, c: &str) -> StoreResult<UnixMillis> {
    Ok(UnixMillis(r.try_get(c).map_err(backend)?))
}

fn opt(r: &PgRow, c: &str) -> StoreResult<Option<UnixMillis>> {
    Ok(opt_ms(r.try_get(c).map_err(backend)?))
}

pub(super) fn user(r: &PgRow) -> StoreResult<User> {
    Ok(User {
        id: UserId::new(text(r, "id")?),
        username: text(r, "username")?,
        email: r.try_get("email").map_err(backend)?,
        password_hash: text(r, "password_hash")?,
        created_at: ms(r, "created_at")?,
        updated_at: ms(r, "updated_at")?,
    })
}

pub(super) fn client(r: &PgRow) -> StoreResult<Client> {
    Ok(Client {
        id: ClientId::new(text(r, "id")?),
        name: text(r, "name")?,
        secret_hash: r.try_get("secret_hash").map_err(backend)?,
        redirect_uris: serde_json::from_str(&text(r, "redirect_uris")?).map_err(json_err)?,
        post_logout_redirect_uris: serde_json::from_str(&text(r, "post_logout_redirect_uris")?).map_err(json_err)?,
        backchannel_logout_uri: r.try_get("backchannel_logout_uri").map_err(backend)?,
        backchannel_logout_session_required: r.try_get("backchannel_logout_session_required").map_err(backend)?,
        backchannel_logout_initiators: serde_json::from_str(&text(r, "backchannel_logout_initiators")?)
            .map_err(json_err)?,
        token_endpoint_auth_method: TokenEndpointAuthMethod::from_str(&text(r, "token_endpoint_auth_method")?)
            .map_err(StoreError::Backend)?,
        id_token_signed_response_alg: text(r, "id_token_signed_response_alg")?
            .parse()
            .map_err(|e| StoreError::Backend(format!("{e}")))?,
        created_at: ms(r, "created_at")?,
        updated_at: ms(r, "updated_at")?,
    })
}

pub(super) fn session(r: &PgRow) -> StoreResult<Session> {
    let reason: Option<String> = r.try_get("end_reason").map_err(backend)?;
    Ok(Session {
        id: SessionId::new(text(r, "id")?),
        user_id: UserId::new(text(r, "user_id")?),
        auth_time: ms(r, "auth_time")?,
        created_at: ms(r, "created_at")?,
        last_seen_at: ms(r, "last_seen_at")?,
        ended_at: opt(r, "ended_at")?,
        end_reason: reason
            .map(|s| s.parse::<Initiator>())
            .transpose()
            .map_err(|e| StoreError::Backend(e.to_string()))?,
    })
}

pub(super) fn participation(r: &PgRow) -> StoreResult<Participation> {
    Ok(Participation {
        session_id: SessionId::new(text(r, "session_id")?),
        client_id: ClientId::new(text(r, "client_id")?),
        sid: Sid::new(text(r, "sid")?),
        created_at: ms(r, "created_at")?,
    })
}

pub(super) fn code(r: &PgRow) -> StoreResult<AuthCode> {
    Ok(AuthCode {
        code_hash: text(r, "code_hash")?,
        grant_id: text(r, "grant_id")?,
        client_id: ClientId::new(text(r, "client_id")?),
        redirect_uri: text(r, "redirect_uri")?,
        user_id: UserId::new(text(r, "user_id")?),
        session_id: SessionId::new(text(r, "session_id")?),
        sid: Sid::new(text(r, "sid")?),
        scope: text(r, "scope")?,
        nonce: r.try_get("nonce").map_err(backend)?,
        code_challenge: r.try_get("code_challenge").map_err(backend)?,
        auth_time: ms(r, "auth_time")?,
        created_at: ms(r, "created_at")?,
        expires_at: ms(r, "expires_at")?,
        used_at: opt(r, "used_at")?,
    })
}

pub(super) fn access(r: &PgRow) -> StoreResult<AccessToken> {
    Ok(AccessToken {
        token_hash: text(r, "token_hash")?,
        grant_id: text(r, "grant_id")?,
        client_id: ClientId::new(text(r, "client_id")?),
        user_id: UserId::new(text(r, "user_id")?),
        session_id: SessionId::new(text(r, "session_id")?),
        scope: text(r, "scope")?,
        offline: r.try_get("offline").map_err(backend)?,
        created_at: ms(r, "created_at")?,
        expires_at: ms(r, "expires_at")?,
        revoked_at: opt(r, "revoked_at")?,
    })
}

pub(super) fn refresh(r: &PgRow) -> StoreResult<RefreshToken> {
    Ok(RefreshToken {
        token_hash: text(r, "token_hash")?,
        grant_id: text(r, "grant_id")?,
        client_id: ClientId::new(text(r, "client_id")?),
        user_id: UserId::new(text(r, "user_id")?),
        session_id: SessionId::new(text(r, "session_id")?),
        sid: Sid::new(text(r, "sid")?),
        scope: text(r, "scope")?,
        offline: r.try_get("offline").map_err(backend)?,
        auth_time: ms(r, "auth_time")?,
        created_at: ms(r, "created_at")?,
        expires_at: ms(r, "expires_at")?,
        rotated_at: opt(r, "rotated_at")?,
        revoked_at: opt(r, "revoked_at")?,
    })
}

pub(super) fn delivery(r: &PgRow) -> StoreResult<Delivery> {
    Ok(Delivery {
        id: text(r, "id")?,
        session_id: SessionId::new(text(r, "session_id")?),
        client_id: ClientId::new(text(r, "client_id")?),
        sub: UserId::new(text(r, "sub")?),
        sid: Sid::new(text(r, "sid")?),
        initiator: text(r, "initiator")?
            .parse()
            .map_err(|e: adieu_core::initiator::UnknownInitiator| StoreError::Backend(e.to_string()))?,
        status: text(r, "status")?.parse().map_err(StoreError::Backend)?,
        attempts: u32::try_from(r.try_get::<i64, _>("attempts").map_err(backend)?).unwrap_or(0),
        next_attempt_at: ms(r, "next_attempt_at")?,
        lease_until: opt(r, "lease_until")?,
        round_started_at: ms(r, "round_started_at")?,
        created_at: ms(r, "created_at")?,
        finished_at: opt(r, "finished_at")?,
        last_error: r.try_get("last_error").map_err(backend)?,
    })
}

pub(super) fn attempt(r: &PgRow) -> StoreResult<Attempt> {
    Ok(Attempt {
        delivery_id: text(r, "delivery_id")?,
        number: u32::try_from(r.try_get::<i64, _>("number").map_err(backend)?).unwrap_or(0),
        at: ms(r, "at")?,
        latency_ms: u64::try_from(r.try_get::<i64, _>("latency_ms").map_err(backend)?).unwrap_or(0),
        http_status: r.try_get::<Option<i64>, _>("http_status").map_err(backend)?.and_then(|s| u16::try_from(s).ok()),
        error: r.try_get("error").map_err(backend)?,
    })
}

pub(super) fn audit(r: &PgRow) -> StoreResult<AuditEvent> {
    let detail = text(r, "detail")?;
    Ok(AuditEvent {
        id: r.try_get("id").map_err(backend)?,
        at: ms(r, "at")?,
        kind: text(r, "kind")?,
        actor: text(r, "actor")?,
        client_id: r.try_get("client_id").map_err(backend)?,
        user_id: r.try_get("user_id").map_err(backend)?,
        session_id: r.try_get("session_id").map_err(backend)?,
        delivery_id: r.try_get("delivery_id").map_err(backend)?,
        detail: serde_json::from_str(&detail).map_err(json_err)?,
    })
}

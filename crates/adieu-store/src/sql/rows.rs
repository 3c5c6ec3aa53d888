//! Rows → domain types, and the column lists queries select (both backends store the same
//! types: integers, booleans, text, bytes).
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
         id_token_signed_response_alg, frontchannel_logout_uri, frontchannel_logout_session_required,
         third_party, created_at, updated_at"
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
pub(crate) use {
    access_cols, attempt_cols, audit_cols, client_cols, code_cols, delivery_cols, participation_cols, refresh_cols,
    session_cols, user_cols,
};

use super::stmt::Read;
use adieu_core::audit::AuditEvent;
use adieu_core::client::{Client, TokenEndpointAuthMethod};
use adieu_core::delivery::{Attempt, Delivery};
use adieu_core::grant::{AccessToken, AuthCode, RefreshToken};
use adieu_core::id::{ClientId, SessionId, Sid, UserId};
use adieu_core::initiator::Initiator;
use adieu_core::session::{Participation, Session, SessionDevice};
use adieu_core::store::{StoreError, StoreResult};
use adieu_core::user::User;
use std::str::FromStr;

pub(crate) fn user(r: &impl Read) -> StoreResult<User> {
    Ok(User {
        id: UserId::new(r.text("id")?),
        username: r.text("username")?,
        email: r.opt_text("email")?,
        password_hash: r.text("password_hash")?,
        created_at: r.ms("created_at")?,
        updated_at: r.ms("updated_at")?,
    })
}

pub(crate) fn client(r: &impl Read) -> StoreResult<Client> {
    Ok(Client {
        id: ClientId::new(r.text("id")?),
        name: r.text("name")?,
        secret_hash: r.opt_text("secret_hash")?,
        redirect_uris: r.json("redirect_uris")?,
        post_logout_redirect_uris: r.json("post_logout_redirect_uris")?,
        backchannel_logout_uri: r.opt_text("backchannel_logout_uri")?,
        backchannel_logout_session_required: r.flag("backchannel_logout_session_required")?,
        backchannel_logout_initiators: r.json("backchannel_logout_initiators")?,
        token_endpoint_auth_method: TokenEndpointAuthMethod::from_str(&r.text("token_endpoint_auth_method")?)
            .map_err(StoreError::Backend)?,
        id_token_signed_response_alg: r
            .text("id_token_signed_response_alg")?
            .parse()
            .map_err(|e| StoreError::Backend(format!("{e}")))?,
        frontchannel_logout_uri: r.opt_text("frontchannel_logout_uri")?,
        frontchannel_logout_session_required: r.flag("frontchannel_logout_session_required")?,
        third_party: r.flag("third_party")?,
        created_at: r.ms("created_at")?,
        updated_at: r.ms("updated_at")?,
    })
}

/// A `session_devices` row (`session_id, address, user_agent, recorded_at`). The values pass
/// through [`SessionDevice::new`] again, so the bounds hold whatever was stored; an address that
/// does not parse reads as unknown (it is shown, never used).
pub(crate) fn session_device(r: &impl Read) -> StoreResult<(SessionId, SessionDevice)> {
    let address = r.opt_text("address")?.and_then(|a| a.parse().ok());
    let device = SessionDevice::new(address, r.opt_text("user_agent")?.as_deref(), r.ms("recorded_at")?);
    Ok((SessionId::new(r.text("session_id")?), device))
}

pub(crate) fn session(r: &impl Read) -> StoreResult<Session> {
    let reason: Option<String> = r.opt_text("end_reason")?;
    Ok(Session {
        id: SessionId::new(r.text("id")?),
        user_id: UserId::new(r.text("user_id")?),
        auth_time: r.ms("auth_time")?,
        created_at: r.ms("created_at")?,
        last_seen_at: r.ms("last_seen_at")?,
        ended_at: r.opt_ms("ended_at")?,
        end_reason: reason
            .map(|s| s.parse::<Initiator>())
            .transpose()
            .map_err(|e| StoreError::Backend(e.to_string()))?,
    })
}

pub(crate) fn participation(r: &impl Read) -> StoreResult<Participation> {
    Ok(Participation {
        session_id: SessionId::new(r.text("session_id")?),
        client_id: ClientId::new(r.text("client_id")?),
        sid: Sid::new(r.text("sid")?),
        created_at: r.ms("created_at")?,
    })
}

pub(crate) fn code(r: &impl Read) -> StoreResult<AuthCode> {
    Ok(AuthCode {
        code_hash: r.text("code_hash")?,
        grant_id: r.text("grant_id")?,
        client_id: ClientId::new(r.text("client_id")?),
        redirect_uri: r.text("redirect_uri")?,
        user_id: UserId::new(r.text("user_id")?),
        session_id: SessionId::new(r.text("session_id")?),
        sid: Sid::new(r.text("sid")?),
        scope: r.text("scope")?,
        nonce: r.opt_text("nonce")?,
        code_challenge: r.opt_text("code_challenge")?,
        auth_time: r.ms("auth_time")?,
        created_at: r.ms("created_at")?,
        expires_at: r.ms("expires_at")?,
        used_at: r.opt_ms("used_at")?,
    })
}

pub(crate) fn access(r: &impl Read) -> StoreResult<AccessToken> {
    Ok(AccessToken {
        token_hash: r.text("token_hash")?,
        grant_id: r.text("grant_id")?,
        client_id: ClientId::new(r.text("client_id")?),
        user_id: UserId::new(r.text("user_id")?),
        session_id: SessionId::new(r.text("session_id")?),
        scope: r.text("scope")?,
        offline: r.flag("offline")?,
        created_at: r.ms("created_at")?,
        expires_at: r.ms("expires_at")?,
        revoked_at: r.opt_ms("revoked_at")?,
    })
}

pub(crate) fn refresh(r: &impl Read) -> StoreResult<RefreshToken> {
    Ok(RefreshToken {
        token_hash: r.text("token_hash")?,
        grant_id: r.text("grant_id")?,
        client_id: ClientId::new(r.text("client_id")?),
        user_id: UserId::new(r.text("user_id")?),
        session_id: SessionId::new(r.text("session_id")?),
        sid: Sid::new(r.text("sid")?),
        scope: r.text("scope")?,
        offline: r.flag("offline")?,
        auth_time: r.ms("auth_time")?,
        created_at: r.ms("created_at")?,
        expires_at: r.ms("expires_at")?,
        rotated_at: r.opt_ms("rotated_at")?,
        revoked_at: r.opt_ms("revoked_at")?,
    })
}

pub(crate) fn delivery(r: &impl Read) -> StoreResult<Delivery> {
    Ok(Delivery {
        id: r.text("id")?,
        session_id: SessionId::new(r.text("session_id")?),
        client_id: ClientId::new(r.text("client_id")?),
        sub: UserId::new(r.text("sub")?),
        sid: Sid::new(r.text("sid")?),
        initiator: r
            .text("initiator")?
            .parse()
            .map_err(|e: adieu_core::initiator::UnknownInitiator| StoreError::Backend(e.to_string()))?,
        status: r.text("status")?.parse().map_err(StoreError::Backend)?,
        attempts: u32::try_from(r.i64("attempts")?).unwrap_or(0),
        next_attempt_at: r.ms("next_attempt_at")?,
        lease_until: r.opt_ms("lease_until")?,
        round_started_at: r.ms("round_started_at")?,
        created_at: r.ms("created_at")?,
        finished_at: r.opt_ms("finished_at")?,
        last_error: r.opt_text("last_error")?,
    })
}

pub(crate) fn attempt(r: &impl Read) -> StoreResult<Attempt> {
    Ok(Attempt {
        delivery_id: r.text("delivery_id")?,
        number: u32::try_from(r.i64("number")?).unwrap_or(0),
        at: r.ms("at")?,
        latency_ms: u64::try_from(r.i64("latency_ms")?).unwrap_or(0),
        http_status: r.opt_i64("http_status")?.and_then(|s| u16::try_from(s).ok()),
        error: r.opt_text("error")?,
    })
}

pub(crate) fn audit(r: &impl Read) -> StoreResult<AuditEvent> {
    Ok(AuditEvent {
        id: r.i64("id")?,
        at: r.ms("at")?,
        kind: r.text("kind")?,
        actor: r.text("actor")?,
        client_id: r.opt_text("client_id")?,
        user_id: r.opt_text("user_id")?,
        session_id: r.opt_text("session_id")?,
        delivery_id: r.opt_text("delivery_id")?,
        detail: r.json("detail")?,
    })
}

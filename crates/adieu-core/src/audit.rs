//! The audit log: who did what, when, to which client, user, session or delivery.

use crate::time::UnixMillis;
use serde::Serialize;
use serde_json::Value;

/// Kinds of audit events, as stored and filtered.
pub mod kind {
    /// A client got a back-channel logout URI.
    pub const BACKCHANNEL_SUBSCRIBED: &str = "backchannel.subscribed";
    /// A client's back-channel logout URI changed.
    pub const BACKCHANNEL_CHANGED: &str = "backchannel.changed";
    /// A client's back-channel logout URI was removed (or the client deleted).
    pub const BACKCHANNEL_UNSUBSCRIBED: &str = "backchannel.unsubscribed";
    /// Pending deliveries were discarded because the client unsubscribed.
    pub const DELIVERIES_DISCARDED: &str = "delivery.discarded";
    /// An OP session ended (a logout event), with its initiator.
    pub const SESSION_ENDED: &str = "session.ended";
    /// A delivery attempt failed (it will be retried).
    pub const DELIVERY_ATTEMPT_FAILED: &str = "delivery.attempt_failed";
    /// A delivery was rejected by the application (HTTP 400).
    pub const DELIVERY_REJECTED: &str = "delivery.rejected";
    /// A delivery was abandoned.
    pub const DELIVERY_DEAD: &str = "delivery.dead";
    /// An operator asked for a dead delivery to be retried.
    pub const DELIVERY_RETRIED: &str = "delivery.retried";
    /// A client was registered.
    pub const CLIENT_CREATED: &str = "client.created";
    /// A client was changed.
    pub const CLIENT_UPDATED: &str = "client.updated";
    /// A client was deleted.
    pub const CLIENT_DELETED: &str = "client.deleted";
    /// A user account was created.
    pub const USER_CREATED: &str = "user.created";
    /// A user account's username, email or password changed (the detail says which; never the password).
    pub const USER_UPDATED: &str = "user.updated";
    /// A user account was deleted.
    pub const USER_DELETED: &str = "user.deleted";
    /// An upstream provider's back-channel logout was received and verified (the sessions it
    /// ended are audited as `session.ended` with `idp-logout`).
    pub const UPSTREAM_LOGOUT: &str = "upstream.logout";
    /// A signing key was created (first start or rotation); the detail has its kid, algorithm,
    /// generation and when it starts signing.
    pub const KEY_CREATED: &str = "key.created";
    /// A signing key was retired: removed from the JWKS, its private key erased.
    pub const KEY_RETIRED: &str = "key.retired";
}

/// One audit event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEvent {
    /// Sequence number (assigned by the store).
    pub id: i64,
    /// When.
    pub at: UnixMillis,
    /// What (see [`kind`]).
    pub kind: String,
    /// Who: `admin-api`, `cli`, `registration` or `system`.
    pub actor: String,
    /// The client concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The user concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The session concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// The delivery concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery_id: Option<String>,
    /// Details (old and new values, initiator, error…).
    pub detail: Value,
}

impl AuditEvent {
    /// A new event (id assigned on insert).
    pub fn new(kind: &str, actor: &str, at: UnixMillis, detail: Value) -> Self {
        AuditEvent {
            id: 0,
            at,
            kind: kind.to_owned(),
            actor: actor.to_owned(),
            client_id: None,
            user_id: None,
            session_id: None,
            delivery_id: None,
            detail,
        }
    }
    /// Sets the client.
    pub fn client(mut self, id: impl Into<String>) -> Self {
        self.client_id = Some(id.into());
        self
    }
    /// Sets the user.
    pub fn user(mut self, id: impl Into<String>) -> Self {
        self.user_id = Some(id.into());
        self
    }
    /// Sets the session.
    pub fn session(mut self, id: impl Into<String>) -> Self {
        self.session_id = Some(id.into());
        self
    }
    /// Sets the delivery.
    pub fn delivery(mut self, id: impl Into<String>) -> Self {
        self.delivery_id = Some(id.into());
        self
    }
}

/// A query on the audit log.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only this kind (exact) or prefix ending in `.` (e.g. `delivery.`).
    pub kind: Option<String>,
    /// Only this client.
    pub client_id: Option<String>,
    /// Only events at or after.
    pub since: Option<UnixMillis>,
    /// Only events before.
    pub until: Option<UnixMillis>,
    /// At most this many, newest first (default 100, at most 1000).
    pub limit: Option<u32>,
}

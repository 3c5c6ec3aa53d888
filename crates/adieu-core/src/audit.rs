//! The audit log: who did what, when, to which client, user, session or delivery.

use crate::time::UnixMillis;
use serde::Serialize;
use serde_json::Value;
use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

/// What happened: the kinds of audit events, as stored (`as_str`) and filtered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditKind {
    /// A client got a back-channel logout URI.
    BackchannelSubscribed,
    /// A client's back-channel logout URI changed.
    BackchannelChanged,
    /// A client's back-channel logout URI was removed (or the client deleted).
    BackchannelUnsubscribed,
    /// Pending deliveries were discarded because the client unsubscribed.
    DeliveriesDiscarded,
    /// An OP session ended (a logout event), with its initiator.
    SessionEnded,
    /// A delivery attempt failed (it will be retried).
    DeliveryAttemptFailed,
    /// A delivery was rejected by the application (HTTP 400).
    DeliveryRejected,
    /// A delivery was abandoned.
    DeliveryDead,
    /// An operator retried a delivery (pending, dead or rejected; the detail says which).
    DeliveryRetried,
    /// A client was registered.
    ClientCreated,
    /// A client was changed.
    ClientUpdated,
    /// A client was deleted.
    ClientDeleted,
    /// A user account was created.
    UserCreated,
    /// A user account's username, email or password changed (the detail says which; never the password).
    UserUpdated,
    /// A user account was deleted.
    UserDeleted,
    /// An upstream provider's back-channel logout was received and verified (the sessions it
    /// ended are audited as `session.ended` with `idp-logout`).
    UpstreamLogout,
    /// A signing key was created (first start or rotation); the detail has its kid, algorithm,
    /// generation and when it starts signing.
    KeyCreated,
    /// A signing key was retired: removed from the JWKS, its private key erased.
    KeyRetired,
    /// An API bearer token was created (the detail has its id, kind and label; never the token).
    ApiTokenCreated,
    /// An API bearer token was revoked.
    ApiTokenRevoked,
    /// A Global Token Revocation request ended every session and token of a user.
    UserTokensRevoked,
    /// A user allowed an application scopes on the consent screen.
    ConsentGranted,
    /// A user withdrew what they had allowed an application.
    ConsentWithdrawn,
}

impl AuditKind {
    /// Every kind.
    pub const ALL: [AuditKind; 23] = [
        AuditKind::BackchannelSubscribed,
        AuditKind::BackchannelChanged,
        AuditKind::BackchannelUnsubscribed,
        AuditKind::DeliveriesDiscarded,
        AuditKind::SessionEnded,
        AuditKind::DeliveryAttemptFailed,
        AuditKind::DeliveryRejected,
        AuditKind::DeliveryDead,
        AuditKind::DeliveryRetried,
        AuditKind::ClientCreated,
        AuditKind::ClientUpdated,
        AuditKind::ClientDeleted,
        AuditKind::UserCreated,
        AuditKind::UserUpdated,
        AuditKind::UserDeleted,
        AuditKind::UpstreamLogout,
        AuditKind::KeyCreated,
        AuditKind::KeyRetired,
        AuditKind::ApiTokenCreated,
        AuditKind::ApiTokenRevoked,
        AuditKind::UserTokensRevoked,
        AuditKind::ConsentGranted,
        AuditKind::ConsentWithdrawn,
    ];

    /// The name it is stored and filtered under, e.g. `session.ended`.
    pub const fn as_str(self) -> &'static str {
        match self {
            AuditKind::BackchannelSubscribed => "backchannel.subscribed",
            AuditKind::BackchannelChanged => "backchannel.changed",
            AuditKind::BackchannelUnsubscribed => "backchannel.unsubscribed",
            AuditKind::DeliveriesDiscarded => "delivery.discarded",
            AuditKind::SessionEnded => "session.ended",
            AuditKind::DeliveryAttemptFailed => "delivery.attempt_failed",
            AuditKind::DeliveryRejected => "delivery.rejected",
            AuditKind::DeliveryDead => "delivery.dead",
            AuditKind::DeliveryRetried => "delivery.retried",
            AuditKind::ClientCreated => "client.created",
            AuditKind::ClientUpdated => "client.updated",
            AuditKind::ClientDeleted => "client.deleted",
            AuditKind::UserCreated => "user.created",
            AuditKind::UserUpdated => "user.updated",
            AuditKind::UserDeleted => "user.deleted",
            AuditKind::UpstreamLogout => "upstream.logout",
            AuditKind::KeyCreated => "key.created",
            AuditKind::KeyRetired => "key.retired",
            AuditKind::ApiTokenCreated => "api_token.created",
            AuditKind::ApiTokenRevoked => "api_token.revoked",
            AuditKind::UserTokensRevoked => "user.tokens_revoked",
            AuditKind::ConsentGranted => "consent.granted",
            AuditKind::ConsentWithdrawn => "consent.withdrawn",
        }
    }
}

impl fmt::Display for AuditKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AuditKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        AuditKind::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| format!("unknown audit event kind {s:?}"))
    }
}

/// Who did it: the interface a change came through, as stored in [`AuditEvent::actor`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor<'a> {
    /// adieu itself: the delivery worker, the expiry sweeper, key rotation, upstream logouts.
    System,
    /// The management API (admin bearer token).
    AdminApi,
    /// The command line.
    Cli,
    /// Dynamic client registration (an initial access token).
    Registration,
    /// A person on their account page, by user id.
    Account(&'a str),
}

impl Actor<'_> {
    /// The name stored in the audit log: `system`, `admin-api`, `cli`, `registration` or
    /// `account:<user id>`.
    pub fn name(&self) -> Cow<'static, str> {
        match self {
            Actor::System => Cow::Borrowed("system"),
            Actor::AdminApi => Cow::Borrowed("admin-api"),
            Actor::Cli => Cow::Borrowed("cli"),
            Actor::Registration => Cow::Borrowed("registration"),
            Actor::Account(user) => Cow::Owned(format!("account:{user}")),
        }
    }
}

impl fmt::Display for Actor<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// One audit event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEvent {
    /// Sequence number (assigned by the store).
    pub id: i64,
    /// When.
    pub at: UnixMillis,
    /// What: an [`AuditKind`]'s name (kept as text, so events of kinds a newer version adds
    /// still read).
    pub kind: String,
    /// Who: an [`Actor`]'s name.
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
    pub fn new(kind: AuditKind, actor: &str, at: UnixMillis, detail: Value) -> Self {
        AuditEvent {
            id: 0,
            at,
            kind: kind.as_str().to_owned(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_reads_back_from_its_name() {
        for k in AuditKind::ALL {
            assert_eq!(k.as_str().parse::<AuditKind>(), Ok(k));
        }
        assert!("session.end".parse::<AuditKind>().is_err());
    }

    #[test]
    fn actor_names_are_the_stored_ones() {
        assert_eq!(Actor::System.name(), "system");
        assert_eq!(Actor::AdminApi.name(), "admin-api");
        assert_eq!(Actor::Cli.to_string(), "cli");
        assert_eq!(Actor::Registration.name(), "registration");
        assert_eq!(Actor::Account("u1").name(), "account:u1");
    }
}

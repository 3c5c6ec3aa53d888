//! OP sessions and participations.
//!
//! A [`Session`] is a signed-in browser at the provider. Every client that is issued an
//! authorization code in it gets a [`Participation`] with its own random `sid` (the `sid` of every ID
//! token that client gets in that session); back-channel logout fans out over them.

use crate::id::{ClientId, SessionId, Sid, UserId};
use crate::initiator::Initiator;
use crate::time::UnixMillis;
use std::time::Duration;

/// Idle and absolute lifetimes of OP sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLifetime {
    /// A session unused for this long has expired.
    pub idle: Duration,
    /// A session older than this has expired, however active.
    pub absolute: Duration,
}

/// An OP session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Internal id.
    pub id: SessionId,
    /// Who is signed in.
    pub user_id: UserId,
    /// When the user last authenticated with a password (the `auth_time` claim).
    pub auth_time: UnixMillis,
    /// Creation time.
    pub created_at: UnixMillis,
    /// Last use (sign-in or authorization); drives the idle lifetime.
    pub last_seen_at: UnixMillis,
    /// When the session ended, if it did.
    pub ended_at: Option<UnixMillis>,
    /// Why the session ended, if it did.
    pub end_reason: Option<Initiator>,
}

impl Session {
    /// When this session expires if nothing else happens: the earlier of idle and absolute expiry.
    pub fn expires_at(&self, lifetime: SessionLifetime) -> UnixMillis {
        self.last_seen_at.plus(lifetime.idle).min(self.created_at.plus(lifetime.absolute))
    }

    /// Whether the session is usable at `now`: not ended and not expired.
    pub fn is_active(&self, now: UnixMillis, lifetime: SessionLifetime) -> bool {
        self.ended_at.is_none() && now < self.expires_at(lifetime)
    }
}

/// A client's part in a session: `(session, client, sid)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participation {
    /// The OP session.
    pub session_id: SessionId,
    /// The application.
    pub client_id: ClientId,
    /// The `sid` in every ID token this client gets in this session.
    pub sid: Sid,
    /// When the client first got an ID token in this session.
    pub created_at: UnixMillis,
}

/// The result of ending a session: what the notification step needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndedSession {
    /// The session that ended.
    pub session: Session,
    /// Everything that participated in it.
    pub participations: Vec<Participation>,
    /// How many refresh and access tokens were revoked with it (BC-RT-01).
    pub revoked_tokens: u64,
    /// The back-channel deliveries written in the same transaction (one per subscribed participant).
    pub deliveries: Vec<crate::delivery::Delivery>,
}

impl EndedSession {
    /// The applications that are told (a delivery was written) and those that are not (no
    /// back-channel logout URI, or not subscribed to this initiator), each by client id, sorted,
    /// once each, over several ended sessions.
    pub fn told_and_not(ended: &[EndedSession]) -> (Vec<ClientId>, Vec<ClientId>) {
        let told: std::collections::BTreeSet<ClientId> =
            ended.iter().flat_map(|e| e.deliveries.iter().map(|d| d.client_id.clone())).collect();
        let all: std::collections::BTreeSet<ClientId> =
            ended.iter().flat_map(|e| e.participations.iter().map(|p| p.client_id.clone())).collect();
        let not = all.difference(&told).cloned().collect();
        (told.into_iter().collect(), not)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(created: i64, seen: i64) -> Session {
        Session {
            id: SessionId::new("s"),
            user_id: UserId::new("u"),
            auth_time: UnixMillis(created),
            created_at: UnixMillis(created),
            last_seen_at: UnixMillis(seen),
            ended_at: None,
            end_reason: None,
        }
    }

    const LIFE: SessionLifetime = SessionLifetime { idle: Duration::from_secs(10), absolute: Duration::from_secs(100) };

    #[test]
    fn idle_lifetime_counts_from_last_use() {
        let s = session(0, 50_000);
        assert!(s.is_active(UnixMillis(59_999), LIFE));
        assert!(!s.is_active(UnixMillis(60_000), LIFE));
    }

    #[test]
    fn absolute_lifetime_caps_an_active_session() {
        let s = session(0, 95_000);
        assert_eq!(s.expires_at(LIFE), UnixMillis(100_000));
        assert!(!s.is_active(UnixMillis(100_000), LIFE));
    }

    #[test]
    fn an_ended_session_is_not_active() {
        let mut s = session(0, 0);
        s.ended_at = Some(UnixMillis(1));
        assert!(!s.is_active(UnixMillis(2), LIFE));
    }
}

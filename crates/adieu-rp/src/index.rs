//! Finding the application sessions a logout token ends (BC-RP-14, BC-SEC-06), and ending them.
//!
//! At login the application records `(iss, sub, sid, its own session id, created-at)` in a
//! [`SessionIndex`]. A verified token then names sessions by `sid`, or all of a user's sessions
//! when only `sub` is given — except sessions created after the token's `iat`, so a late logout
//! cannot end a newer session (RFC 8417 §4.4). Two ways to end them: eagerly, with a
//! [`SessionEnder`] that deletes them from the application's session store, or lazily, with
//! [`LogoutMarkers`] that a request checks (for cookie-only sessions).

use crate::verify::{LogoutSubject, VerifiedLogoutToken};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Mutex;

/// What the application records when a user signs in.
///
/// ```
/// let login = adieu_rp::index::LoginRecord {
///     issuer: "https://op.example.com".into(),
///     sub: "user-1".into(),
///     sid: Some("sid-1".into()),
///     session_id: "app-session-42".into(),
///     created_at: 1_800_000_000,
/// };
/// # let _ = login;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginRecord {
    /// The ID token's `iss`.
    pub issuer: String,
    /// The ID token's `sub`.
    pub sub: String,
    /// The ID token's `sid`, if the provider sends one (BC-SID-04).
    pub sid: Option<String>,
    /// The application's own session id.
    pub session_id: String,
    /// When the application session was created, seconds since the epoch.
    pub created_at: i64,
}

crate::sourced::sourced_error!(
    /// The index or the session store failed; the store's error is its `source`.
    IndexError,
    "session index",
    "index::IndexError"
);

/// Maps provider sessions and users to application sessions.
///
/// ```
/// use adieu_rp::index::{LoginRecord, MemorySessionIndex, SessionIndex};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let index = MemorySessionIndex::default();
/// index.record(LoginRecord { issuer: "https://op.example.com".into(), sub: "user-1".into(),
///     sid: Some("sid-1".into()), session_id: "s42".into(), created_at: 0 }).await.unwrap();
/// # let (keys, token, policy, now) = adieu_rp::verify::sample_for_docs();
/// let token = adieu_rp::verify::verify(&token, &keys, &policy, now).unwrap();
/// assert_eq!(index.sessions_to_end(&token).await.unwrap(), vec!["s42".to_owned()]);
/// # });
/// ```
#[async_trait]
pub trait SessionIndex: Send + Sync + std::fmt::Debug {
    /// Records a login.
    async fn record(&self, login: LoginRecord) -> Result<(), IndexError>;
    /// The application sessions `token` ends.
    async fn sessions_to_end(&self, token: &VerifiedLogoutToken) -> Result<Vec<String>, IndexError>;
    /// Forgets ended sessions (also call it when the user signs out locally).
    async fn forget(&self, session_ids: &[String]) -> Result<(), IndexError>;
}

/// Ends application sessions.
///
/// ```
/// use adieu_rp::index::{LogoutMarkers, SessionEnder};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let markers = LogoutMarkers::default();
/// markers.end_sessions(&["s42".to_owned()]).await.unwrap();
/// assert!(markers.is_logged_out("s42"));
/// # });
/// ```
#[async_trait]
pub trait SessionEnder: Send + Sync + std::fmt::Debug {
    /// Ends these sessions. Ending an unknown or already-ended session succeeds (BC-RP-14).
    async fn end_sessions(&self, session_ids: &[String]) -> Result<(), IndexError>;
}

/// Decides which recorded logins a token names.
///
/// ```
/// # use adieu_rp::index::{matches, LoginRecord};
/// # let (keys, token, policy, now) = adieu_rp::verify::sample_for_docs();
/// let token = adieu_rp::verify::verify(&token, &keys, &policy, now).unwrap();
/// let login = LoginRecord { issuer: "https://op.example.com".into(), sub: "user-1".into(),
///     sid: Some("sid-1".into()), session_id: "s".into(), created_at: 0 };
/// assert!(matches(&login, &token));
/// ```
pub fn matches(login: &LoginRecord, token: &VerifiedLogoutToken) -> bool {
    if login.issuer != token.issuer() {
        return false;
    }
    match token.subject() {
        // BC-RP-11 (and BC-RP-10 when both are present): the session of that sid.
        LogoutSubject::Sid(sid) => login.sid.as_deref() == Some(sid.as_str()),
        LogoutSubject::Both { sub, sid } => login.sid.as_deref() == Some(sid.as_str()) && login.sub == *sub,
        // BC-LT-01: all the user's sessions — but not ones created after the token (BC-SEC-06).
        LogoutSubject::Sub(sub) => login.sub == *sub && login.created_at <= token.issued_at(),
    }
}

/// An in-memory index for a single process (tests, development, single-instance apps). Lookups
/// by `sid` and by `sub` go through their own maps, so a logout costs the same with a million
/// sessions as with ten.
///
/// ```
/// let index = adieu_rp::index::MemorySessionIndex::default();
/// # let _ = index;
/// ```
#[derive(Debug, Default)]
pub struct MemorySessionIndex {
    inner: Mutex<MemoryIndexInner>,
}

/// Session ids by issuer, then by `sid` (or `sub`): nested so a lookup borrows the token's
/// strings instead of building a key.
type ByIssuer = HashMap<String, HashMap<String, Vec<String>>>;

#[derive(Debug, Default)]
struct MemoryIndexInner {
    logins: HashMap<String, LoginRecord>,
    by_sid: ByIssuer,
    by_sub: ByIssuer,
}

fn link(map: &mut ByIssuer, issuer: &str, key: &str, session_id: &str) {
    let per_issuer = match map.get_mut(issuer) {
        Some(m) => m,
        None => map.entry(issuer.to_owned()).or_default(),
    };
    match per_issuer.get_mut(key) {
        Some(ids) => ids.push(session_id.to_owned()),
        None => {
            per_issuer.insert(key.to_owned(), vec![session_id.to_owned()]);
        }
    }
}

fn unlink_from(map: &mut ByIssuer, issuer: &str, key: &str, session_id: &str) {
    let Some(per_issuer) = map.get_mut(issuer) else { return };
    if let Some(ids) = per_issuer.get_mut(key) {
        ids.retain(|id| id != session_id);
        if ids.is_empty() {
            per_issuer.remove(key);
        }
    }
    if per_issuer.is_empty() {
        map.remove(issuer);
    }
}

impl MemoryIndexInner {
    fn unlink(&mut self, session_id: &str) {
        let Some(old) = self.logins.remove(session_id) else { return };
        if let Some(sid) = &old.sid {
            unlink_from(&mut self.by_sid, &old.issuer, sid, session_id);
        }
        unlink_from(&mut self.by_sub, &old.issuer, &old.sub, session_id);
    }
}

#[async_trait]
impl SessionIndex for MemorySessionIndex {
    async fn record(&self, login: LoginRecord) -> Result<(), IndexError> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.unlink(&login.session_id);
        if let Some(sid) = &login.sid {
            link(&mut inner.by_sid, &login.issuer, sid, &login.session_id);
        }
        link(&mut inner.by_sub, &login.issuer, &login.sub, &login.session_id);
        inner.logins.insert(login.session_id.clone(), login);
        Ok(())
    }

    async fn sessions_to_end(&self, token: &VerifiedLogoutToken) -> Result<Vec<String>, IndexError> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (map, key) = match token.subject() {
            LogoutSubject::Sid(sid) | LogoutSubject::Both { sid, .. } => (&inner.by_sid, sid),
            LogoutSubject::Sub(sub) => (&inner.by_sub, sub),
        };
        let mut ids: Vec<String> = map
            .get(token.issuer())
            .and_then(|m| m.get(key.as_str()))
            .into_iter()
            .flatten()
            .filter(|id| inner.logins.get(*id).is_some_and(|l| matches(l, token)))
            .cloned()
            .collect();
        ids.sort();
        Ok(ids)
    }

    async fn forget(&self, session_ids: &[String]) -> Result<(), IndexError> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        for id in session_ids {
            inner.unlink(id);
        }
        Ok(())
    }
}

/// How long a logged-out marker is kept by default: longer than any application session should
/// live (30 days). Set it to your sessions' absolute lifetime with the backends' `with_marker_ttl`.
pub const DEFAULT_MARKER_TTL_SECS: i64 = 30 * 24 * 3600;

/// Lazy ending: where logged-out markers are kept, so each request can check its session
/// (for sessions that live only in a cookie and cannot be deleted server-side). Recording markers
/// is its [`SessionEnder`] side; [`crate::layer::LazyLogoutLayer`] does the check on every request.
///
/// Implemented in memory ([`LogoutMarkers`]), and, shared by several replicas, by the SQLite,
/// PostgreSQL and Redis backends.
///
/// ```
/// use adieu_rp::index::{LogoutMarkerStore, LogoutMarkers, SessionEnder};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let markers = LogoutMarkers::default();
/// markers.end_sessions(&["s42".to_owned()]).await.unwrap();
/// assert!(LogoutMarkerStore::is_logged_out(&markers, "s42").await.unwrap());
/// # });
/// ```
#[async_trait]
pub trait LogoutMarkerStore: SessionEnder {
    /// Whether `session_id` was ended by a back-channel logout (and its marker has not expired).
    async fn is_logged_out(&self, session_id: &str) -> Result<bool, IndexError>;
}

/// Logged-out markers in memory, for a single process. Markers expire after a TTL (default
/// [`DEFAULT_MARKER_TTL_SECS`]) and expired ones are dropped as new ones arrive, so memory stays bounded.
///
/// ```
/// let markers = adieu_rp::index::LogoutMarkers::default();
/// assert!(!markers.is_logged_out("s1"));
/// ```
#[derive(Debug)]
pub struct LogoutMarkers {
    ended: Mutex<HashMap<String, i64>>,
    ttl_secs: i64,
}

impl Default for LogoutMarkers {
    fn default() -> Self {
        LogoutMarkers { ended: Mutex::default(), ttl_secs: DEFAULT_MARKER_TTL_SECS }
    }
}

impl LogoutMarkers {
    /// Markers kept for `ttl` (use your sessions' absolute lifetime).
    ///
    /// ```
    /// let markers = adieu_rp::index::LogoutMarkers::with_marker_ttl(std::time::Duration::from_secs(86_400));
    /// # let _ = markers;
    /// ```
    pub fn with_marker_ttl(ttl: std::time::Duration) -> Self {
        LogoutMarkers { ended: Mutex::default(), ttl_secs: i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX) }
    }

    /// Whether `session_id` was ended by a back-channel logout (synchronous: memory only).
    ///
    /// ```
    /// # let markers = adieu_rp::index::LogoutMarkers::default();
    /// if markers.is_logged_out("s1") { /* clear the cookie, show the sign-in page */ }
    /// ```
    pub fn is_logged_out(&self, session_id: &str) -> bool {
        let now = crate::wall_clock_secs();
        self.ended.lock().unwrap_or_else(|p| p.into_inner()).get(session_id).is_some_and(|until| *until >= now)
    }
}

#[async_trait]
impl SessionEnder for LogoutMarkers {
    async fn end_sessions(&self, session_ids: &[String]) -> Result<(), IndexError> {
        let now = crate::wall_clock_secs();
        let until = now.saturating_add(self.ttl_secs);
        let mut m = self.ended.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() >= 1024 && m.len().is_power_of_two() {
            m.retain(|_, u| *u >= now);
        }
        m.extend(session_ids.iter().map(|id| (id.clone(), until)));
        Ok(())
    }
}

#[async_trait]
impl LogoutMarkerStore for LogoutMarkers {
    async fn is_logged_out(&self, session_id: &str) -> Result<bool, IndexError> {
        Ok(LogoutMarkers::is_logged_out(self, session_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{ISS, NOW};

    fn token(sub: Option<&str>, sid: Option<&str>, iat: i64) -> VerifiedLogoutToken {
        crate::testing::verified_token(ISS, sub, sid, iat)
    }

    fn login(sub: &str, sid: &str, session: &str, created: i64) -> LoginRecord {
        LoginRecord {
            issuer: ISS.into(),
            sub: sub.into(),
            sid: Some(sid.into()),
            session_id: session.into(),
            created_at: created,
        }
    }

    async fn index() -> MemorySessionIndex {
        let i = MemorySessionIndex::default();
        i.record(login("alice", "sid-a1", "app-1", NOW - 100)).await.unwrap();
        i.record(login("alice", "sid-a2", "app-2", NOW - 50)).await.unwrap();
        i.record(login("alice", "sid-a3", "app-3", NOW + 10)).await.unwrap();
        i.record(login("bob", "sid-b1", "app-4", NOW - 100)).await.unwrap();
        i.record(LoginRecord { issuer: "https://other-op".into(), ..login("alice", "sid-a1", "app-5", NOW - 100) })
            .await
            .unwrap();
        i
    }

    #[tokio::test]
    async fn bc_rp_14_sid_ends_exactly_that_session() {
        let i = index().await;
        assert_eq!(i.sessions_to_end(&token(None, Some("sid-a1"), NOW)).await.unwrap(), ["app-1"]);
        assert_eq!(i.sessions_to_end(&token(Some("alice"), Some("sid-a2"), NOW)).await.unwrap(), ["app-2"]);
        assert!(
            i.sessions_to_end(&token(Some("bob"), Some("sid-a2"), NOW)).await.unwrap().is_empty(),
            "sub must match too"
        );
        assert!(
            i.sessions_to_end(&token(None, Some("unknown"), NOW)).await.unwrap().is_empty(),
            "unknown sid: nothing, not an error"
        );
    }

    /// BC-LT-01 + BC-SEC-06: `sub` alone ends every session of the user at this issuer that
    /// existed when the token was issued.
    #[tokio::test]
    async fn bc_sec_06_sub_only_ends_the_users_older_sessions_only() {
        let i = index().await;
        assert_eq!(i.sessions_to_end(&token(Some("alice"), None, NOW)).await.unwrap(), ["app-1", "app-2"]);
    }

    #[tokio::test]
    async fn forgotten_sessions_are_not_found_again() {
        let i = index().await;
        i.forget(&["app-1".into()]).await.unwrap();
        assert!(i.sessions_to_end(&token(None, Some("sid-a1"), NOW)).await.unwrap().is_empty());
    }

    /// Forgetting every session leaves nothing behind (a long-running application's index does
    /// not grow with sessions that ended), and recording a session id again moves it.
    #[tokio::test]
    async fn forgetting_everything_empties_the_index_and_re_recording_moves_a_session() {
        let i = index().await;
        i.record(login("carol", "sid-c1", "app-1", NOW - 10)).await.unwrap();
        assert!(i.sessions_to_end(&token(None, Some("sid-a1"), NOW)).await.unwrap().is_empty(), "app-1 moved");
        assert_eq!(i.sessions_to_end(&token(Some("carol"), None, NOW)).await.unwrap(), ["app-1"]);
        let all: Vec<String> = ["app-1", "app-2", "app-3", "app-4", "app-5"].map(String::from).to_vec();
        i.forget(&all).await.unwrap();
        let inner = i.inner.lock().unwrap();
        assert!(inner.logins.is_empty() && inner.by_sid.is_empty() && inner.by_sub.is_empty(), "{inner:?}");
    }
}

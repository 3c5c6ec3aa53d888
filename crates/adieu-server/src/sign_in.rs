//! Starting an OP session in a browser, by a password ([`crate::login`]) or through an upstream
//! provider ([`crate::upstream`]): both call [`sign_in_with`], which is why it lives apart from
//! either of them.
//!
//! Every sign-in records where it came from ([`SignInFrom`]: the client's address by the rule of
//! [`ClientAddr`], and the `User-Agent`) as the session's [`SessionDevice`], which the account
//! page shows; a re-authentication replaces it.

use crate::AppState;
use crate::browser::{ClientAddr, current_session, new_cookie_value};
use crate::error::PageError;
use adieu_core::id::SessionId;
use adieu_core::initiator::Initiator;
use adieu_core::session::{Session, SessionDevice};
use adieu_core::time::UnixMillis;
use adieu_core::upstream::UpstreamSignIn;
use adieu_core::user::User;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum_extra::extract::CookieJar;
use std::convert::Infallible;
use std::net::IpAddr;

/// Where a sign-in comes from: the client's address ([`ClientAddr`], so `http.trusted_proxies`
/// is honoured) and the browser's `User-Agent`. Bounded and cleaned when it becomes a
/// [`SessionDevice`] ([`SignInFrom::device`]). Also an extractor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignInFrom {
    /// The client's address; `None` when unknown (served without connection info).
    pub address: Option<IpAddr>,
    /// The `User-Agent` header, if any (bytes that are not UTF-8 replaced).
    pub user_agent: Option<String>,
}

impl SignInFrom {
    /// From a handler's [`ClientAddr`] and request headers. The unspecified address (what
    /// [`ClientAddr`] gives without connection info) is unknown.
    pub fn new(addr: IpAddr, headers: &HeaderMap) -> Self {
        let user_agent = headers.get(header::USER_AGENT).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        SignInFrom { address: Some(addr).filter(|a| !a.is_unspecified()), user_agent }
    }

    /// The device record of a sign-in at `at` ([`SessionDevice::new`] bounds and cleans it).
    pub fn device(&self, at: UnixMillis) -> SessionDevice {
        SessionDevice::new(self.address, self.user_agent.as_deref(), at)
    }
}

impl FromRequestParts<AppState> for SignInFrom {
    type Rejection = Infallible;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let ClientAddr(addr) = ClientAddr::from_request_parts(parts, state).await?;
        Ok(SignInFrom::new(addr, &parts.headers))
    }
}

/// Signs `user` in on this browser by a password, from `from`: re-authenticates the current
/// session if it is the same user's, otherwise ends the other user's session (`session-revoked`)
/// and starts a new one. The cookie value is always new.
pub async fn sign_in_from(
    state: &AppState,
    jar: CookieJar,
    user: &User,
    from: &SignInFrom,
) -> Result<(CookieJar, Session), PageError> {
    sign_in_with(state, jar, user, None, from).await
}

/// [`sign_in_from`], by a password (`upstream` = `None`) or through an upstream provider, whose
/// `iss`/`sub`/`sid` the session then remembers so that the upstream's logout finds it. Where the
/// sign-in came from is recorded as the session's device either way.
pub async fn sign_in_with(
    state: &AppState,
    jar: CookieJar,
    user: &User,
    upstream: Option<&UpstreamSignIn>,
    from: &SignInFrom,
) -> Result<(CookieJar, Session), PageError> {
    let now = state.clock.now();
    let (cookie, cookie_hash) = new_cookie_value();
    let current = current_session(state, &jar).await?;
    let session = match current {
        Some(s) if s.user_id == user.id => {
            match upstream {
                Some(up) => state.store.reauthenticate_upstream_session(&s.id, &cookie_hash, up).await?,
                None => state.store.reauthenticate_session(&s.id, &cookie_hash, now).await?,
            }
            Session { auth_time: now, last_seen_at: now, ..s }
        }
        other => {
            if let Some(old) = other {
                crate::session_end::end_session(state, &old.id, Initiator::SessionRevoked).await?;
            }
            let s = Session {
                id: SessionId::new(crate::crypto::random_id()),
                user_id: user.id.clone(),
                auth_time: now,
                created_at: now,
                last_seen_at: now,
                ended_at: None,
                end_reason: None,
            };
            match upstream {
                Some(up) => state.store.create_upstream_session(&s, &cookie_hash, up).await?,
                None => state.store.create_session(&s, &cookie_hash).await?,
            }
            s
        }
    };
    // Shown on the account page only: a failure to record it does not stop the sign-in.
    if let Err(e) = state.store.record_session_device(&session.id, &from.device(now)).await {
        tracing::warn!(error = %e, session = %session.id, "where a sign-in came from could not be recorded");
    }
    Ok((jar.add(state.cookies.session_cookie(cookie)), session))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_and_user_agent_come_from_the_request() {
        let mut h = HeaderMap::new();
        h.insert(header::USER_AGENT, "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Firefox/128.0".parse().unwrap());
        let from = SignInFrom::new("203.0.113.7".parse().unwrap(), &h);
        assert_eq!(from.address, Some("203.0.113.7".parse().unwrap()));
        assert_eq!(from.device(UnixMillis(1)).describe(), "Firefox on Linux \u{b7} 203.0.113.7");
    }

    #[test]
    fn without_connection_info_or_user_agent_both_are_unknown() {
        let from = SignInFrom::new(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), &HeaderMap::new());
        assert_eq!(from, SignInFrom::default());
        assert_eq!(from.device(UnixMillis(1)).describe(), "Unknown browser");
    }

    #[test]
    fn a_user_agent_that_is_not_utf8_is_kept_readable() {
        let mut h = HeaderMap::new();
        h.insert(header::USER_AGENT, axum::http::HeaderValue::from_bytes(b"Firefox/1 \xff").unwrap());
        let from = SignInFrom::new("192.0.2.1".parse().unwrap(), &h);
        assert_eq!(from.user_agent.as_deref(), Some("Firefox/1 \u{fffd}"));
    }
}

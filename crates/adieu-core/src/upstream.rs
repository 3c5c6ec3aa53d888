//! Upstream OpenID Providers: signing in through another provider, and being logged out by it
//! (`idp-logout`, BC-SEND-09).
//!
//! - [`PendingUpstreamLogin`]: a sign-in sent to an upstream and not yet back (state, nonce, PKCE
//!   verifier), used once.
//! - [`UpstreamIdentity`]: the link from an upstream account (`iss`, `sub`) to a local user.
//! - [`UpstreamSignIn`]: what a session remembers about the upstream sign-in that authenticated
//!   it (`iss`, `sub`, `sid`), so an upstream logout finds it.
//! - [`UpstreamSessionQuery`]: which open sessions an upstream logout token names.
//! - [`upstream_username`]: the username a first upstream sign-in gives its new local account.

use crate::time::UnixMillis;
use crate::user::normalize_username;

/// The stored password hash of an account that has no usable password (created by an upstream
/// sign-in). It is not a PHC string, so no password ever verifies against it.
pub const NO_PASSWORD: &str = "!no-password";

/// A sign-in sent to an upstream provider, waiting for its callback. Stored under the hash of
/// its `state`; taken (and deleted) at the callback, so it is used at most once.
#[derive(Clone, PartialEq, Eq)]
pub struct PendingUpstreamLogin {
    /// SHA-256 (base64url) of the `state` sent to the upstream.
    pub state_hash: String,
    /// The configured upstream's id.
    pub upstream_id: String,
    /// The `nonce` sent to the upstream; the ID token must carry it.
    pub nonce: String,
    /// The PKCE S256 `code_verifier` for the code exchange.
    pub code_verifier: String,
    /// The authorization request to resume afterwards, if the sign-in started from one.
    pub request_id: Option<String>,
    /// When the sign-in started.
    pub created_at: UnixMillis,
    /// After this the callback is refused.
    pub expires_at: UnixMillis,
}

impl std::fmt::Debug for PendingUpstreamLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingUpstreamLogin")
            .field("upstream_id", &self.upstream_id)
            .field("request_id", &self.request_id.as_ref().map(|_| "<set>"))
            .field("code_verifier", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// An upstream account linked to a local user: `(iss, sub)` is the upstream's stable identifier
/// for a person (Core §5.7), so the link is keyed by it, not by the configured upstream id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamIdentity {
    /// The upstream's issuer.
    pub issuer: String,
    /// The upstream's `sub`.
    pub sub: String,
    /// The configured upstream id the link was made through (informational).
    pub upstream_id: String,
}

/// The upstream sign-in that (last) authenticated a session (BC-SID-04: `iss`, `sub`, `sid`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamSignIn {
    /// The upstream's issuer.
    pub issuer: String,
    /// The upstream's `sub`.
    pub sub: String,
    /// The upstream's `sid`, if its ID token carried one.
    pub sid: Option<String>,
    /// When the upstream sign-in completed here.
    pub at: UnixMillis,
}

/// The open sessions an upstream logout token names (BC-RP-14).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamSessionQuery {
    /// The sessions signed in with this upstream session (`sid`), and, when the token also names
    /// a `sub`, that account's only (BC-RP-10, BC-RP-11).
    Session {
        /// The upstream's issuer.
        issuer: String,
        /// The upstream `sid`.
        sid: String,
        /// The upstream `sub`, when the token has one.
        sub: Option<String>,
    },
    /// Every session of this upstream account that was signed in upstream before
    /// `signed_in_before` (BC-LT-01; BC-SEC-06: a late logout must not end a newer session).
    Subject {
        /// The upstream's issuer.
        issuer: String,
        /// The upstream `sub`.
        sub: String,
        /// Only sessions whose upstream sign-in happened before this time.
        signed_in_before: UnixMillis,
    },
}

impl UpstreamSessionQuery {
    /// The query for a verified logout token of `issuer` naming `sid` and/or `sub`, issued at
    /// `iat` (seconds). A sub-only token ends the sessions signed in upstream up to the end of the
    /// second of `iat` (BC-SEC-06). `None` if the token names neither (it cannot be verified then).
    pub fn for_token(issuer: &str, sub: Option<&str>, sid: Option<&str>, iat: i64) -> Option<Self> {
        match (sub, sid) {
            (sub, Some(sid)) => Some(UpstreamSessionQuery::Session {
                issuer: issuer.to_owned(),
                sid: sid.to_owned(),
                sub: sub.map(str::to_owned),
            }),
            (Some(sub), None) => Some(UpstreamSessionQuery::Subject {
                issuer: issuer.to_owned(),
                sub: sub.to_owned(),
                signed_in_before: UnixMillis(iat.saturating_add(1).saturating_mul(1000)),
            }),
            (None, None) => None,
        }
    }
}

/// Candidate usernames for a new account made by a first upstream sign-in, best first:
/// `preferred_username`, else the local part of `email`, else `fallback`; then the same with
/// `-2`, `-3`… appended, and finally `fallback`. A name with `@` is never proposed, so an
/// upstream-made username can never equal another account's email (sign-in accepts either).
pub fn upstream_username(preferred_username: Option<&str>, email: Option<&str>, fallback: &str) -> Vec<String> {
    let usable = |raw: &str| -> Option<String> {
        let n = normalize_username(raw).ok()?;
        // Leave room for a "-NN" suffix within the length limit.
        (!n.contains('@') && n.chars().count() <= crate::user::MAX_USERNAME_LEN - 4).then_some(n)
    };
    let base = preferred_username
        .and_then(usable)
        .or_else(|| email.and_then(|e| e.split_once('@')).and_then(|(local, _)| usable(local)));
    let mut out = Vec::new();
    if let Some(base) = base {
        out.push(base.clone());
        out.extend((2..=20).map(|n| format!("{base}-{n}")));
    }
    out.push(fallback.to_lowercase());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn username_comes_from_preferred_username_then_email_then_fallback() {
        assert_eq!(upstream_username(Some("Alice"), Some("a@x.org"), "user-1")[0], "alice");
        assert_eq!(upstream_username(None, Some("Bob.B@x.org"), "user-1")[0], "bob.b");
        assert_eq!(upstream_username(None, None, "user-1"), vec!["user-1".to_owned()]);
        let c = upstream_username(Some("carol"), None, "user-9");
        assert_eq!(&c[1..3], ["carol-2", "carol-3"]);
        assert_eq!(c.last().map(String::as_str), Some("user-9"));
    }

    #[test]
    fn a_username_never_contains_an_at_sign_or_whitespace() {
        // A preferred_username that looks like an email falls back to the email's local part.
        assert_eq!(upstream_username(Some("dave@evil.example"), Some("dave@x.org"), "u")[0], "dave");
        assert_eq!(upstream_username(Some("has space"), None, "u"), vec!["u".to_owned()]);
        assert_eq!(upstream_username(Some(""), Some("@x.org"), "u"), vec!["u".to_owned()]);
        for c in upstream_username(Some("eve"), None, "u") {
            assert!(!c.contains('@'));
        }
    }

    #[test]
    fn bc_sec_06_a_sub_only_token_reaches_sessions_signed_in_up_to_its_iat_second() {
        let q = UpstreamSessionQuery::for_token("https://up", Some("u1"), None, 1_000).unwrap();
        assert_eq!(
            q,
            UpstreamSessionQuery::Subject {
                issuer: "https://up".into(),
                sub: "u1".into(),
                signed_in_before: UnixMillis(1_001_000)
            }
        );
        let q = UpstreamSessionQuery::for_token("https://up", Some("u1"), Some("s1"), 1_000).unwrap();
        assert!(matches!(q, UpstreamSessionQuery::Session { sub: Some(_), .. }));
        assert!(UpstreamSessionQuery::for_token("https://up", None, None, 1).is_none());
    }
}

//! OP sessions and participations.
//!
//! A [`Session`] is a signed-in browser at the provider. Every client that is issued an
//! authorization code in it gets a [`Participation`] with its own random `sid` (the `sid` of every ID
//! token that client gets in that session); back-channel logout fans out over them. A
//! [`SessionDevice`] says where a session was signed in from, for the account page
//! ([`describe_user_agent`] turns its `User-Agent` into "Firefox on Linux").

use crate::id::{ClientId, SessionId, Sid, UserId};
use crate::initiator::Initiator;
use crate::text::is_bidi_control;
use crate::time::UnixMillis;
use std::net::IpAddr;
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
    /// The worker slots reserved for the deliveries written leased to this replica, handed over
    /// after the commit ([`crate::handoff`]).
    pub handoff: crate::handoff::HandOver,
}

impl EndedSession {
    /// Gives the deliveries written leased to this replica to its worker; call it once the
    /// transaction committed ([`crate::handoff`]). Later calls do nothing.
    pub fn hand_over(&self) {
        self.handoff.hand_over(&self.deliveries);
    }

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

/// The most characters of a `User-Agent` a [`SessionDevice`] keeps; the rest is cut off.
pub const USER_AGENT_MAX_CHARS: usize = 512;

/// Where a session was signed in from: the client's address and the browser's `User-Agent` at its
/// latest sign-in (a re-authentication replaces them). Only [`SessionDevice::new`] makes one, so
/// the user agent is never longer than [`USER_AGENT_MAX_CHARS`] and holds no control or
/// bidirectional formatting characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDevice {
    address: Option<IpAddr>,
    user_agent: Option<String>,
    recorded_at: UnixMillis,
}

impl SessionDevice {
    /// A device record: the address in its canonical form (an IPv4-mapped IPv6 address as IPv4),
    /// the user agent without control and bidirectional formatting characters, trimmed and cut to
    /// [`USER_AGENT_MAX_CHARS`] characters (`None` if nothing is left).
    pub fn new(address: Option<IpAddr>, user_agent: Option<&str>, recorded_at: UnixMillis) -> Self {
        let user_agent = user_agent.map(clean_user_agent).filter(|ua| !ua.is_empty());
        SessionDevice { address: address.map(|a| a.to_canonical()), user_agent, recorded_at }
    }

    /// The client's address, if known.
    pub fn address(&self) -> Option<IpAddr> {
        self.address
    }

    /// The `User-Agent`, if the browser sent one (bounded and cleaned by [`SessionDevice::new`]).
    pub fn user_agent(&self) -> Option<&str> {
        self.user_agent.as_deref()
    }

    /// When it was recorded (the latest sign-in).
    pub fn recorded_at(&self) -> UnixMillis {
        self.recorded_at
    }

    /// One line for people: the browser and system ([`describe_user_agent`]) and the address,
    /// e.g. `Firefox on Linux · 203.0.113.7`.
    pub fn describe(&self) -> String {
        let what = describe_user_agent(self.user_agent().unwrap_or(""));
        match self.address {
            Some(a) => format!("{what} \u{b7} {a}"),
            None => what,
        }
    }
}

/// [`SessionDevice::new`]'s rule for a user agent.
fn clean_user_agent(ua: &str) -> String {
    let kept: String = ua.chars().filter(|&c| !c.is_control() && !is_bidi_control(c)).collect();
    kept.trim().chars().take(USER_AGENT_MAX_CHARS).collect::<String>().trim_end().to_owned()
}

/// Browsers by the tokens of their `User-Agent`, most specific first: Edge, Opera and the others
/// built on Chromium also name Chrome (and Safari), Chrome names Safari, and the iOS browsers have
/// tokens of their own (`FxiOS`, `CriOS`, `EdgiOS`, `OPiOS`).
const BROWSERS: &[(&str, &[&str])] = &[
    ("Edge", &["Edg/", "EdgA/", "EdgiOS/", "Edge/"]),
    ("Opera", &["OPR/", "OPiOS/", "OPT/", "Opera"]),
    ("Firefox", &["Firefox/", "FxiOS/"]),
    ("Chromium", &["Chromium/"]),
    ("Chrome", &["Chrome/", "CriOS/"]),
    ("Safari", &["Safari/"]),
];

/// Systems by the tokens of the `User-Agent`, most specific first: iOS says "like Mac OS X",
/// Android and ChromeOS say "Linux".
const SYSTEMS: &[(&str, &[&str])] = &[
    ("iOS", &["iPhone", "iPad", "iPod"]),
    ("Android", &["Android"]),
    ("ChromeOS", &["CrOS"]),
    ("Windows", &["Windows"]),
    ("macOS", &["Macintosh", "Mac OS X"]),
    ("Linux", &["Linux"]),
];

fn first_match(ua: &str, table: &[(&'static str, &[&str])]) -> Option<&'static str> {
    table.iter().find(|(_, tokens)| tokens.iter().any(|t| ua.contains(t))).map(|(name, _)| *name)
}

/// A `User-Agent` in a few words for people: the browser (Firefox, Chrome, Chromium, Edge,
/// Safari, Opera) and the system (Windows, macOS, Linux, Android, iOS, ChromeOS), as
/// `Firefox on Linux`; `Unknown browser` when the browser is none of those, and no `on …` when the
/// system is unknown. The answer is one of these fixed words, never text from `ua`.
pub fn describe_user_agent(ua: &str) -> String {
    let browser = first_match(ua, BROWSERS).unwrap_or("Unknown browser");
    match first_match(ua, SYSTEMS) {
        Some(system) => format!("{browser} on {system}"),
        None => browser.to_owned(),
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

    #[test]
    fn browsers_and_systems_are_recognised_in_real_user_agents() {
        let cases = [
            ("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0", "Firefox on Linux"),
            ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0", "Firefox on Windows"),
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:133.0) Gecko/20100101 Firefox/133.0",
                "Firefox on macOS",
            ),
            ("Mozilla/5.0 (Android 14; Mobile; rv:133.0) Gecko/133.0 Firefox/133.0", "Firefox on Android"),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) \
                 FxiOS/133.0 Mobile/15E148 Safari/605.1.15",
                "Firefox on iOS",
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) \
                 Chrome/131.0.0.0 Safari/537.36",
                "Chrome on Windows",
            ),
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) \
                 Chrome/131.0.0.0 Safari/537.36",
                "Chrome on macOS",
            ),
            (
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
                "Chrome on Linux",
            ),
            (
                "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 \
                 Mobile Safari/537.36",
                "Chrome on Android",
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) \
                 CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1",
                "Chrome on iOS",
            ),
            (
                "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) \
                 Chrome/131.0.0.0 Safari/537.36",
                "Chrome on ChromeOS",
            ),
            (
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
                 Chromium/120.0.6099.224 Chrome/120.0.6099.224 Safari/537.36",
                "Chromium on Linux",
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) \
                 Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
                "Edge on Windows",
            ),
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) \
                 Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
                "Edge on macOS",
            ),
            (
                "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 \
                 Mobile Safari/537.36 EdgA/131.0.0.0",
                "Edge on Android",
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) \
                 EdgiOS/131.0.2903.68 Version/17.0 Mobile/15E148 Safari/604.1",
                "Edge on iOS",
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) \
                 Chrome/70.0.3538.102 Safari/537.36 Edge/18.19582",
                "Edge on Windows",
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) \
                 Chrome/131.0.0.0 Safari/537.36 OPR/116.0.0.0",
                "Opera on Windows",
            ),
            (
                "Mozilla/5.0 (Linux; Android 10; VOG-L29) AppleWebKit/537.36 (KHTML, like Gecko) \
                 Chrome/131.0.0.0 Mobile Safari/537.36 OPR/86.0.0.0",
                "Opera on Android",
            ),
            ("Opera/9.80 (Windows NT 6.1; WOW64) Presto/2.12.388 Version/12.18", "Opera on Windows"),
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) \
                 Version/18.1 Safari/605.1.15",
                "Safari on macOS",
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) \
                 Version/18.1 Mobile/15E148 Safari/604.1",
                "Safari on iOS",
            ),
            (
                "Mozilla/5.0 (iPad; CPU OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) \
                 Version/17.4 Mobile/15E148 Safari/604.1",
                "Safari on iOS",
            ),
        ];
        for (ua, expected) in cases {
            assert_eq!(describe_user_agent(ua), expected, "{ua}");
        }
    }

    #[test]
    fn anything_else_is_an_unknown_browser_and_never_echoed() {
        assert_eq!(describe_user_agent(""), "Unknown browser");
        assert_eq!(describe_user_agent("curl/8.5.0"), "Unknown browser");
        assert_eq!(describe_user_agent("python-requests/2.31.0"), "Unknown browser");
        assert_eq!(describe_user_agent("Mozilla/5.0 (X11; Linux x86_64)"), "Unknown browser on Linux");
        assert_eq!(describe_user_agent("<script>alert(1)</script>"), "Unknown browser");
        assert_eq!(describe_user_agent("<b>Firefox/1</b>"), "Firefox", "only fixed words come out");
    }

    #[test]
    fn a_device_bounds_and_cleans_its_user_agent() {
        let long = "é".repeat(USER_AGENT_MAX_CHARS + 100);
        let d = SessionDevice::new(None, Some(&long), UnixMillis(1));
        assert_eq!(d.user_agent().unwrap().chars().count(), USER_AGENT_MAX_CHARS, "cut by characters, not bytes");
        let d = SessionDevice::new(None, Some(" Firefox/1\r\n\u{1b}[31m\u{202E}x\u{0}\t "), UnixMillis(1));
        assert_eq!(d.user_agent(), Some("Firefox/1[31mx"));
        assert_eq!(SessionDevice::new(None, Some(" \r\n "), UnixMillis(1)).user_agent(), None);
        assert_eq!(SessionDevice::new(None, None, UnixMillis(1)).user_agent(), None);
        // Control characters go before the cut, so what is kept is the first 512 visible ones.
        let padded = format!("{}{}", "\u{7}".repeat(600), "a".repeat(600));
        assert_eq!(SessionDevice::new(None, Some(&padded), UnixMillis(1)).user_agent(), Some(&*"a".repeat(512)));
    }

    #[test]
    fn a_device_describes_browser_system_and_address() {
        let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
        let d = SessionDevice::new(Some("203.0.113.7".parse().unwrap()), Some(firefox), UnixMillis(1));
        assert_eq!(d.describe(), "Firefox on Linux \u{b7} 203.0.113.7");
        let mapped = SessionDevice::new(Some("::ffff:192.0.2.1".parse().unwrap()), None, UnixMillis(1));
        assert_eq!(mapped.address(), Some("192.0.2.1".parse().unwrap()), "IPv4-mapped addresses read as IPv4");
        assert_eq!(mapped.describe(), "Unknown browser \u{b7} 192.0.2.1");
        let v6 = SessionDevice::new(Some("2001:db8::7".parse().unwrap()), None, UnixMillis(1));
        assert_eq!(v6.describe(), "Unknown browser \u{b7} 2001:db8::7");
        assert_eq!(SessionDevice::new(None, Some(firefox), UnixMillis(1)).describe(), "Firefox on Linux");
    }
}

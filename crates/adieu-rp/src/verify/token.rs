//! A verified logout token and whom it names.

use super::*;

/// Whom a logout token names (BC-LT-01): a session, a user, or both. Never neither.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogoutSubject {
    /// Only `sid`: that session.
    Sid(String),
    /// Only `sub`: every session of that user at this issuer.
    Sub(String),
    /// Both: the session `sid` of user `sub`.
    Both {
        /// The user.
        sub: String,
        /// The session.
        sid: String,
    },
}

impl LogoutSubject {
    /// The `sid`, if present.
    ///
    /// ```
    /// use adieu_rp::verify::LogoutSubject;
    /// assert_eq!(LogoutSubject::Sid("s".into()).sid(), Some("s"));
    /// assert_eq!(LogoutSubject::Sub("u".into()).sid(), None);
    /// ```
    pub fn sid(&self) -> Option<&str> {
        match self {
            LogoutSubject::Sid(s) | LogoutSubject::Both { sid: s, .. } => Some(s),
            LogoutSubject::Sub(_) => None,
        }
    }

    /// The `sub`, if present.
    ///
    /// ```
    /// use adieu_rp::verify::LogoutSubject;
    /// assert_eq!(LogoutSubject::Both { sub: "u".into(), sid: "s".into() }.sub(), Some("u"));
    /// ```
    pub fn sub(&self) -> Option<&str> {
        match self {
            LogoutSubject::Sub(s) | LogoutSubject::Both { sub: s, .. } => Some(s),
            LogoutSubject::Sid(_) => None,
        }
    }
}

/// A logout token that passed every check. Only [`verify`] makes one.
///
/// ```
/// # let (keys, token, policy, now) = adieu_rp::verify::sample_for_docs();
/// let t = adieu_rp::verify::verify(&token, &keys, &policy, now).unwrap();
/// assert_eq!(t.issuer(), "https://op.example.com");
/// ```
#[derive(Debug, Clone)]
pub struct VerifiedLogoutToken {
    pub(super) issuer: String,
    pub(super) audiences: Vec<String>,
    pub(super) issued_at: i64,
    pub(super) expires_at: Option<i64>,
    pub(super) jti: String,
    pub(super) subject: LogoutSubject,
    /// The verified claims as signed (a JSON object); read into a map only when asked for.
    pub(super) payload: Box<[u8]>,
    pub(super) claims: OnceLock<Map<String, Value>>,
}

impl PartialEq for VerifiedLogoutToken {
    fn eq(&self, other: &Self) -> bool {
        // The parsed claims are a cache of the payload.
        (&self.issuer, &self.audiences, self.issued_at, self.expires_at, &self.jti, &self.subject, &self.payload)
            == (
                &other.issuer,
                &other.audiences,
                other.issued_at,
                other.expires_at,
                &other.jti,
                &other.subject,
                &other.payload,
            )
    }
}

impl VerifiedLogoutToken {
    /// `iss`.
    ///
    /// ```
    /// # let (keys, token, policy, now) = adieu_rp::verify::sample_for_docs();
    /// # let t = adieu_rp::verify::verify(&token, &keys, &policy, now).unwrap();
    /// assert_eq!(t.issuer(), "https://op.example.com");
    /// ```
    pub fn issuer(&self) -> &str {
        &self.issuer
    }
    /// `aud`, as a list.
    ///
    /// ```
    /// # let (keys, token, policy, now) = adieu_rp::verify::sample_for_docs();
    /// # let t = adieu_rp::verify::verify(&token, &keys, &policy, now).unwrap();
    /// assert_eq!(t.audiences(), ["my-client".to_owned()]);
    /// ```
    pub fn audiences(&self) -> &[String] {
        &self.audiences
    }
    /// `iat`, seconds since the epoch.
    ///
    /// ```
    /// # let (keys, token, policy, now) = adieu_rp::verify::sample_for_docs();
    /// # let t = adieu_rp::verify::verify(&token, &keys, &policy, now).unwrap();
    /// assert_eq!(t.issued_at(), now);
    /// ```
    pub fn issued_at(&self) -> i64 {
        self.issued_at
    }
    /// `exp`, seconds since the epoch (absent only under [`ExpPolicy::AllowMissing`]).
    ///
    /// ```
    /// # let (keys, token, policy, now) = adieu_rp::verify::sample_for_docs();
    /// # let t = adieu_rp::verify::verify(&token, &keys, &policy, now).unwrap();
    /// assert_eq!(t.expires_at(), Some(now + 120));
    /// ```
    pub fn expires_at(&self) -> Option<i64> {
        self.expires_at
    }
    /// `jti`.
    ///
    /// ```
    /// # let (keys, token, policy, now) = adieu_rp::verify::sample_for_docs();
    /// # let t = adieu_rp::verify::verify(&token, &keys, &policy, now).unwrap();
    /// assert_eq!(t.jti(), "jti-1");
    /// ```
    pub fn jti(&self) -> &str {
        &self.jti
    }
    /// Whom the token logs out.
    ///
    /// ```
    /// # let (keys, token, policy, now) = adieu_rp::verify::sample_for_docs();
    /// # let t = adieu_rp::verify::verify(&token, &keys, &policy, now).unwrap();
    /// assert_eq!(t.subject().sid(), Some("sid-1"));
    /// ```
    pub fn subject(&self) -> &LogoutSubject {
        &self.subject
    }
    /// Why the session ended, if the provider says: adieu's `initiator` claim (`rp-logout`,
    /// `idp-logout`, `session-revoked`, `password-changed`, `email-identifier-changed`,
    /// `account-deleted` or `session-expired`). Other providers send none, and a value that is not
    /// a string reads as none. It lets an application tell the user "your session expired" rather
    /// than "you signed out"; it changes nothing in what the token ends.
    ///
    /// ```
    /// # let (keys, token, policy, now) = adieu_rp::verify::sample_for_docs();
    /// # let t = adieu_rp::verify::verify(&token, &keys, &policy, now).unwrap();
    /// assert_eq!(t.initiator(), Some("session-expired"));
    /// ```
    pub fn initiator(&self) -> Option<&str> {
        self.claims().get("initiator").and_then(Value::as_str)
    }
    /// Every claim, including ones this crate does not interpret (BC-LT-02).
    ///
    /// ```
    /// # let (keys, token, policy, now) = adieu_rp::verify::sample_for_docs();
    /// # let t = adieu_rp::verify::verify(&token, &keys, &policy, now).unwrap();
    /// assert!(t.claims().contains_key("events"));
    /// ```
    pub fn claims(&self) -> &Map<String, Value> {
        // The payload was checked to be a JSON object that serde_json reads (`parse_object`)
        // before this token was made, so this cannot fail.
        self.claims.get_or_init(|| serde_json::from_slice(&self.payload).unwrap_or_default())
    }
}

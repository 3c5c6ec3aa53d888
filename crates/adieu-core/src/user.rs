//! User accounts, the rules for their identifiers, and what changing one of them ends.

use crate::id::UserId;
use crate::initiator::Initiator;
use crate::session::EndedSession;
use crate::time::UnixMillis;

/// A local account. The password is only ever held as an argon2id PHC string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Stable id; the `sub` claim.
    pub id: UserId,
    /// Unique sign-in name (stored lower-cased).
    pub username: String,
    /// Unique email address (stored lower-cased), if any; also accepted at sign-in.
    pub email: Option<String>,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Creation time.
    pub created_at: UnixMillis,
    /// Last change.
    pub updated_at: UnixMillis,
}

use crate::text::forbidden_char;

/// Longest username, in characters.
pub const MAX_USERNAME_LEN: usize = 100;
/// Longest email address, in characters (RFC 5321's path limit is 256; 320 is the usual upper bound).
pub const MAX_EMAIL_LEN: usize = 320;

/// An identifier that cannot be stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentifierError {
    /// Empty, too long, or containing whitespace or control characters.
    #[error("the username must be 1 to {MAX_USERNAME_LEN} characters without spaces")]
    Username,
    /// Not one `@` between a non-empty local part and domain, too long, or containing whitespace.
    #[error("{0:?} is not an email address")]
    Email(String),
}

/// The stored form of a username: lower-cased, 1..=100 characters without whitespace (also not
/// around it: the caller trims what a person typed into a form), control or bidirectional
/// characters.
pub fn normalize_username(raw: &str) -> Result<String, IdentifierError> {
    let u = raw;
    let n = u.chars().count();
    if n == 0
        || n > MAX_USERNAME_LEN
        || u.chars().any(|c| c.is_whitespace() || c.is_control())
        || forbidden_char(u).is_some()
    {
        return Err(IdentifierError::Username);
    }
    Ok(u.to_lowercase())
}

/// The stored form of an email address: lower-cased, `local@domain` with both parts non-empty, no
/// whitespace (the caller trims what a person typed), control or bidirectional characters, at most
/// 320 characters. (Deliberately loose: no delivery is attempted.)
pub fn normalize_email(raw: &str) -> Result<String, IdentifierError> {
    let e = raw;
    let ok = e.chars().count() <= MAX_EMAIL_LEN
        && !e.chars().any(|c| c.is_whitespace() || c.is_control())
        && forbidden_char(e).is_none()
        && e.split_once('@').is_some_and(|(l, d)| !l.is_empty() && !d.is_empty() && !d.contains('@'));
    if !ok {
        return Err(IdentifierError::Email(e.to_owned()));
    }
    Ok(e.to_lowercase())
}

/// A change to an account. Absent members keep their value. Identifiers must already be
/// normalised ([`normalize_username`], [`normalize_email`]); the password is already hashed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserChanges {
    /// A new username.
    pub username: Option<String>,
    /// A new email address (`Some(None)` removes it).
    pub email: Option<Option<String>>,
    /// A new argon2id PHC string.
    pub password_hash: Option<String>,
}

impl UserChanges {
    /// Whether this changes nothing at all.
    pub fn is_empty(&self) -> bool {
        self.username.is_none() && self.email.is_none() && self.password_hash.is_none()
    }

    /// Whether the email identifier of `old` changes (compared in stored, lower-cased form).
    pub fn changes_email(&self, old: &User) -> bool {
        self.email.as_ref().is_some_and(|new| new.as_deref().map(str::to_lowercase) != old.email)
    }

    /// Whether the username of `old` changes.
    pub fn changes_username(&self, old: &User) -> bool {
        self.username.as_ref().is_some_and(|new| new.to_lowercase() != old.username)
    }

    /// Which initiator ends the user's sessions when this change is applied to `old`, if any.
    ///
    /// A new password ends every session as `password-changed` (and revokes every token, offline
    /// ones too). Otherwise a changed email identifier ends them as `email-identifier-changed`. A
    /// session ends only once, so when both change in one call `password-changed` wins: it is the
    /// stronger event. A username change alone ends nothing: the `sub` stays the same.
    pub fn ending_initiator(&self, old: &User) -> Option<Initiator> {
        if self.password_hash.is_some() {
            Some(Initiator::PasswordChanged)
        } else if self.changes_email(old) {
            Some(Initiator::EmailIdentifierChanged)
        } else {
            None
        }
    }
}

/// The result of [`crate::store::UserStore::update_user`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserUpdated {
    /// The account as it is now.
    pub user: User,
    /// Why its sessions ended, if they did.
    pub initiator: Option<Initiator>,
    /// The sessions that ended, with their deliveries.
    pub ended: Vec<EndedSession>,
    /// Tokens revoked beyond those of the ended sessions (a password change revokes offline ones too).
    pub revoked_tokens: u64,
}

/// A page of users, ordered by username.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserQuery {
    /// Only users whose username or email contains this text (case-insensitive).
    pub contains: Option<String>,
    /// Only users whose username sorts after this one (the last username of the previous page).
    pub after: Option<String>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<u32>,
}

impl UserQuery {
    /// The effective page size: default 100, clamped to 1..=1000.
    pub fn page_size(&self) -> u32 {
        self.limit.unwrap_or(100).clamp(1, 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bidirectional_controls_are_refused_in_usernames_and_emails() {
        assert!(normalize_username("admin\u{202E}nimda").is_err());
        assert!(normalize_email("a\u{2066}b@example.com").is_err());
        assert!(normalize_username("zoë").is_ok());
    }

    fn alice() -> User {
        User {
            id: UserId::new("u"),
            username: "alice".into(),
            email: Some("alice@example.com".into()),
            password_hash: "h".into(),
            created_at: UnixMillis(0),
            updated_at: UnixMillis(0),
        }
    }

    #[test]
    fn identifiers_are_normalised_or_refused() {
        assert_eq!(normalize_username("Alice").unwrap(), "alice");
        assert_eq!(normalize_username(" alice"), Err(IdentifierError::Username), "no surrounding whitespace");
        assert_eq!(normalize_username("a b"), Err(IdentifierError::Username));
        assert_eq!(normalize_username(""), Err(IdentifierError::Username));
        assert!(normalize_username(&"x".repeat(101)).is_err());
        assert_eq!(normalize_email("Alice@Example.COM").unwrap(), "alice@example.com");
        assert!(normalize_email(" alice@example.com").is_err(), "no surrounding whitespace");
        for bad in ["alice", "@example.com", "alice@", "a b@example.com", "a@b@c"] {
            assert!(normalize_email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_new_password_ends_sessions_as_password_changed_even_with_a_new_email() {
        let c = UserChanges {
            email: Some(Some("new@example.com".into())),
            password_hash: Some("h2".into()),
            ..Default::default()
        };
        assert_eq!(c.ending_initiator(&alice()), Some(Initiator::PasswordChanged));
    }

    #[test]
    fn only_a_different_email_is_an_email_identifier_change() {
        let same = UserChanges { email: Some(Some("ALICE@example.com".into())), ..Default::default() };
        assert_eq!(same.ending_initiator(&alice()), None);
        let removed = UserChanges { email: Some(None), ..Default::default() };
        assert_eq!(removed.ending_initiator(&alice()), Some(Initiator::EmailIdentifierChanged));
        let renamed = UserChanges { username: Some("alicia".into()), ..Default::default() };
        assert_eq!(renamed.ending_initiator(&alice()), None, "a username change ends nothing");
    }
}

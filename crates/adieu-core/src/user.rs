//! User accounts.

use crate::id::UserId;
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

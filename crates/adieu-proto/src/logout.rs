//! Logout token claims (Back-Channel Logout 1.0 §2.4, errata set 1).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The member name of the `events` claim that marks a logout token (BC-RP-06).
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// The `typ` header adieu puts on logout tokens (BC-LT-05).
pub const LOGOUT_TOKEN_TYP: &str = "logout+jwt";

/// Claims of a logout token as adieu issues it: `iss aud iat exp jti events` and `sub`/`sid`, never
/// `nonce` (BC-LT-01, BC-LT-08).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogoutTokenClaims {
    /// Issuer.
    pub iss: String,
    /// The client id of the receiving application (BC-SEND-03).
    pub aud: String,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// `iat + 120` (BC-LT-08).
    pub exp: i64,
    /// Unique per attempt.
    pub jti: String,
    /// `{ "http://schemas.openid.net/event/backchannel-logout": {} }`.
    pub events: Map<String, Value>,
    /// The user's subject.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sub: Option<String>,
    /// The `sid` from the application's ID token.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sid: Option<String>,
    /// Why the session ended: adieu's initiator (`rp-logout`, `idp-logout`, `session-revoked`,
    /// `password-changed`, `email-identifier-changed`, `account-deleted`, `session-expired`).
    /// Not part of Back-Channel Logout 1.0; recipients ignore claims they do not know (§2.4), and
    /// an application that knows it can say "your session expired" rather than "you signed out".
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub initiator: Option<String>,
}

/// The `events` value of a logout token.
pub fn logout_events() -> Map<String, Value> {
    let mut m = Map::new();
    m.insert(BACKCHANNEL_LOGOUT_EVENT.to_owned(), Value::Object(Map::new()));
    m
}

//! Token endpoint response and ID token claims.

use serde::{Deserialize, Serialize};

/// A successful token endpoint response (RFC 6749 §5.1, Core §3.1.3.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenResponse {
    /// Opaque bearer token for the userinfo endpoint.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// The rotated refresh token.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub refresh_token: Option<String>,
    /// The signed ID token.
    pub id_token: String,
    /// The granted scope.
    pub scope: String,
}

/// Claims of an ID token issued by adieu (Core §2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdTokenClaims {
    /// Issuer.
    pub iss: String,
    /// Subject: the user's stable id.
    pub sub: String,
    /// The client id.
    pub aud: String,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// When the user last authenticated, seconds since the epoch.
    pub auth_time: i64,
    /// Echo of the authorization request's `nonce` (absent on refresh and when none was sent).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub nonce: Option<String>,
    /// The participation's session id: per client, stable within one OP session (BC-SID-01..03).
    pub sid: String,
    /// Left half of the hash of the access token (Core §3.1.3.6).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub at_hash: Option<String>,
}

//! Authorization codes, access tokens, refresh tokens and pending sign-in requests.
//!
//! Codes and tokens are random values handed out once; only their SHA-256 hash is stored.

use crate::id::{ClientId, SessionId, Sid, UserId};
use crate::time::UnixMillis;
use serde::{Deserialize, Serialize};

/// An authorization code (one-time, short-lived).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthCode {
    /// Hash of the code.
    pub code_hash: String,
    /// Grant family: every token issued from this code carries it, so a reused code revokes them.
    pub grant_id: String,
    /// The client the code was issued to.
    pub client_id: ClientId,
    /// The exact redirect URI of the request.
    pub redirect_uri: String,
    /// The signed-in user.
    pub user_id: UserId,
    /// The OP session.
    pub session_id: SessionId,
    /// The participation's `sid`.
    pub sid: Sid,
    /// Granted scope, space-separated.
    pub scope: String,
    /// The request's `nonce`.
    pub nonce: Option<String>,
    /// PKCE S256 challenge.
    pub code_challenge: Option<String>,
    /// The session's `auth_time` when the code was issued.
    pub auth_time: UnixMillis,
    /// Issue time.
    pub created_at: UnixMillis,
    /// Expiry.
    pub expires_at: UnixMillis,
    /// When it was redeemed, if it was.
    pub used_at: Option<UnixMillis>,
}

/// A bearer access token (opaque).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessToken {
    /// Hash of the token.
    pub token_hash: String,
    /// Grant family.
    pub grant_id: String,
    /// The client.
    pub client_id: ClientId,
    /// The user.
    pub user_id: UserId,
    /// The OP session it belongs to.
    pub session_id: SessionId,
    /// Granted scope.
    pub scope: String,
    /// Whether it was issued under `offline_access` (survives the session's end).
    pub offline: bool,
    /// Issue time.
    pub created_at: UnixMillis,
    /// Expiry.
    pub expires_at: UnixMillis,
    /// Revocation time.
    pub revoked_at: Option<UnixMillis>,
}

/// A refresh token (opaque, rotated on every use).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshToken {
    /// Hash of the token.
    pub token_hash: String,
    /// Grant family; a replayed (already rotated) token revokes the whole family.
    pub grant_id: String,
    /// The client.
    pub client_id: ClientId,
    /// The user.
    pub user_id: UserId,
    /// The OP session it was issued in.
    pub session_id: SessionId,
    /// The participation's `sid`, for the ID tokens it yields.
    pub sid: Sid,
    /// Granted scope.
    pub scope: String,
    /// `offline_access`: not bound to the OP session (BC-RT-02).
    pub offline: bool,
    /// `auth_time` of the original authentication.
    pub auth_time: UnixMillis,
    /// Issue time.
    pub created_at: UnixMillis,
    /// Expiry.
    pub expires_at: UnixMillis,
    /// When it was exchanged for a successor, if it was.
    pub rotated_at: Option<UnixMillis>,
    /// Revocation time.
    pub revoked_at: Option<UnixMillis>,
}

/// A validated authorization request waiting for the user to sign in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingAuthorization {
    /// The client.
    pub client_id: ClientId,
    /// The exact registered redirect URI.
    pub redirect_uri: String,
    /// Requested scope.
    pub scope: String,
    /// `state` to echo.
    pub state: Option<String>,
    /// `nonce` to put in the ID token.
    pub nonce: Option<String>,
    /// PKCE S256 challenge.
    pub code_challenge: Option<String>,
    /// `max_age` in seconds, if requested.
    pub max_age: Option<u64>,
    /// Whether `prompt=login` was requested (re-authentication even with a session).
    pub prompt_login: bool,
    /// Whether `prompt=consent` was requested (the consent screen even if consent was given).
    #[serde(default)]
    pub prompt_consent: bool,
}

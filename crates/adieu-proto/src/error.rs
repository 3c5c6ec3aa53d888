//! OAuth 2.0 and OpenID Connect error codes, and the JSON error body (RFC 6749 §5.2).

use serde::{Deserialize, Serialize};
use std::fmt;

/// An error code from RFC 6749, RFC 6750, OpenID Connect Core §3.1.2.6 or Registration §3.3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// A parameter is missing, repeated or malformed.
    InvalidRequest,
    /// Client authentication failed (token endpoint, HTTP 401).
    InvalidClient,
    /// The code or refresh token is invalid, expired, revoked, reused, or bound to another client.
    InvalidGrant,
    /// The client may not use this grant type.
    UnauthorizedClient,
    /// The grant type is not supported.
    UnsupportedGrantType,
    /// The response type is not supported (only `code` is).
    UnsupportedResponseType,
    /// The scope is invalid (e.g. `openid` missing, or a refresh asks for more than was granted).
    InvalidScope,
    /// The user or the provider denied the request.
    AccessDenied,
    /// The provider failed unexpectedly.
    ServerError,
    /// `prompt=none` and nobody is signed in.
    LoginRequired,
    /// `prompt=none` and the user would have to be asked for consent (Core §3.1.2.6).
    ConsentRequired,
    /// The bearer access token is invalid, expired or revoked (RFC 6750).
    InvalidToken,
    /// Too many requests.
    TemporarilyUnavailable,
    /// A client metadata value is invalid (Registration §3.3).
    InvalidClientMetadata,
    /// A redirect URI is invalid (Registration §3.3).
    InvalidRedirectUri,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::UnsupportedResponseType => "unsupported_response_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::AccessDenied => "access_denied",
            ErrorCode::ServerError => "server_error",
            ErrorCode::LoginRequired => "login_required",
            ErrorCode::ConsentRequired => "consent_required",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
            ErrorCode::InvalidClientMetadata => "invalid_client_metadata",
            ErrorCode::InvalidRedirectUri => "invalid_redirect_uri",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The JSON body of an OAuth error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error code.
    pub error: ErrorCode,
    /// Human-readable detail; never contains secrets or token material.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error_description: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialize_as_their_wire_names() {
        for code in [ErrorCode::InvalidGrant, ErrorCode::LoginRequired, ErrorCode::InvalidClientMetadata] {
            let json = serde_json::to_value(code).unwrap();
            assert_eq!(json, serde_json::Value::String(code.as_str().to_owned()));
        }
    }
}

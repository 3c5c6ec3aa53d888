//! Registered applications (clients) and their logout settings.

use crate::id::ClientId;
use crate::initiator::InitiatorSubscription;
use crate::time::UnixMillis;
use adieu_proto::SigningAlg;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// How a client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TokenEndpointAuthMethod {
    /// HTTP Basic with the client id and secret (RFC 6749 §2.3.1). The default.
    #[default]
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
    /// A public client: no secret, PKCE required.
    None,
}

impl TokenEndpointAuthMethod {
    /// The registration metadata name.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenEndpointAuthMethod::ClientSecretBasic => "client_secret_basic",
            TokenEndpointAuthMethod::ClientSecretPost => "client_secret_post",
            TokenEndpointAuthMethod::None => "none",
        }
    }
}

impl fmt::Display for TokenEndpointAuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TokenEndpointAuthMethod {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "client_secret_basic" => Ok(Self::ClientSecretBasic),
            "client_secret_post" => Ok(Self::ClientSecretPost),
            "none" => Ok(Self::None),
            other => Err(format!(
                "unsupported token_endpoint_auth_method {other:?} (client_secret_basic, client_secret_post, none)"
            )),
        }
    }
}

/// A registered application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// The `client_id`.
    pub id: ClientId,
    /// Display name shown on the provider's pages.
    pub name: String,
    /// Hash of the client secret (`None` for public clients). The secret itself is never stored.
    pub secret_hash: Option<String>,
    /// Registered redirect URIs; matched exactly.
    pub redirect_uris: Vec<String>,
    /// Registered post-logout redirect URIs; matched exactly (RPI-07).
    pub post_logout_redirect_uris: Vec<String>,
    /// Back-channel logout URI (BC-REG-01..04).
    pub backchannel_logout_uri: Option<String>,
    /// Whether logout tokens must carry `sid` (BC-REG-05).
    pub backchannel_logout_session_required: bool,
    /// Which initiators notify this client.
    pub backchannel_logout_initiators: InitiatorSubscription,
    /// Token endpoint authentication.
    pub token_endpoint_auth_method: TokenEndpointAuthMethod,
    /// Algorithm of ID tokens (and logout tokens) for this client (BC-LT-07). Default RS256.
    pub id_token_signed_response_alg: SigningAlg,
    /// Creation time.
    pub created_at: UnixMillis,
    /// Last change.
    pub updated_at: UnixMillis,
}

impl Client {
    /// A public client has no secret and must use PKCE.
    pub fn is_public(&self) -> bool {
        self.token_endpoint_auth_method == TokenEndpointAuthMethod::None
    }
}

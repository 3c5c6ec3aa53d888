//! The OpenID Provider metadata document served at `/.well-known/openid-configuration`.

use serde::{Deserialize, Serialize};

/// OpenID Provider metadata (Discovery 1.0 §3, RFC 8414, BCL §2.1, RPIL §2.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderMetadata {
    /// The issuer identifier; identical to `iss` in every token (CORE-01).
    pub issuer: String,
    /// Where the browser is sent to sign in.
    pub authorization_endpoint: String,
    /// Where codes and refresh tokens are exchanged.
    pub token_endpoint: String,
    /// Claims about the signed-in user, for a bearer access token.
    pub userinfo_endpoint: String,
    /// The public signing keys.
    pub jwks_uri: String,
    /// RP-Initiated Logout endpoint (RPI-01).
    pub end_session_endpoint: String,
    /// Supported scopes.
    pub scopes_supported: Vec<String>,
    /// Only `code`.
    pub response_types_supported: Vec<String>,
    /// `query`.
    pub response_modes_supported: Vec<String>,
    /// `authorization_code`, `refresh_token`.
    pub grant_types_supported: Vec<String>,
    /// `public`: the `sub` is the same for every client.
    pub subject_types_supported: Vec<String>,
    /// RS256 first (required by Core), then ES256, EdDSA (BC-OP-03).
    pub id_token_signing_alg_values_supported: Vec<String>,
    /// `client_secret_basic`, `client_secret_post`, `none`.
    pub token_endpoint_auth_methods_supported: Vec<String>,
    /// Only `S256`; `plain` is refused.
    pub code_challenge_methods_supported: Vec<String>,
    /// Claims adieu can return.
    pub claims_supported: Vec<String>,
    /// `none`, `login`, `consent`, `select_account`.
    pub prompt_values_supported: Vec<String>,
    /// RFC 9207: authorization responses carry `iss`.
    pub authorization_response_iss_parameter_supported: bool,
    /// The languages of the provider's pages (`ui_locales`, Core §3.1.2.1; Discovery §3).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ui_locales_supported: Vec<String>,
    /// Always `true` (BC-OP-01).
    pub backchannel_logout_supported: bool,
    /// Always `true`: `sid` is in ID tokens and logout tokens (BC-OP-02).
    pub backchannel_logout_session_supported: bool,
    /// Always `true`: Front-Channel Logout 1.0 for applications without a back channel (FCL §3).
    #[serde(default)]
    pub frontchannel_logout_supported: bool,
    /// Always `true`: `iss` and `sid` are sent on request, and `sid` is in ID tokens (FCL §3).
    #[serde(default)]
    pub frontchannel_logout_session_supported: bool,
    /// Dynamic client registration endpoint, once enabled.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub registration_endpoint: Option<String>,
    /// Token introspection (RFC 7662), for resource servers.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub introspection_endpoint: Option<String>,
    /// How callers of the introspection endpoint authenticate (RFC 8414).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub introspection_endpoint_auth_methods_supported: Vec<String>,
    /// Token revocation (RFC 7009).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub revocation_endpoint: Option<String>,
    /// How callers of the revocation endpoint authenticate (RFC 8414).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub revocation_endpoint_auth_methods_supported: Vec<String>,
    /// Global Token Revocation (draft-parecki-oauth-global-token-revocation).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub global_token_revocation_endpoint: Option<String>,
    /// How its callers authenticate: a bearer token.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub global_token_revocation_endpoint_auth_methods_supported: Vec<String>,
}

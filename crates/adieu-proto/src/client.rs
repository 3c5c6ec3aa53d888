//! Client metadata on the wire: dynamic registration (RFC 7591, OIDC Registration, BCL §2.2,
//! RPIL §3.1) and the management API. Unknown members are ignored (RFC 7591 §2).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `backchannel_logout_initiators`: which ways of ending a session notify the client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct InitiatorsMetadata {
    /// `custom` (default) or `all`.
    #[serde(default = "custom")]
    pub mode: String,
    /// Initiator names, for `custom`; `rp-logout` and `idp-logout` are always included.
    #[serde(default)]
    pub selected_initiators: Vec<String>,
}

fn custom() -> String {
    "custom".into()
}

/// Client metadata as sent by a client or an administrator. Every member is optional here; which
/// are required is decided by the operation (create or update).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct ClientMetadataRequest {
    /// Requested id (management API only; registration always generates one).
    pub client_id: Option<String>,
    /// Display name.
    pub client_name: Option<String>,
    /// Redirect URIs.
    pub redirect_uris: Option<Vec<String>>,
    /// Post-logout redirect URIs.
    pub post_logout_redirect_uris: Option<Vec<String>>,
    /// Back-channel logout URI; JSON `null` removes it (an update then unsubscribes).
    #[serde(default, deserialize_with = "present")]
    pub backchannel_logout_uri: Option<Option<String>>,
    /// Whether logout tokens must carry `sid`.
    pub backchannel_logout_session_required: Option<bool>,
    /// Initiator subscription.
    pub backchannel_logout_initiators: Option<InitiatorsMetadata>,
    /// `client_secret_basic`, `client_secret_post` or `none`.
    pub token_endpoint_auth_method: Option<String>,
    /// `RS256`, `ES256` or `EdDSA`.
    pub id_token_signed_response_alg: Option<String>,
    /// Front-channel logout URI (FCL §2); JSON `null` removes it.
    #[serde(default, deserialize_with = "present")]
    pub frontchannel_logout_uri: Option<Option<String>>,
    /// Whether `iss` and `sid` are added to the front-channel logout URI.
    pub frontchannel_logout_session_required: Option<bool>,
    /// adieu's own member: a third-party application, whose users are asked for consent. Always
    /// `true` for dynamically registered clients.
    pub third_party: Option<bool>,
    /// Accepted if they are within what adieu supports.
    pub grant_types: Option<Vec<String>>,
    /// Accepted if `["code"]`.
    pub response_types: Option<Vec<String>>,
}

/// Distinguishes an absent member (`None`) from an explicit `null` (`Some(None)`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Ok(Some(Option::<String>::deserialize(d)?))
}

/// Client metadata as the provider answers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientMetadataResponse {
    /// The client id.
    pub client_id: String,
    /// The secret: only in the answer that created it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub client_secret: Option<String>,
    /// 0: the secret does not expire (only with a secret).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub client_secret_expires_at: Option<i64>,
    /// Creation time, seconds since the epoch.
    pub client_id_issued_at: i64,
    /// Display name.
    pub client_name: String,
    /// Redirect URIs.
    pub redirect_uris: Vec<String>,
    /// Post-logout redirect URIs.
    pub post_logout_redirect_uris: Vec<String>,
    /// Back-channel logout URI.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub backchannel_logout_uri: Option<String>,
    /// Whether logout tokens must carry `sid`.
    pub backchannel_logout_session_required: bool,
    /// Initiator subscription, with the always-included initiators listed.
    pub backchannel_logout_initiators: InitiatorsMetadata,
    /// Token endpoint authentication.
    pub token_endpoint_auth_method: String,
    /// ID token (and logout token) algorithm.
    pub id_token_signed_response_alg: String,
    /// Front-channel logout URI.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub frontchannel_logout_uri: Option<String>,
    /// Whether `iss` and `sid` are added to the front-channel logout URI.
    #[serde(default)]
    pub frontchannel_logout_session_required: bool,
    /// Whether users are asked for consent before this application signs them in.
    #[serde(default)]
    pub third_party: bool,
    /// Always `["authorization_code", "refresh_token"]`.
    pub grant_types: Vec<String>,
    /// Always `["code"]`.
    pub response_types: Vec<String>,
}

/// Parses a JSON body into a request, naming the member that has the wrong type.
pub fn parse_metadata(body: &Value) -> Result<ClientMetadataRequest, String> {
    if !body.is_object() {
        return Err("the body must be a JSON object".into());
    }
    serde_json::from_value(body.clone()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn null_logout_uri_differs_from_absent() {
        let r = parse_metadata(&json!({"backchannel_logout_uri": null})).unwrap();
        assert_eq!(r.backchannel_logout_uri, Some(None));
        let r = parse_metadata(&json!({})).unwrap();
        assert_eq!(r.backchannel_logout_uri, None);
    }

    #[test]
    fn unknown_members_are_ignored_and_wrong_types_named() {
        assert!(parse_metadata(&json!({"logo_uri": "x", "software_id": 4})).is_ok());
        let e = parse_metadata(&json!({"backchannel_logout_session_required": "yes"})).unwrap_err();
        assert!(e.contains("boolean"), "{e}");
        assert!(parse_metadata(&json!([1])).is_err());
    }
}

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
    /// Front-channel logout URI (Front-Channel Logout 1.0 §2), rendered in an iframe on the
    /// signed-out page when the client has no back-channel logout URI.
    pub frontchannel_logout_uri: Option<String>,
    /// Whether `iss` and `sid` are added to the front-channel logout URI (FCL §2).
    pub frontchannel_logout_session_required: bool,
    /// A third-party application: users are asked before it signs them in ([`crate::consent`]).
    pub third_party: bool,
    /// Creation time.
    pub created_at: UnixMillis,
    /// Last change.
    pub updated_at: UnixMillis,
}

/// How a client is told that a session it took part in ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogoutChannel {
    /// A logout token is POSTed to its back-channel logout URI, through the durable outbox.
    Back,
    /// Its front-channel logout URI is loaded in an iframe of the signed-out page; only a sign-out
    /// made in the browser (`rp-logout`) can reach it.
    Front,
    /// It cannot be told.
    Neither,
}

impl Client {
    /// A public client has no secret and must use PKCE.
    pub fn is_public(&self) -> bool {
        self.token_endpoint_auth_method == TokenEndpointAuthMethod::None
    }

    /// The channel this client is told on. With both URIs registered, the back channel wins: it
    /// is retried until it succeeds or dies, it reaches the application for every initiator, and
    /// it does not depend on the browser staying on the page or sending the application's cookies
    /// to a third-party frame. The front channel is for applications the provider cannot reach.
    pub fn logout_channel(&self) -> LogoutChannel {
        match (&self.backchannel_logout_uri, &self.frontchannel_logout_uri) {
            (Some(_), _) => LogoutChannel::Back,
            (None, Some(_)) => LogoutChannel::Front,
            (None, None) => LogoutChannel::Neither,
        }
    }

    /// The address the signed-out page loads for this client (FCL §2, §4): its front-channel
    /// logout URI with its query kept and, when `frontchannel_logout_session_required`, `iss` and
    /// `sid` added (both or neither). `None` unless [`LogoutChannel::Front`] is its channel, or if
    /// the stored URI does not parse.
    pub fn frontchannel_logout_url(&self, issuer: &str, sid: &str) -> Option<String> {
        if self.logout_channel() != LogoutChannel::Front {
            return None;
        }
        let mut u = url::Url::parse(self.frontchannel_logout_uri.as_deref()?).ok()?;
        if self.frontchannel_logout_session_required {
            u.query_pairs_mut().append_pair("iss", issuer).append_pair("sid", sid);
        }
        Some(u.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(back: Option<&str>, front: Option<&str>, session_required: bool) -> Client {
        Client {
            id: ClientId::new("app"),
            name: "App".into(),
            secret_hash: None,
            redirect_uris: vec!["https://app.example.com/cb".into()],
            post_logout_redirect_uris: vec![],
            backchannel_logout_uri: back.map(Into::into),
            backchannel_logout_session_required: false,
            backchannel_logout_initiators: InitiatorSubscription::default(),
            token_endpoint_auth_method: TokenEndpointAuthMethod::ClientSecretBasic,
            id_token_signed_response_alg: SigningAlg::RS256,
            frontchannel_logout_uri: front.map(Into::into),
            frontchannel_logout_session_required: session_required,
            third_party: false,
            created_at: UnixMillis(0),
            updated_at: UnixMillis(0),
        }
    }

    #[test]
    fn back_channel_wins_when_both_are_registered() {
        let c = client(Some("https://app.example.com/bc"), Some("https://app.example.com/fc"), true);
        assert_eq!(c.logout_channel(), LogoutChannel::Back);
        assert_eq!(c.frontchannel_logout_url("https://id.example.com", "s1"), None);
        assert_eq!(client(None, None, false).logout_channel(), LogoutChannel::Neither);
    }

    #[test]
    fn fcl_4_iss_and_sid_are_added_when_session_required_and_the_query_is_kept() {
        let c = client(None, Some("https://app.example.com/fc?tenant=a"), true);
        assert_eq!(c.logout_channel(), LogoutChannel::Front);
        let url = c.frontchannel_logout_url("https://id.example.com/t?x", "s 1&").unwrap();
        assert_eq!(url, "https://app.example.com/fc?tenant=a&iss=https%3A%2F%2Fid.example.com%2Ft%3Fx&sid=s+1%26");
    }

    #[test]
    fn fcl_4_neither_iss_nor_sid_without_session_required() {
        let c = client(None, Some("https://app.example.com/fc"), false);
        assert_eq!(c.frontchannel_logout_url("https://id.example.com", "s1").unwrap(), "https://app.example.com/fc");
    }
}

//! Minting ID tokens (Core §2, BC-SID-01) and reading an `id_token_hint` (RPI-04).

use crate::AppState;
use crate::keys::{KeyError, VerifyError, at_hash};
use adieu_core::client::Client;
use adieu_core::id::{Sid, UserId};
use adieu_core::time::UnixMillis;
use adieu_proto::token::IdTokenClaims;
use serde::Deserialize;
use std::time::Duration;

/// What goes into an ID token besides the standard times.
#[derive(Debug)]
pub struct IdTokenInput<'a> {
    /// The client (audience and algorithm).
    pub client: &'a Client,
    /// The subject.
    pub user_id: &'a UserId,
    /// The participation's `sid`.
    pub sid: &'a Sid,
    /// When the user authenticated.
    pub auth_time: UnixMillis,
    /// The request's nonce (code flow only).
    pub nonce: Option<String>,
    /// The access token issued alongside, for `at_hash`.
    pub access_token: &'a str,
}

/// Signs an ID token for `input` with the client's algorithm.
pub fn mint(state: &AppState, input: IdTokenInput<'_>) -> Result<String, KeyError> {
    let now = state.clock.now();
    let alg = input.client.id_token_signed_response_alg;
    let claims = IdTokenClaims {
        iss: state.issuer.to_string(),
        sub: input.user_id.to_string(),
        aud: input.client.id.to_string(),
        iat: now.as_secs(),
        exp: now.plus(Duration::from_secs(state.settings.tokens.id_token_ttl_secs)).as_secs(),
        auth_time: input.auth_time.as_secs(),
        nonce: input.nonce,
        sid: input.sid.to_string(),
        at_hash: Some(at_hash(alg, input.access_token)),
    };
    state.keys.sign(alg, "JWT", &claims, now)
}

/// The claims of an `id_token_hint` that matter for logout.
#[derive(Debug, Clone, Deserialize)]
pub struct HintClaims {
    /// Subject.
    pub sub: String,
    /// Audience: one client id, or several.
    pub aud: Audience,
    /// The participation's `sid`, if present.
    #[serde(default)]
    pub sid: Option<String>,
}

/// `aud` as a string or an array (CORE-02).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// One audience.
    One(String),
    /// Several.
    Many(Vec<String>),
}

impl Audience {
    /// Whether `client_id` is among the audiences.
    pub fn contains(&self, client_id: &str) -> bool {
        match self {
            Audience::One(a) => a == client_id,
            Audience::Many(v) => v.iter().any(|a| a == client_id),
        }
    }
    /// The first audience.
    pub fn first(&self) -> Option<&str> {
        match self {
            Audience::One(a) => Some(a),
            Audience::Many(v) => v.first().map(String::as_str),
        }
    }
}

/// Verifies that an `id_token_hint` was issued by us (signature, `kid`, `alg`, `iss`); an expired
/// hint is accepted (RPI-04). Tokens that are not ID tokens (a logout token, say) are refused.
pub fn verify_hint(state: &AppState, hint: &str) -> Result<HintClaims, VerifyError> {
    if hint.len() > 16 * 1024 {
        return Err(VerifyError::Malformed);
    }
    let header = jsonwebtoken::decode_header(hint).map_err(|_| VerifyError::Malformed)?;
    if header.typ.as_deref().is_some_and(|t| !t.eq_ignore_ascii_case("JWT")) {
        // RFC 8725 §3.12: our logout tokens (typ logout+jwt) must never pass as an ID token.
        return Err(VerifyError::Invalid);
    }
    state.keys.verify_ours::<HintClaims>(hint, &state.issuer)
}

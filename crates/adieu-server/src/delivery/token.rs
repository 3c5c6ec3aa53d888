//! Minting logout tokens (BC-LT-*): a fresh one per attempt.

use super::worker::Context;
use crate::crypto::random_id;
use crate::keys::KeyError;
use adieu_core::client::Client;
use adieu_core::delivery::Delivery;
use adieu_proto::logout::{LOGOUT_TOKEN_TYP, LogoutTokenClaims, logout_events};

/// Lifetime of a logout token: `exp = iat + 120` (BC-LT-08).
pub const LOGOUT_TOKEN_LIFETIME_SECS: i64 = 120;

/// Signs a logout token for `delivery` with the client's algorithm: header `typ: logout+jwt` and
/// `kid`; claims `iss aud iat exp jti events sub sid` and `initiator` (why the session ended),
/// never `nonce`.
pub fn mint(state: &Context, client: &Client, delivery: &Delivery) -> Result<String, KeyError> {
    let now = state.clock.now();
    let iat = now.as_secs();
    let claims = LogoutTokenClaims {
        iss: state.issuer.to_string(),
        aud: client.id.to_string(),
        iat,
        exp: iat + LOGOUT_TOKEN_LIFETIME_SECS,
        jti: random_id(),
        events: logout_events(),
        sub: Some(delivery.sub.to_string()),
        sid: Some(delivery.sid.to_string()),
        initiator: Some(delivery.initiator.as_str().to_owned()),
    };
    state.keys.sign(client.id_token_signed_response_alg, LOGOUT_TOKEN_TYP, &claims, now)
}

//! `adieu-rp`: OpenID Connect Back-Channel Logout for relying parties, correct by construction.
//!
//! Works with any OpenID Provider (adieu, Keycloak, Auth0, node-oidc-provider, …).
//!
//! - [`verify`]: turn a raw `logout_token` into a [`verify::VerifiedLogoutToken`] or a precise
//!   [`verify::LogoutTokenError`], in the order of BCL §2.6 (BC-RP-01..07).
//! - [`id_token`]: ID token validation for the code flow (Core §3.1.3.7), with the same signature
//!   checks; a logout token is never accepted as an ID token (BC-SEC-05).
//! - [`keys`]: the issuer's JWK Set, cached, refetched on an unknown `kid` (rate limited).
//! - [`replay`]: `jti` replay protection (BC-RP-08), recorded only after a successful logout.
//! - [`verifier`]: policy + cached keys + replay cache; retries once after a key refresh.
//! - [`index`]: which application sessions a token ends, and ending them (eagerly or lazily).
//! - `index_sql` (features `sqlite`, `postgres`): the session index, logged-out markers and
//!   replay cache in a database, shared by several replicas.
//! - `index_redis` (feature `redis`): the same in Redis.
//! - `tower_sessions` (feature `tower-sessions`): eager ending by deleting from a
//!   `tower-sessions` store.
//! - `layer` (feature `axum`): lazy ending, a tower layer that refuses ended sessions.
//! - `discovery` (feature `http`): provider discovery and fetching the JWK Set.
//! - `axum` (feature `axum`): the back-channel logout endpoint and a verified-token extractor.
//!
//! The common path is re-exported here. The shortest setup is
//! [`BackchannelLogout::discover`](crate::axum::BackchannelLogout) with features `http` and `axum`
//! (on by default): discovery, keys, the default policy and replay protection in one call.
//!
//! jsonwebtoken chooses its crypto backend at run time; call [`install_crypto`] once at start-up
//! (the other entry points of this crate do it for you).
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod axum;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub mod discovery;
pub mod id_token;
pub mod index;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod index_redis;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "sqlite", feature = "postgres"))))]
pub mod index_sql;
pub mod keys;
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod layer;
pub mod replay;
mod sourced;
#[cfg(feature = "tower-sessions")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower-sessions")))]
pub mod tower_sessions;
pub mod verifier;
pub mod verify;

// The common path, at the root.
#[cfg(feature = "axum")]
pub use crate::axum::{BackchannelLogout, VerifiedLogout};
#[cfg(feature = "http")]
pub use crate::discovery::{DiscoveryError, HttpJwks, Provider};
pub use crate::index::{LoginRecord, LogoutMarkers, MemorySessionIndex, SessionEnder, SessionIndex};
pub use crate::keys::KeyCache;
pub use crate::verifier::{LogoutVerifier, VerifyFailure};
pub use crate::verify::{LogoutTokenError, VerificationPolicy, VerifiedLogoutToken};

#[cfg(test)]
mod suite;
#[cfg(test)]
mod testing;

/// Installs the aws-lc-rs backend of `jsonwebtoken` if no backend is installed yet. Idempotent.
///
/// ```
/// adieu_rp::install_crypto();
/// adieu_rp::install_crypto();
/// ```
pub fn install_crypto() {
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
}

/// Seconds since the epoch on the wall clock: the time the endpoint, the markers and the layer run
/// on (`verify` itself takes the time as a parameter).
#[allow(clippy::disallowed_methods)]
pub(crate) fn wall_clock_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}

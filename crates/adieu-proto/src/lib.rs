//! Wire types of the adieu OpenID Provider. Serde only: no I/O, no HTTP or SQL types.
//!
//! - [`discovery`]: the OpenID Provider metadata document (Discovery 1.0, BC-OP-01..03).
//! - [`error`]: OAuth 2.0 / OpenID Connect error codes and the JSON error body.
//! - [`token`]: the token endpoint response and ID token claims.
//! - [`alg`]: the JWS algorithms adieu signs with.
//! - [`client`]: client metadata for registration and the management API.
//! - [`logout`]: the logout token claims and the back-channel logout event URI (BC-LT-*).

pub mod alg;
pub mod client;
pub mod discovery;
pub mod error;
pub mod logout;
pub mod token;

pub use alg::SigningAlg;
pub use discovery::ProviderMetadata;
pub use error::{ErrorBody, ErrorCode};

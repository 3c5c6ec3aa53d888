//! JWS algorithms adieu signs ID tokens (and later logout tokens) with.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A JWS signing algorithm supported by adieu.
///
/// `RS256` is the default and is required by OpenID Connect Core; `ES256` and `EdDSA` (Ed25519) are
/// offered too. `none` and symmetric algorithms are deliberately absent (BC-RP-03).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum SigningAlg {
    /// RSASSA-PKCS1-v1_5 with SHA-256 and a 2048-bit key.
    #[default]
    RS256,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// Ed25519 (RFC 8037).
    EdDSA,
}

impl SigningAlg {
    /// Every algorithm, in the order discovery lists them.
    pub const ALL: [SigningAlg; 3] = [SigningAlg::RS256, SigningAlg::ES256, SigningAlg::EdDSA];

    /// The JOSE name (`alg` header value).
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlg::RS256 => "RS256",
            SigningAlg::ES256 => "ES256",
            SigningAlg::EdDSA => "EdDSA",
        }
    }
}

impl fmt::Display for SigningAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error for an algorithm name adieu does not sign with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsupportedAlg(pub String);

impl fmt::Display for UnsupportedAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unsupported signing algorithm {:?} (supported: RS256, ES256, EdDSA)", self.0)
    }
}

impl std::error::Error for UnsupportedAlg {}

impl FromStr for SigningAlg {
    type Err = UnsupportedAlg;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SigningAlg::ALL.into_iter().find(|a| a.as_str() == s).ok_or_else(|| UnsupportedAlg(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_none_is_refused() {
        for a in SigningAlg::ALL {
            assert_eq!(a.as_str().parse::<SigningAlg>(), Ok(a));
        }
        assert!("none".parse::<SigningAlg>().is_err());
        assert!("HS256".parse::<SigningAlg>().is_err());
        assert!("rs256".parse::<SigningAlg>().is_err(), "JOSE names are case-sensitive");
    }
}

//! The reference loop's signing key (shared by `adieu-bench` and `adieu-ref-loop`): generated with
//! aws-lc-rs exactly as the provider generates its own (RSA 2048 for RS256, P-256 for ES256),
//! stored as PKCS#8 v1 DER, and published as a JWK so that the receivers can verify its tokens.

use anyhow::{Result, bail, ensure};
use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rsa::{KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Value, json};

/// A new private key for `alg` (`ES256` or `RS256`), PKCS#8 v1 DER.
pub fn generate_pkcs8(alg: &str) -> Result<Vec<u8>> {
    Ok(match alg {
        "ES256" => EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)?.to_pkcs8v1()?.as_ref().to_vec(),
        "RS256" => {
            let kp = RsaKeyPair::generate(KeySize::Rsa2048)?;
            AsDer::<Pkcs8V1Der>::as_der(&kp)?.as_ref().to_vec()
        }
        other => bail!("unsupported algorithm {other} (ES256 or RS256)"),
    })
}

/// The public JWK (`kid`, `alg`, `use: sig`) of a PKCS#8 key for `alg`.
pub fn public_jwk(alg: &str, pkcs8: &[u8], kid: &str) -> Result<Value> {
    let mut jwk = match alg {
        "ES256" => {
            let kp = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8)?;
            // Uncompressed SEC1 point: 0x04 || x (32) || y (32).
            let point = kp.public_key().as_ref();
            ensure!(point.len() == 65 && point[0] == 4, "unexpected P-256 public key encoding");
            json!({"kty": "EC", "crv": "P-256", "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..65])})
        }
        "RS256" => {
            let kp = RsaKeyPair::from_pkcs8(pkcs8)?;
            let c = PublicKeyComponents::<Vec<u8>>::from(kp.public_key());
            json!({"kty": "RSA", "n": B64.encode(strip_zeros(&c.n)), "e": B64.encode(strip_zeros(&c.e))})
        }
        other => bail!("unsupported algorithm {other} (ES256 or RS256)"),
    };
    jwk["kid"] = json!(kid);
    jwk["alg"] = json!(alg);
    jwk["use"] = json!("sig");
    Ok(jwk)
}

/// A big-endian integer without its leading zero bytes (JWK `n` and `e`).
fn strip_zeros(b: &[u8]) -> &[u8] {
    let i = b.iter().position(|&x| x != 0).unwrap_or(b.len().saturating_sub(1));
    &b[i..]
}

//! Small cryptographic helpers: random values, hashes of secrets, constant-time comparison, PKCE.

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

/// `n` random bytes, base64url without padding.
pub fn random_b64(n: usize) -> String {
    let mut buf = vec![0u8; n];
    // Invariant: the system CSPRNG only fails if the OS has no entropy source, which we cannot run without.
    SystemRandom::new().fill(&mut buf).expect("system random number generator failed");
    B64.encode(buf)
}

/// A 256-bit random secret (session cookies, codes, tokens, client secrets, CSRF tokens).
pub fn random_secret() -> String {
    random_b64(32)
}

/// A 128-bit random identifier (ids, `sid`, `jti`).
pub fn random_id() -> String {
    random_b64(16)
}

/// SHA-256 of a secret, base64url: how codes, tokens, cookie values and client secrets are stored.
/// The secrets are 256-bit random values, so a fast hash is enough (no dictionary to attack).
pub fn hash_secret(secret: &str) -> String {
    B64.encode(digest(&SHA256, secret.as_bytes()))
}

/// Compares two strings in time independent of where they differ.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a.as_bytes(), b.as_bytes()).is_ok()
}

/// PKCE S256: base64url(SHA-256(verifier)) (RFC 7636 §4.2).
pub fn pkce_s256(verifier: &str) -> String {
    B64.encode(digest(&SHA256, verifier.as_bytes()))
}

/// RFC 7636 §4.1: 43..=128 characters of `[A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~"`.
/// A S256 challenge has the same alphabet and is exactly 43 characters.
pub fn is_pkce_value(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s256_matches_an_independent_computation() {
        // Expected value from Python: urlsafe_b64encode(sha256(verifier)).rstrip("=").
        assert_eq!(
            pkce_s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r7wW1gFWFOEjXk"),
            "bwWFMyPfdG9qreDhH2lmftFx_dFeLDalzcT1gb_j68g"
        );
    }

    #[test]
    fn pkce_values_are_length_and_alphabet_checked() {
        assert!(is_pkce_value(&"a".repeat(43)));
        assert!(!is_pkce_value(&"a".repeat(42)));
        assert!(!is_pkce_value(&"a".repeat(129)));
        assert!(!is_pkce_value(&format!("{}+", "a".repeat(43))));
    }

    #[test]
    fn random_secrets_differ_and_have_256_bits() {
        let (a, b) = (random_secret(), random_secret());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(constant_time_eq(&a, &a.clone()));
        assert!(!constant_time_eq(&a, &b));
    }
}

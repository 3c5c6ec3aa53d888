//! The issuer's keys: which key may check which token, parsed once.

use super::*;

pub(super) fn key_usable(k: &Jwk, alg: Algorithm) -> bool {
    if matches!(k.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return false;
    }
    // A key that names its algorithm is for that algorithm only (RFC 8725 §3.1).
    match k.common.key_algorithm {
        Some(ka) => signing_algorithm(ka) == Some(alg),
        None => true,
    }
}

/// The signature algorithm a JWK's `alg` names (none for encryption or unknown algorithms).
pub(super) fn signing_algorithm(ka: KeyAlgorithm) -> Option<Algorithm> {
    Some(match ka {
        KeyAlgorithm::HS256 => Algorithm::HS256,
        KeyAlgorithm::HS384 => Algorithm::HS384,
        KeyAlgorithm::HS512 => Algorithm::HS512,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        _ => return None,
    })
}

/// Finds the key (its position in the set): by `kid`; without a `kid`, the single key usable
/// for `alg` (CORE-08).
pub(super) fn select_key(keys: &JwkSet, kid: Option<&str>, alg: Algorithm) -> Result<usize, LogoutTokenError> {
    match kid {
        Some(kid) => {
            let i = keys
                .keys
                .iter()
                .position(|k| k.common.key_id.as_deref() == Some(kid))
                .ok_or_else(|| LogoutTokenError::UnknownKey(Some(kid.to_owned())))?;
            if key_usable(&keys.keys[i], alg) { Ok(i) } else { Err(LogoutTokenError::KeyMismatch) }
        }
        None => {
            let usable: Vec<usize> = (0..keys.keys.len()).filter(|&i| key_usable(&keys.keys[i], alg)).collect();
            match usable.as_slice() {
                [one] => Ok(*one),
                _ => Err(LogoutTokenError::UnknownKey(None)),
            }
        }
    }
}

/// The asymmetric algorithms, in slot order for [`VerificationKeys`].
pub(super) const ASYMMETRIC: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

pub(super) fn alg_slot(alg: Algorithm) -> usize {
    ASYMMETRIC.iter().position(|a| *a == alg).unwrap_or(0)
}

/// DER `RSAPublicKey` (RFC 8017 A.1.1) from a JWK's `n` and `e`.
pub(super) fn rsa_public_key_der(n: &[u8], e: &[u8]) -> Vec<u8> {
    fn len(out: &mut Vec<u8>, n: usize) {
        if n < 0x80 {
            out.push(u8::try_from(n).unwrap_or(0));
        } else {
            let bytes: Vec<u8> = n.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
            out.push(0x80 | u8::try_from(bytes.len()).unwrap_or(0));
            out.extend(bytes);
        }
    }
    fn integer(out: &mut Vec<u8>, v: &[u8]) {
        let v = &v[v.iter().position(|b| *b != 0).unwrap_or(v.len().saturating_sub(1))..];
        let pad = v.first().is_some_and(|b| b & 0x80 != 0);
        out.push(0x02);
        len(out, v.len() + usize::from(pad));
        if pad {
            out.push(0);
        }
        out.extend_from_slice(v);
    }
    let mut body = Vec::with_capacity(n.len() + e.len() + 16);
    integer(&mut body, n);
    integer(&mut body, e);
    let mut out = Vec::with_capacity(body.len() + 4);
    out.push(0x30);
    len(&mut out, body.len());
    out.extend(body);
    out
}

/// Parses `jwk` for `alg`, or `None` when the key is not a valid key of that algorithm's family
/// (wrong key type or curve, RSA shorter than 2048 bits, malformed values): key confusion ends here.
pub(super) fn parse_key(jwk: &Jwk, alg: Algorithm) -> Option<aws_lc_rs::signature::ParsedPublicKey> {
    use aws_lc_rs::signature as sig;
    let (algorithm, bytes): (&'static dyn sig::VerificationAlgorithm, Vec<u8>) = match (&jwk.algorithm, alg) {
        (AlgorithmParameters::RSA(p), _) => {
            let (n, e) = (decode_b64(&p.n)?, decode_b64(&p.e)?);
            let algorithm: &'static dyn sig::VerificationAlgorithm = match alg {
                Algorithm::RS256 => &sig::RSA_PKCS1_2048_8192_SHA256,
                Algorithm::RS384 => &sig::RSA_PKCS1_2048_8192_SHA384,
                Algorithm::RS512 => &sig::RSA_PKCS1_2048_8192_SHA512,
                Algorithm::PS256 => &sig::RSA_PSS_2048_8192_SHA256,
                Algorithm::PS384 => &sig::RSA_PSS_2048_8192_SHA384,
                Algorithm::PS512 => &sig::RSA_PSS_2048_8192_SHA512,
                _ => return None,
            };
            (algorithm, rsa_public_key_der(&n, &e))
        }
        (AlgorithmParameters::EllipticCurve(p), Algorithm::ES256 | Algorithm::ES384) => {
            let (algorithm, size): (&'static dyn sig::VerificationAlgorithm, usize) = match (&p.curve, alg) {
                (EllipticCurve::P256, Algorithm::ES256) => (&sig::ECDSA_P256_SHA256_FIXED, 32),
                (EllipticCurve::P384, Algorithm::ES384) => (&sig::ECDSA_P384_SHA384_FIXED, 48),
                _ => return None,
            };
            let (x, y) = (decode_b64(&p.x)?, decode_b64(&p.y)?);
            if x.len() != size || y.len() != size {
                return None;
            }
            let mut point = Vec::with_capacity(1 + 2 * size);
            point.push(0x04);
            point.extend(x);
            point.extend(y);
            (algorithm, point)
        }
        (AlgorithmParameters::OctetKeyPair(p), Algorithm::EdDSA) if p.curve == EllipticCurve::Ed25519 => {
            (&sig::ED25519, decode_b64(&p.x)?)
        }
        _ => return None,
    };
    sig::ParsedPublicKey::new(algorithm, bytes).ok()
}

/// BC-RP-02: the signature over `header.payload` (the token up to its last dot).
pub(super) fn check_signature(
    raw: &str,
    signature_b64: &str,
    check: impl FnOnce(&[u8], &[u8]) -> bool,
) -> Result<bool, LogoutTokenError> {
    let signature = decode_b64(signature_b64).ok_or(LogoutTokenError::Malformed)?;
    let input = &raw.as_bytes()[..raw.len() - signature_b64.len() - 1];
    if check(input, &signature) { Ok(true) } else { Err(LogoutTokenError::BadSignature) }
}

pub(crate) type ParsedSlots = [OnceLock<Option<aws_lc_rs::signature::ParsedPublicKey>>; ASYMMETRIC.len()];

/// An issuer's key set with each key parsed once per algorithm on first use, for
/// [`verify_prepared`]. [`crate::keys::KeyCache`] hands these out.
///
/// ```
/// let keys = adieu_rp::verify::VerificationKeys::new(jsonwebtoken::jwk::JwkSet { keys: vec![] });
/// assert!(keys.keys.is_empty()); // derefs to the JwkSet
/// ```
pub struct VerificationKeys {
    pub(super) set: JwkSet,
    pub(super) parsed: Vec<ParsedSlots>,
}

impl std::fmt::Debug for VerificationKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerificationKeys").field("set", &self.set).finish_non_exhaustive()
    }
}

impl VerificationKeys {
    /// The keys parsed so far, one slot per algorithm (for [`verify_jws`]).
    pub(crate) fn parsed(&self) -> &Vec<ParsedSlots> {
        &self.parsed
    }

    /// Wraps `set`; keys are parsed lazily, when a token first needs them.
    ///
    /// ```
    /// let keys = adieu_rp::verify::VerificationKeys::new(jsonwebtoken::jwk::JwkSet { keys: vec![] });
    /// # let _ = keys;
    /// ```
    pub fn new(set: JwkSet) -> Self {
        let parsed = set.keys.iter().map(|_| std::array::from_fn(|_| OnceLock::new())).collect();
        VerificationKeys { set, parsed }
    }

    /// The key set.
    ///
    /// ```
    /// let keys = adieu_rp::verify::VerificationKeys::new(jsonwebtoken::jwk::JwkSet { keys: vec![] });
    /// assert!(keys.set().keys.is_empty());
    /// ```
    pub fn set(&self) -> &JwkSet {
        &self.set
    }
}

impl std::ops::Deref for VerificationKeys {
    type Target = JwkSet;
    fn deref(&self) -> &JwkSet {
        &self.set
    }
}

impl From<JwkSet> for VerificationKeys {
    fn from(set: JwkSet) -> Self {
        VerificationKeys::new(set)
    }
}

//! The key-encryption key (KEK): signing keys sealed at rest with AES-256-GCM (aws-lc-rs).
//!
//! The KEK is 32 random bytes, configured in base64 (`key_encryption_key`,
//! `ADIEU_KEY_ENCRYPTION_KEY`; `adieu keys generate-kek` makes one). It never reaches the database.
//!
//! Stored form of a sealed key, version 1:
//!
//! ```text
//! "adieu-kek" (9 bytes) ‖ 0x01 ‖ KEK id (8) ‖ nonce (12, random) ‖ AES-256-GCM(PKCS#8 DER) ‖ tag (16)
//! ```
//!
//! - The associated data is the key's `kid`: a sealed key copied to another row does not open.
//! - The KEK id is the first 8 bytes of SHA-256(`"adieu kek id\0"` ‖ KEK). It tells "sealed under
//!   another KEK" apart from "damaged", and lets the command line refuse to add a key under a KEK
//!   that differs from the existing keys'. The KEK is 256 random bits, so its id reveals nothing
//!   useful about it.
//! - An unsealed key is plain PKCS#8 DER, which starts with a DER SEQUENCE (0x30), never with the
//!   prefix, so the two forms cannot be confused.

use super::KeyError;
use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use zeroize::Zeroizing;

const MAGIC: &[u8] = b"adieu-kek";
const VERSION: u8 = 1;
const ID_LEN: usize = 8;
const HEADER_LEN: usize = MAGIC.len() + 1 + ID_LEN + NONCE_LEN;
const TAG_LEN: usize = 16;

/// A key-encryption key that cannot be used: the reason, never the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KekError {
    /// Not base64.
    #[error("key_encryption_key is not base64 (make one with `adieu keys generate-kek`)")]
    NotBase64,
    /// Not 32 bytes.
    #[error(
        "key_encryption_key must be 32 bytes (base64 of 32 random bytes), not {0} (make one with `adieu keys generate-kek`)"
    )]
    Length(usize),
}

/// The key-encryption key, ready to seal and open.
pub struct Kek {
    key: RandomizedNonceKey,
    id: [u8; ID_LEN],
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kek").field("id", &self.fingerprint()).finish_non_exhaustive()
    }
}

/// A fresh KEK: 32 bytes from the system CSPRNG, standard base64 (44 characters).
pub fn generate() -> String {
    let mut bytes = Zeroizing::new([0u8; 32]);
    // Invariant: the system CSPRNG only fails without an OS entropy source, which we cannot run without.
    SystemRandom::new().fill(bytes.as_mut()).expect("system random number generator failed");
    STANDARD.encode(bytes.as_ref())
}

fn kek_id(bytes: &[u8]) -> [u8; ID_LEN] {
    let mut input = Zeroizing::new(b"adieu kek id\0".to_vec());
    input.extend_from_slice(bytes);
    let d = digest(&SHA256, &input);
    let mut id = [0u8; ID_LEN];
    id.copy_from_slice(&d.as_ref()[..ID_LEN]);
    id
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Kek {
    /// Parses a configured KEK: base64 (standard or URL-safe, padded or not) of exactly 32 bytes.
    pub fn from_base64(text: &str) -> Result<Kek, KekError> {
        let text = text.trim();
        let bytes = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
            .iter()
            .find_map(|engine| engine.decode(text).ok())
            .map(Zeroizing::new)
            .ok_or(KekError::NotBase64)?;
        if bytes.len() != 32 {
            return Err(KekError::Length(bytes.len()));
        }
        // Invariant: AES-256-GCM accepts any 32-byte key.
        let key = RandomizedNonceKey::new(&AES_256_GCM, &bytes).map_err(|_| KekError::Length(bytes.len()))?;
        Ok(Kek { key, id: kek_id(&bytes) })
    }

    /// The KEK's id in hex (16 characters): safe to log and show.
    pub fn fingerprint(&self) -> String {
        hex(&self.id)
    }

    /// Seals the PKCS#8 DER of key `kid`.
    pub fn seal(&self, kid: &str, pkcs8: &[u8]) -> Result<Vec<u8>, KeyError> {
        let mut body = pkcs8.to_vec();
        let nonce = self.key.seal_in_place_append_tag(Aad::from(kid.as_bytes()), &mut body).map_err(|_| {
            body.iter_mut().for_each(|b| *b = 0);
            KeyError::Sealing
        })?;
        let mut out = Vec::with_capacity(HEADER_LEN + body.len());
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&self.id);
        out.extend_from_slice(nonce.as_ref());
        out.extend_from_slice(&body);
        Ok(out)
    }
}

/// How a stored private key is kept at rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtRest {
    /// Plain PKCS#8 DER.
    Plain,
    /// Sealed under the KEK with this id (hex).
    Sealed,
    /// Erased (a retired key).
    Erased,
}

impl AtRest {
    /// `plain`, `encrypted` or `erased`.
    pub fn as_str(self) -> &'static str {
        match self {
            AtRest::Plain => "plain",
            AtRest::Sealed => "encrypted",
            AtRest::Erased => "erased",
        }
    }
}

/// How `stored` is kept, without opening it.
pub fn at_rest(stored: &[u8]) -> AtRest {
    if stored.is_empty() {
        AtRest::Erased
    } else if stored.starts_with(MAGIC) {
        AtRest::Sealed
    } else {
        AtRest::Plain
    }
}

/// The id (hex) of the KEK `stored` was sealed under, if it is sealed in a known version.
pub fn sealed_with(stored: &[u8]) -> Option<String> {
    (stored.starts_with(MAGIC) && stored.len() >= HEADER_LEN && stored[MAGIC.len()] == VERSION)
        .then(|| hex(&stored[MAGIC.len() + 1..MAGIC.len() + 1 + ID_LEN]))
}

/// A private key out of storage.
#[derive(Debug)]
pub struct Opened {
    /// PKCS#8 DER, zeroed when dropped.
    pub pkcs8: Zeroizing<Vec<u8>>,
    /// It was stored unencrypted although a KEK is configured: the operator should rotate it out.
    pub plain_despite_kek: bool,
}

/// Opens the stored private key of `kid`: plain PKCS#8 is taken as is; a sealed one needs `kek`,
/// the same KEK it was sealed under, and an intact ciphertext bound to this `kid`. Errors name
/// the kid, never the key.
pub fn open(kek: Option<&Kek>, kid: &str, stored: &[u8]) -> Result<Opened, KeyError> {
    if !stored.starts_with(MAGIC) {
        return Ok(Opened { pkcs8: Zeroizing::new(stored.to_vec()), plain_despite_kek: kek.is_some() });
    }
    let unusable = |reason: &str| KeyError::Unusable { kid: kid.to_owned(), reason: reason.to_owned() };
    if stored.len() < HEADER_LEN + TAG_LEN {
        return Err(unusable("its encrypted form is truncated"));
    }
    if stored[MAGIC.len()] != VERSION {
        return Err(unusable(&format!(
            "it is encrypted in format version {}, which this adieu does not know (a newer adieu wrote it?)",
            stored[MAGIC.len()]
        )));
    }
    let Some(kek) = kek else { return Err(KeyError::KekMissing { kid: kid.to_owned() }) };
    let id = &stored[MAGIC.len() + 1..MAGIC.len() + 1 + ID_LEN];
    if id != kek.id {
        return Err(KeyError::WrongKek { kid: kid.to_owned(), sealed_with: hex(id), configured: kek.fingerprint() });
    }
    let nonce_at = MAGIC.len() + 1 + ID_LEN;
    // Invariant: the slice is NONCE_LEN bytes long (length checked above).
    let nonce = Nonce::try_assume_unique_for_key(&stored[nonce_at..HEADER_LEN]).map_err(|_| unusable("bad nonce"))?;
    let mut body = Zeroizing::new(stored[HEADER_LEN..].to_vec());
    let len = kek
        .key
        .open_in_place(nonce, Aad::from(kid.as_bytes()), &mut body)
        .map_err(|_| KeyError::Undecryptable { kid: kid.to_owned() })?
        .len();
    body.truncate(len);
    Ok(Opened { pkcs8: body, plain_despite_kek: false })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kek() -> Kek {
        Kek::from_base64(&generate()).unwrap()
    }

    #[test]
    fn generated_keks_are_32_random_bytes_in_base64() {
        let (a, b) = (generate(), generate());
        assert_ne!(a, b);
        assert_eq!(STANDARD.decode(&a).unwrap().len(), 32);
        Kek::from_base64(&a).unwrap();
        // URL-safe and unpadded forms of the same bytes are the same key.
        let url = URL_SAFE_NO_PAD.encode(STANDARD.decode(&a).unwrap());
        assert_eq!(Kek::from_base64(&url).unwrap().fingerprint(), Kek::from_base64(&a).unwrap().fingerprint());
    }

    #[test]
    fn a_kek_must_be_base64_of_exactly_32_bytes_and_errors_never_show_it() {
        let short = STANDARD.encode([7u8; 16]);
        assert_eq!(Kek::from_base64(&short).unwrap_err(), KekError::Length(16));
        assert_eq!(Kek::from_base64("not base64 at all!").unwrap_err(), KekError::NotBase64);
        let err = Kek::from_base64(&short).unwrap_err().to_string();
        assert!(!err.contains(&short), "{err}");
        assert!(format!("{:?}", kek()).starts_with("Kek { id: "));
    }

    #[test]
    fn a_sealed_key_opens_with_its_kek_and_kid_only() {
        let (k, other) = (kek(), kek());
        let pkcs8 = super::super::generate(adieu_proto::SigningAlg::ES256).unwrap();
        let sealed = k.seal("ES256-a", &pkcs8).unwrap();
        assert_eq!(at_rest(&sealed), AtRest::Sealed);
        assert_eq!(sealed_with(&sealed), Some(k.fingerprint()));
        assert!(!sealed.windows(16).any(|w| pkcs8.windows(16).any(|p| p == w)), "no plaintext run survives");
        let opened = open(Some(&k), "ES256-a", &sealed).unwrap();
        assert_eq!((opened.pkcs8.as_slice(), opened.plain_despite_kek), (pkcs8.as_slice(), false));
        assert!(matches!(open(None, "ES256-a", &sealed), Err(KeyError::KekMissing { kid }) if kid == "ES256-a"));
        assert!(matches!(open(Some(&other), "ES256-a", &sealed), Err(KeyError::WrongKek { .. })));
        assert!(matches!(open(Some(&k), "ES256-b", &sealed), Err(KeyError::Undecryptable { kid }) if kid == "ES256-b"));
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(matches!(open(Some(&k), "ES256-a", &flipped), Err(KeyError::Undecryptable { .. })));
        // Two seals of the same key differ (random nonce).
        assert_ne!(k.seal("ES256-a", &pkcs8).unwrap(), sealed);
    }

    #[test]
    fn plain_keys_open_without_a_kek_and_are_flagged_with_one() {
        let pkcs8 = super::super::generate(adieu_proto::SigningAlg::EdDSA).unwrap();
        assert_eq!(at_rest(&pkcs8), AtRest::Plain);
        assert!(!open(None, "EdDSA-a", &pkcs8).unwrap().plain_despite_kek);
        assert!(open(Some(&kek()), "EdDSA-a", &pkcs8).unwrap().plain_despite_kek);
        assert_eq!(at_rest(&[]), AtRest::Erased);
    }
}

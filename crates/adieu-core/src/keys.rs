//! Signing keys as the domain sees them: generations per algorithm, pre-publication, retirement,
//! and which key signs at a given time. Every replica reads the same rows and applies the same
//! rules with its clock, so replicas agree on the signer without talking to each other.
//!
//! A key's life (each algorithm has its own keys, numbered by `generation` 1, 2, 3…):
//!
//! ```text
//!  inserted ──► Pending { signs_from } ──(clock reaches signs_from)──► Signing
//!                   │ (published in the JWKS at once)                     │ a newer generation starts signing
//!                   ▼                                                     ▼
//!               Retired ◄──────────── adieu keys retire ────────────── Published
//! ```
//!
//! - The first key of an algorithm signs at once (`signs_from` = its creation). A rotated key is
//!   published at once but signs only from `created_at + publish_ahead`, so relying parties that
//!   cache the JWKS have it before the first token it signs reaches them.
//! - The signer of an algorithm at `now` is the newest generation whose `signs_from` has come;
//!   if none has (clocks apart), the one that comes first.
//! - Retiring removes a key from the JWKS and erases its private key. The current signer and the
//!   last key of an algorithm cannot be retired.

use crate::time::UnixMillis;
use adieu_proto::SigningAlg;
use std::time::Duration;

/// A signing key as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredSigningKey {
    /// Key id (published in the JWKS and the JWS header). It starts with the algorithm's name.
    pub kid: String,
    /// The one algorithm this key signs with (RFC 8725 §3.1).
    pub alg: SigningAlg,
    /// 1 for an algorithm's first key, then one more per rotation. `(alg, generation)` is unique,
    /// which is how replicas that start together on an empty database agree on one first key.
    pub generation: i64,
    /// The private key: PKCS#8 v1 DER, or that DER sealed under the key-encryption key (the
    /// server's `keys::kek` module defines the format). Empty once the key is retired.
    pub private_key: Vec<u8>,
    /// Creation time.
    pub created_at: UnixMillis,
    /// From when it signs (if it is the newest generation by then).
    pub signs_from: UnixMillis,
    /// When it was retired (removed from the JWKS); `None` while published.
    pub retired_at: Option<UnixMillis>,
}

impl std::fmt::Debug for StoredSigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredSigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("generation", &self.generation)
            .field("private_key", &"<redacted>")
            .field("created_at", &self.created_at)
            .field("signs_from", &self.signs_from)
            .field("retired_at", &self.retired_at)
            .finish()
    }
}

/// What a key is doing at some moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// It signs new tokens of its algorithm.
    Signing,
    /// Published in the JWKS; it starts signing at `signs_from`.
    Pending {
        /// When it starts signing.
        signs_from: UnixMillis,
    },
    /// Published, but a newer key signs; tokens it signed still verify. It can be retired.
    Published,
    /// Removed from the JWKS; its private key is erased.
    Retired {
        /// When.
        at: UnixMillis,
    },
}

impl KeyState {
    /// A short name: `signing`, `pending`, `published` or `retired`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Signing => "signing",
            KeyState::Pending { .. } => "pending",
            KeyState::Published => "published",
            KeyState::Retired { .. } => "retired",
        }
    }
}

/// What the signer rules need to know of a key (stored, or parsed by the server).
pub trait Scheduled {
    /// Its algorithm.
    fn alg(&self) -> SigningAlg;
    /// Its generation within the algorithm.
    fn generation(&self) -> i64;
    /// From when it may sign.
    fn signs_from(&self) -> UnixMillis;
    /// When it was retired, if it was.
    fn retired_at(&self) -> Option<UnixMillis>;
}

impl Scheduled for StoredSigningKey {
    fn alg(&self) -> SigningAlg {
        self.alg
    }
    fn generation(&self) -> i64 {
        self.generation
    }
    fn signs_from(&self) -> UnixMillis {
        self.signs_from
    }
    fn retired_at(&self) -> Option<UnixMillis> {
        self.retired_at
    }
}

impl<K: Scheduled + ?Sized> Scheduled for std::sync::Arc<K> {
    fn alg(&self) -> SigningAlg {
        (**self).alg()
    }
    fn generation(&self) -> i64 {
        (**self).generation()
    }
    fn signs_from(&self) -> UnixMillis {
        (**self).signs_from()
    }
    fn retired_at(&self) -> Option<UnixMillis> {
        (**self).retired_at()
    }
}

/// The index of the key that signs for `alg` at `now`: among the keys of `alg` that are not
/// retired, the newest generation whose `signs_from` has come; if none has, the one that comes
/// first. `None` if `alg` has no published key.
pub fn signer_index<K: Scheduled>(keys: &[K], alg: SigningAlg, now: UnixMillis) -> Option<usize> {
    let live = || keys.iter().enumerate().filter(|(_, k)| k.alg() == alg && k.retired_at().is_none());
    live()
        .filter(|(_, k)| k.signs_from() <= now)
        .max_by_key(|(_, k)| k.generation())
        .or_else(|| live().min_by_key(|(_, k)| (k.signs_from(), k.generation())))
        .map(|(i, _)| i)
}

/// The state of `keys[index]` at `now`.
pub fn state_of<K: Scheduled>(keys: &[K], index: usize, now: UnixMillis) -> KeyState {
    let k = &keys[index];
    if let Some(at) = k.retired_at() {
        return KeyState::Retired { at };
    }
    if signer_index(keys, k.alg(), now) == Some(index) {
        KeyState::Signing
    } else if k.signs_from() > now {
        KeyState::Pending { signs_from: k.signs_from() }
    } else {
        KeyState::Published
    }
}

/// The generation and start of signing of a new key of `alg` made at `now`: one generation above
/// every key of `alg` (retired ones included); it signs at once if `alg` has no published key,
/// else after `publish_ahead`.
pub fn next_key<K: Scheduled>(
    keys: &[K],
    alg: SigningAlg,
    now: UnixMillis,
    publish_ahead: Duration,
) -> (i64, UnixMillis) {
    let mine = || keys.iter().filter(|k| k.alg() == alg);
    let generation = mine().map(Scheduled::generation).max().unwrap_or(0) + 1;
    let published = mine().any(|k| k.retired_at().is_none());
    (generation, if published { now.plus(publish_ahead) } else { now })
}

/// Why a key cannot be retired.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RetireRefusal {
    /// No key has this kid.
    #[error("there is no signing key {0}")]
    NotFound(String),
    /// It was retired before.
    #[error("signing key {0} is already retired")]
    AlreadyRetired(String),
    /// It is its algorithm's current signer: rotate first and wait until the new key signs.
    #[error(
        "signing key {0} is the current signer of its algorithm: rotate first, and retire it once the new key signs"
    )]
    CurrentSigner(String),
    /// It is the only published key of its algorithm.
    #[error("signing key {0} is the last published key of its algorithm")]
    LastKey(String),
}

/// Whether the key `kid` may be retired at `now`: it exists, is published, does not sign, and is
/// not the last published key of its algorithm. Backends call this inside the transaction that
/// retires, with the algorithm's rows locked.
pub fn check_retire(keys: &[StoredSigningKey], kid: &str, now: UnixMillis) -> Result<usize, RetireRefusal> {
    let i = keys.iter().position(|k| k.kid == kid).ok_or_else(|| RetireRefusal::NotFound(kid.to_owned()))?;
    let k = &keys[i];
    if k.retired_at.is_some() {
        return Err(RetireRefusal::AlreadyRetired(kid.to_owned()));
    }
    if keys.iter().filter(|o| o.alg == k.alg && o.retired_at.is_none()).count() == 1 {
        return Err(RetireRefusal::LastKey(kid.to_owned()));
    }
    if signer_index(keys, k.alg, now) == Some(i) {
        return Err(RetireRefusal::CurrentSigner(kid.to_owned()));
    }
    Ok(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: UnixMillis = UnixMillis(1_000_000);
    const AHEAD: Duration = Duration::from_secs(600);

    fn key(kid: &str, alg: SigningAlg, generation: i64, signs_from: i64) -> StoredSigningKey {
        StoredSigningKey {
            kid: kid.into(),
            alg,
            generation,
            private_key: vec![1],
            created_at: UnixMillis(signs_from),
            signs_from: UnixMillis(signs_from),
            retired_at: None,
        }
    }

    #[test]
    fn the_first_key_of_an_algorithm_signs_at_once() {
        let keys: Vec<StoredSigningKey> = vec![key("ES256-a", SigningAlg::ES256, 1, 0)];
        assert_eq!(next_key(&keys, SigningAlg::RS256, T, AHEAD), (1, T));
        assert_eq!(next_key(&keys, SigningAlg::ES256, T, AHEAD), (2, T.plus(AHEAD)));
    }

    #[test]
    fn a_rotated_key_is_pending_until_publish_ahead_passes_then_signs() {
        let (generation, signs_from) =
            next_key(&[key("RS256-old", SigningAlg::RS256, 1, 0)], SigningAlg::RS256, T, AHEAD);
        let keys = vec![
            key("RS256-old", SigningAlg::RS256, 1, 0),
            key("RS256-new", SigningAlg::RS256, generation, signs_from.0),
        ];
        assert_eq!(signer_index(&keys, SigningAlg::RS256, T), Some(0));
        assert_eq!(state_of(&keys, 1, T), KeyState::Pending { signs_from });
        let later = signs_from;
        assert_eq!(signer_index(&keys, SigningAlg::RS256, later), Some(1));
        assert_eq!(state_of(&keys, 0, later), KeyState::Published);
        assert_eq!(state_of(&keys, 1, later), KeyState::Signing);
        assert_eq!(signer_index(&keys, SigningAlg::ES256, later), None);
    }

    #[test]
    fn a_lone_key_signs_even_before_its_start() {
        // Another replica's clock may be a little behind the one that made the key.
        let keys = vec![key("EdDSA-a", SigningAlg::EdDSA, 1, T.0 + 5)];
        assert_eq!(signer_index(&keys, SigningAlg::EdDSA, T), Some(0));
    }

    #[test]
    fn retired_keys_never_sign_and_keep_their_generation_taken() {
        let mut keys = vec![key("RS256-1", SigningAlg::RS256, 1, 0), key("RS256-2", SigningAlg::RS256, 2, 10)];
        keys[1].retired_at = Some(T);
        assert_eq!(signer_index(&keys, SigningAlg::RS256, T), Some(0));
        assert_eq!(state_of(&keys, 1, T), KeyState::Retired { at: T });
        assert_eq!(next_key(&keys, SigningAlg::RS256, T, AHEAD).0, 3);
    }

    #[test]
    fn retiring_the_current_signer_or_the_last_key_is_refused() {
        let mut keys = vec![key("RS256-1", SigningAlg::RS256, 1, 0)];
        assert_eq!(check_retire(&keys, "RS256-1", T), Err(RetireRefusal::LastKey("RS256-1".into())));
        assert_eq!(check_retire(&keys, "nope", T), Err(RetireRefusal::NotFound("nope".into())));
        keys.push(key("RS256-2", SigningAlg::RS256, 2, T.0 + 600_000));
        assert_eq!(check_retire(&keys, "RS256-1", T), Err(RetireRefusal::CurrentSigner("RS256-1".into())));
        assert_eq!(check_retire(&keys, "RS256-2", T), Ok(1), "a pending key may be withdrawn");
        let later = UnixMillis(T.0 + 600_000);
        assert_eq!(check_retire(&keys, "RS256-1", later), Ok(0));
        assert_eq!(check_retire(&keys, "RS256-2", later), Err(RetireRefusal::CurrentSigner("RS256-2".into())));
        keys[0].retired_at = Some(later);
        assert_eq!(check_retire(&keys, "RS256-1", later), Err(RetireRefusal::AlreadyRetired("RS256-1".into())));
    }
}

//! Rotating and retiring signing keys, shared through the database.
//!
//! - [`ensure_keys`]: at start-up, one key per algorithm that has none. Replicas starting together
//!   on an empty database race to insert generation 1; `(alg, generation)` is unique, so one insert
//!   wins and the others take the winner's key on their next read.
//! - [`rotate`]: a new key for an algorithm, published at once, signing after `publish_ahead`
//!   (at once if the algorithm has no published key).
//! - [`retire`]: removes a key from the JWKS (the store refuses the current signer and the last key).
//! - [`spawn_reloader`]: every replica re-reads the keys every `keys.reload_interval_secs`.
//!
//! The command line (`adieu keys …`) and the server use these same functions.

use super::{Kek, KeyError, generate, kek};
use crate::AppState;
use crate::crypto::random_b64;
use adieu_core::audit::Actor;
use adieu_core::keys::{RetireRefusal, StoredSigningKey, next_key};
use adieu_core::store::{KeyStore, StoreError};
use adieu_core::time::UnixMillis;
use adieu_proto::SigningAlg;
use std::time::Duration;
use tokio::task::JoinHandle;

/// How many times a rotation re-reads and retries when another writer took its generation.
const INSERT_TRIES: usize = 5;

/// A new key id: the algorithm's name and 96 random bits.
fn new_kid(alg: SigningAlg) -> String {
    format!("{}-{}", alg, random_b64(12))
}

/// Generates a key of `alg` (RSA takes a while: off the async threads) and seals it under `kek`.
async fn make_key(alg: SigningAlg, kek: Option<&Kek>) -> Result<(String, Vec<u8>), KeyError> {
    let kid = new_kid(alg);
    let der = zeroize::Zeroizing::new(
        tokio::task::spawn_blocking(move || generate(alg)).await.map_err(|_| KeyError::Generation)??,
    );
    let stored = match kek {
        Some(k) => k.seal(&kid, &der)?,
        None => der.to_vec(),
    };
    Ok((kid, stored))
}

/// Refuses to add a key that would be kept differently from the existing ones: without a KEK
/// while published keys are sealed (it would be stored unencrypted), or under a KEK other than
/// theirs (the server could not open it).
fn check_kek(keys: &[StoredSigningKey], kek: Option<&Kek>) -> Result<(), KeyError> {
    for k in keys.iter().filter(|k| k.retired_at.is_none()) {
        match (kek, kek::sealed_with(&k.private_key)) {
            (None, Some(_)) => return Err(KeyError::KekMissing { kid: k.kid.clone() }),
            (Some(kek), Some(id)) if id != kek.fingerprint() => {
                return Err(KeyError::WrongKek { kid: k.kid.clone(), sealed_with: id, configured: kek.fingerprint() });
            }
            _ => {}
        }
    }
    Ok(())
}

/// Inserts a new key of `alg` at `now`, one generation above the others, retrying when another
/// writer took that generation first. With `only_if_missing`, gives up (returns `None`) as soon as
/// `alg` has a published key (another replica generated it).
async fn insert_new(
    store: &dyn KeyStore,
    alg: SigningAlg,
    kek: Option<&Kek>,
    publish_ahead: Duration,
    now: UnixMillis,
    actor: &str,
    only_if_missing: bool,
) -> Result<Option<StoredSigningKey>, KeyError> {
    for _ in 0..INSERT_TRIES {
        let keys = store.signing_keys().await?;
        if only_if_missing && keys.iter().any(|k| k.alg == alg && k.retired_at.is_none()) {
            return Ok(None);
        }
        check_kek(&keys, kek)?;
        let (generation, signs_from) = next_key(&keys, alg, now, publish_ahead);
        let (kid, private_key) = make_key(alg, kek).await?;
        let key = StoredSigningKey { kid, alg, generation, private_key, created_at: now, signs_from, retired_at: None };
        match store.insert_signing_key(&key, actor).await {
            Ok(()) => {
                tracing::info!(kid = %key.kid, %alg, generation, sealed = kek.is_some(), "generated signing key");
                return Ok(Some(key));
            }
            Err(StoreError::Conflict(field)) if field == "generation" => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(KeyError::Store(StoreError::Conflict("generation".into())))
}

/// Makes sure every algorithm has a published key, generating the missing ones (sealed under
/// `kek` if given) with the actor `system`. Returns the keys this call inserted; on a database
/// that another replica is initialising at the same moment, some or all are that replica's.
pub async fn ensure_keys(
    store: &dyn KeyStore,
    kek: Option<&Kek>,
    now: UnixMillis,
) -> Result<Vec<StoredSigningKey>, KeyError> {
    let mut made = Vec::new();
    let keys = store.signing_keys().await?;
    for alg in SigningAlg::ALL {
        if keys.iter().any(|k| k.alg == alg && k.retired_at.is_none()) {
            continue;
        }
        if let Some(k) = insert_new(store, alg, kek, Duration::ZERO, now, &Actor::System.name(), true).await? {
            made.push(k);
        }
    }
    Ok(made)
}

/// Rotates `alg`: inserts a new key (sealed under `kek` if given), published at once and signing
/// from `now + publish_ahead`, or at once if `alg` has no published key. Refused when `kek` does not
/// match how the published keys are kept (see [`KeyError::KekMissing`], [`KeyError::WrongKek`]).
pub async fn rotate(
    store: &dyn KeyStore,
    alg: SigningAlg,
    kek: Option<&Kek>,
    publish_ahead: Duration,
    now: UnixMillis,
    actor: &str,
) -> Result<StoredSigningKey, KeyError> {
    insert_new(store, alg, kek, publish_ahead, now, actor, false)
        .await?
        .ok_or(KeyError::Store(StoreError::Conflict("generation".into())))
}

/// Retires `kid` at `now`: it leaves the JWKS (on every replica at its next reload) and its private
/// key is erased. Refused for the current signer of its algorithm and for the last published key.
pub async fn retire(
    store: &dyn KeyStore,
    kid: &str,
    now: UnixMillis,
    actor: &str,
) -> Result<StoredSigningKey, KeyError> {
    let retired = store.retire_signing_key(kid, actor, now).await?.map_err(KeyError::Refused)?;
    tracing::info!(%kid, alg = %retired.alg, "retired signing key");
    Ok(retired)
}

/// Re-reads the signing keys every `keys.reload_interval_secs` (the first time one interval after
/// start), so that rotations and retirements made elsewhere reach this replica. A failed read
/// keeps the current keys and is logged.
pub fn spawn_reloader(state: AppState) -> JoinHandle<()> {
    tokio::spawn(async move {
        let every = Duration::from_secs(state.settings.keys.reload_interval_secs.max(1));
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match state.keys.reload(state.store.as_ref()).await {
                Ok(report) => {
                    for kid in &report.plain_despite_kek {
                        tracing::warn!(%kid, "signing key {kid} is stored unencrypted although a key_encryption_key is set");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "reloading the signing keys failed; keeping the current ones"),
            }
        }
    })
}

impl From<RetireRefusal> for KeyError {
    fn from(r: RetireRefusal) -> Self {
        KeyError::Refused(r)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Keys, kek};
    use super::*;
    use adieu_core::keys::KeyState;
    use adieu_store::SqliteStore;

    const T0: UnixMillis = UnixMillis(1_700_000_000_000);
    const AHEAD: Duration = Duration::from_secs(600);

    async fn store() -> (SqliteStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("adieu.db").display());
        (SqliteStore::open(&url).await.unwrap(), dir)
    }

    fn new_kek() -> (String, Kek) {
        let text = kek::generate();
        let k = Kek::from_base64(&text).unwrap();
        (text, k)
    }

    /// The rule: an error about a key names its kid and nothing of the key or the KEK.
    fn assert_names_only_the_kid(err: &KeyError, kid: &str, secrets: &[&str]) {
        let text = err.to_string();
        assert!(text.contains(kid), "{text}");
        for s in secrets {
            assert!(!text.contains(s), "{text} leaks a secret");
        }
    }

    #[tokio::test]
    async fn new_keys_are_stored_encrypted_when_a_kek_is_set() {
        let (s, _dir) = store().await;
        let (_, k) = new_kek();
        let (keys, report) = Keys::load_or_generate(&s, T0, Some(k)).await.unwrap();
        assert!(report.plain_despite_kek.is_empty());
        let stored = s.signing_keys().await.unwrap();
        assert_eq!(stored.len(), 3);
        for key in &stored {
            assert_eq!(kek::at_rest(&key.private_key), kek::AtRest::Sealed, "{}", key.kid);
            assert_eq!(kek::sealed_with(&key.private_key), Some(keys.kek().unwrap().fingerprint()));
        }
        assert_eq!(keys.published_kids().len(), 3);
    }

    #[tokio::test]
    async fn encrypted_keys_without_a_kek_are_a_start_up_error_naming_the_kid() {
        let (s, _dir) = store().await;
        let (text, k) = new_kek();
        Keys::load_or_generate(&s, T0, Some(k)).await.unwrap();
        let err = Keys::load_or_generate(&s, T0, None).await.unwrap_err();
        let first = &s.signing_keys().await.unwrap()[0];
        assert!(matches!(&err, KeyError::KekMissing { kid } if *kid == first.kid), "{err:?}");
        assert_names_only_the_kid(&err, &first.kid, &[&text]);
        assert!(err.to_string().contains("ADIEU_KEY_ENCRYPTION_KEY"), "says what to set: {err}");
    }

    #[tokio::test]
    async fn encrypted_keys_with_the_wrong_kek_are_a_start_up_error_naming_the_kid() {
        let (s, _dir) = store().await;
        let ((right_text, right), (wrong_text, wrong)) = (new_kek(), new_kek());
        let right_id = right.fingerprint();
        Keys::load_or_generate(&s, T0, Some(right)).await.unwrap();
        let err = Keys::load_or_generate(&s, T0, Some(wrong)).await.unwrap_err();
        let first = &s.signing_keys().await.unwrap()[0];
        assert!(
            matches!(&err, KeyError::WrongKek { kid, sealed_with, .. } if *kid == first.kid && *sealed_with == right_id)
        );
        assert_names_only_the_kid(&err, &first.kid, &[&right_text, &wrong_text]);
    }

    #[tokio::test]
    async fn unencrypted_keys_with_a_kek_load_with_a_warning_to_rotate_them() {
        let (s, _dir) = store().await;
        Keys::load_or_generate(&s, T0, None).await.unwrap();
        let plain: Vec<String> = s.signing_keys().await.unwrap().into_iter().map(|k| k.kid).collect();
        let (_, k) = new_kek();
        let (keys, report) = Keys::load_or_generate(&s, T0, Some(k)).await.unwrap();
        assert_eq!(report.plain_despite_kek, plain, "each plain key is reported (and logged)");
        // Rotating then stores the new keys encrypted, as the warning advises.
        let new = rotate(&s, SigningAlg::ES256, keys.kek(), AHEAD, T0, &Actor::Cli.name()).await.unwrap();
        assert_eq!(kek::at_rest(&new.private_key), kek::AtRest::Sealed);
    }

    #[tokio::test]
    async fn rotating_without_the_kek_of_encrypted_keys_or_with_another_is_refused() {
        let (s, _dir) = store().await;
        let ((_, right), (_, other)) = (new_kek(), new_kek());
        Keys::load_or_generate(&s, T0, Some(right)).await.unwrap();
        let err = rotate(&s, SigningAlg::RS256, None, AHEAD, T0, &Actor::Cli.name()).await.unwrap_err();
        assert!(matches!(err, KeyError::KekMissing { .. }), "the new key would be stored unencrypted: {err:?}");
        let err = rotate(&s, SigningAlg::RS256, Some(&other), AHEAD, T0, &Actor::Cli.name()).await.unwrap_err();
        assert!(matches!(err, KeyError::WrongKek { .. }), "the server could not open the new key: {err:?}");
        assert_eq!(s.signing_keys().await.unwrap().len(), 3, "nothing was added");
    }

    /// Proves: two replicas starting at the same moment on an empty database (two stores on one
    /// file here; two PostgreSQL replicas in the e2e tests) generate one key per algorithm between
    /// them, and both publish and sign with the same keys.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_replicas_starting_on_an_empty_database_generate_one_key_per_algorithm() {
        let (a, dir) = store().await;
        let b = SqliteStore::open(&format!("sqlite://{}", dir.path().join("adieu.db").display())).await.unwrap();
        let (ka, kb) = tokio::join!(Keys::load_or_generate(&a, T0, None), Keys::load_or_generate(&b, T0, None));
        let (ka, kb) = (ka.unwrap().0, kb.unwrap().0);
        let stored = a.signing_keys().await.unwrap();
        assert_eq!(stored.len(), 3, "{stored:?}");
        assert_eq!(ka.published_kids(), kb.published_kids());
        for alg in SigningAlg::ALL {
            assert_eq!(ka.signer_kid(alg, T0), kb.signer_kid(alg, T0));
            assert!(ka.signer_kid(alg, T0).is_some());
        }
    }

    #[tokio::test]
    async fn a_rotation_is_published_at_once_and_signs_after_publish_ahead() {
        let (s, _dir) = store().await;
        let (keys, _) = Keys::load_or_generate(&s, T0, None).await.unwrap();
        let old = keys.signer_kid(SigningAlg::ES256, T0).unwrap();
        let new = rotate(&s, SigningAlg::ES256, None, AHEAD, T0, &Actor::Cli.name()).await.unwrap();
        assert_eq!((new.generation, new.signs_from), (2, T0.plus(AHEAD)));
        let report = keys.reload(&s).await.unwrap();
        assert_eq!(report.added, vec![new.kid.clone()]);
        assert!(keys.published_kids().contains(&new.kid));
        assert_eq!(keys.signer_kid(SigningAlg::ES256, UnixMillis(T0.plus(AHEAD).0 - 1)), Some(old.clone()));
        assert_eq!(keys.signer_kid(SigningAlg::ES256, T0.plus(AHEAD)), Some(new.kid.clone()));
        let stored = s.signing_keys().await.unwrap();
        let i = stored.iter().position(|k| k.kid == new.kid).unwrap();
        assert_eq!(adieu_core::keys::state_of(&stored, i, T0), KeyState::Pending { signs_from: T0.plus(AHEAD) });
        // Retiring: refused while the old key signs, allowed once the new one does.
        assert!(matches!(retire(&s, &old, T0, &Actor::Cli.name()).await, Err(KeyError::Refused(_))));
        retire(&s, &old, T0.plus(AHEAD), &Actor::Cli.name()).await.unwrap();
        assert_eq!(keys.reload(&s).await.unwrap().removed, vec![old.clone()]);
        assert!(!keys.published_kids().contains(&old));
    }

    #[tokio::test]
    async fn a_new_key_that_cannot_be_opened_is_left_out_of_a_reload() {
        let (s, _dir) = store().await;
        let (keys, _) = Keys::load_or_generate(&s, T0, None).await.unwrap();
        // A command line with a KEK the server does not have (the existing keys are plain, so the
        // command cannot tell).
        let (_, stray) = new_kek();
        let new = rotate(&s, SigningAlg::RS256, Some(&stray), AHEAD, T0, &Actor::Cli.name()).await.unwrap();
        let report = keys.reload(&s).await.unwrap();
        assert!(report.added.is_empty());
        assert!(!keys.published_kids().contains(&new.kid), "never published, so never signs");
        assert_eq!(keys.published_kids().len(), 3);
    }
}

//! [`LogoutVerifier`]: a policy, the issuer's cached keys and a replay cache, together. Replay
//! protection is on by default (an in-memory `jti` cache); opting out is
//! [`LogoutVerifier::danger_without_replay_protection`].
//! On an unknown `kid` it refreshes the keys (rate limited) and tries once more (key rotation).

use crate::keys::{KeyCache, KeyFetchError};
use crate::replay::{ReplayCache, ReplayError};
use crate::verify::{LogoutTokenError, VerificationPolicy, VerifiedLogoutToken, verify_prepared};
use std::sync::Arc;

/// Verifies logout tokens of one client at one issuer.
///
/// ```
/// use adieu_rp::keys::{KeyCache, StaticJwks};
/// use adieu_rp::verifier::LogoutVerifier;
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// # let (keys, token, policy, now) = adieu_rp::verify::sample_for_docs();
/// let verifier = LogoutVerifier::new(policy, KeyCache::new(std::sync::Arc::new(StaticJwks(keys))));
/// let verified = verifier.verify(&token, now).await.unwrap();
/// assert_eq!(verified.subject().sub(), Some("user-1"));
/// # });
/// ```
#[derive(Debug)]
pub struct LogoutVerifier {
    policy: VerificationPolicy,
    keys: KeyCache,
    replay: Option<Arc<dyn ReplayCache>>,
}

/// Verification failed: the token is invalid, or this application could not check it now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyFailure {
    /// The token is invalid (answer 400: final).
    #[error(transparent)]
    Invalid(#[from] LogoutTokenError),
    /// The issuer's keys could not be fetched, or a new `kid` arrived while refreshing is rate
    /// limited (answer 503: a provider that retries will try again).
    #[error(transparent)]
    Keys(#[from] KeyFetchError),
    /// The replay cache failed (answer 503); the cache's error is kept.
    #[error("replay cache unavailable: {0}")]
    Replay(#[source] ReplayError),
}

impl VerifyFailure {
    /// Whether trying again later may succeed (keys or replay store unavailable).
    ///
    /// ```
    /// use adieu_rp::verifier::VerifyFailure;
    /// use adieu_rp::verify::LogoutTokenError;
    /// assert!(!VerifyFailure::Invalid(LogoutTokenError::Expired).is_temporary());
    /// ```
    pub fn is_temporary(&self) -> bool {
        !matches!(self, VerifyFailure::Invalid(_))
    }
}

impl LogoutVerifier {
    /// A verifier with `jti` replay protection (BC-RP-08) in this process's memory
    /// ([`crate::replay::MemoryReplayCache`]). Several replicas of one application share a cache
    /// with [`LogoutVerifier::with_replay_cache`] instead.
    ///
    /// ```
    /// use adieu_rp::keys::{KeyCache, StaticJwks};
    /// use adieu_rp::verifier::{LogoutVerifier, VerifyFailure};
    /// use adieu_rp::verify::LogoutTokenError;
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # let (keys, token, policy, now) = adieu_rp::verify::sample_for_docs();
    /// let v = LogoutVerifier::new(policy, KeyCache::new(std::sync::Arc::new(StaticJwks(keys))));
    /// let first = v.verify(&token, now).await.unwrap();
    /// v.logout_succeeded(&first, now).await.unwrap();
    /// // Replay protection is on by default.
    /// assert_eq!(v.verify(&token, now).await.unwrap_err(), VerifyFailure::Invalid(LogoutTokenError::Replayed));
    /// # });
    /// ```
    pub fn new(policy: VerificationPolicy, keys: KeyCache) -> Self {
        crate::install_crypto();
        let replay: Arc<dyn ReplayCache> = Arc::new(crate::replay::MemoryReplayCache::default());
        LogoutVerifier { policy, keys, replay: Some(replay) }
    }

    /// Turns replay protection off: a captured logout token can then be used again until it
    /// expires. Its sessions are already ended, so a replay ends no more than the original did;
    /// the cache is defence in depth, and only tests usually want it gone.
    ///
    /// ```
    /// # use adieu_rp::{keys::{KeyCache, StaticJwks}, verifier::LogoutVerifier, verify::VerificationPolicy};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # let (keys, token, policy, now) = adieu_rp::verify::sample_for_docs();
    /// let v = LogoutVerifier::new(policy, KeyCache::new(std::sync::Arc::new(StaticJwks(keys))))
    ///     .danger_without_replay_protection();
    /// let first = v.verify(&token, now).await.unwrap();
    /// v.logout_succeeded(&first, now).await.unwrap();
    /// assert!(v.verify(&token, now).await.is_ok(), "the same token again");
    /// # });
    /// ```
    pub fn danger_without_replay_protection(mut self) -> Self {
        self.replay = None;
        self
    }

    /// Replaces the replay cache, e.g. with one shared by every replica (BC-RP-08).
    ///
    /// ```
    /// # use adieu_rp::{keys::{KeyCache, StaticJwks}, verifier::LogoutVerifier, verify::VerificationPolicy};
    /// # let v = LogoutVerifier::new(VerificationPolicy::new("https://op", "c"), KeyCache::new(std::sync::Arc::new(StaticJwks(jsonwebtoken::jwk::JwkSet { keys: vec![] }))));
    /// let v = v.with_replay_cache(std::sync::Arc::new(adieu_rp::replay::MemoryReplayCache::default()));
    /// # let _ = v;
    /// ```
    pub fn with_replay_cache(mut self, cache: Arc<dyn ReplayCache>) -> Self {
        self.replay = Some(cache);
        self
    }

    /// The policy.
    ///
    /// ```
    /// # use adieu_rp::{keys::{KeyCache, StaticJwks}, verifier::LogoutVerifier, verify::VerificationPolicy};
    /// # let v = LogoutVerifier::new(VerificationPolicy::new("https://op", "c"), KeyCache::new(std::sync::Arc::new(StaticJwks(jsonwebtoken::jwk::JwkSet { keys: vec![] }))));
    /// assert_eq!(v.policy().client_id(), "c");
    /// ```
    pub fn policy(&self) -> &VerificationPolicy {
        &self.policy
    }

    /// The issuer's cached keys (also usable for its ID tokens, see [`crate::id_token`]).
    ///
    /// ```
    /// # use adieu_rp::{keys::{KeyCache, StaticJwks}, verifier::LogoutVerifier, verify::VerificationPolicy};
    /// # let v = LogoutVerifier::new(VerificationPolicy::new("https://op", "c"), KeyCache::new(std::sync::Arc::new(StaticJwks(jsonwebtoken::jwk::JwkSet { keys: vec![] }))));
    /// let keys: &KeyCache = v.keys();
    /// # let _ = keys;
    /// ```
    pub fn keys(&self) -> &KeyCache {
        &self.keys
    }

    /// Verifies `raw` at `now` (seconds since the epoch), refreshing the keys once on an unknown
    /// `kid`, and refusing a `jti` already used for a successful logout.
    ///
    /// ```
    /// # use adieu_rp::{keys::{KeyCache, StaticJwks}, verifier::LogoutVerifier};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # let (keys, token, policy, now) = adieu_rp::verify::sample_for_docs();
    /// # let v = LogoutVerifier::new(policy, KeyCache::new(std::sync::Arc::new(StaticJwks(keys))));
    /// assert!(v.verify(&token, now).await.is_ok());
    /// assert!(v.verify(&token, now + 3600).await.is_err(), "expired");
    /// # });
    /// ```
    pub async fn verify(&self, raw: &str, now: i64) -> Result<VerifiedLogoutToken, VerifyFailure> {
        let keys = self.keys.current().await?;
        let verified = match verify_prepared(raw, &keys, &self.policy, now) {
            Err(LogoutTokenError::UnknownKey(kid)) => {
                // Refetch (rate limited) and check once more. A set fetched just now, or within the
                // refresh interval, is authoritative: a `kid` it lacks is an invalid token (400).
                // Only a set kept after a failed fetch may lack a key the provider has published
                // since: then ask the provider to retry later (503).
                let keys = self.keys.refresh().await?;
                match verify_prepared(raw, &keys, &self.policy, now) {
                    Err(LogoutTokenError::UnknownKey(_)) if self.keys.is_stale().await => {
                        return Err(KeyFetchError::new(format!(
                            "unknown key {kid:?}, and the issuer's keys could not be fetched"
                        ))
                        .into());
                    }
                    other => other?,
                }
            }
            other => other?,
        };
        if let Some(replay) = &self.replay
            && replay.seen(verified.issuer(), verified.jti(), now).await.map_err(VerifyFailure::Replay)?
        {
            return Err(LogoutTokenError::Replayed.into());
        }
        Ok(verified)
    }

    /// Records that the logout of `token` succeeded, so its `jti` is refused from now on.
    ///
    /// ```
    /// # use adieu_rp::{keys::{KeyCache, StaticJwks}, verifier::LogoutVerifier};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # let (keys, token, policy, now) = adieu_rp::verify::sample_for_docs();
    /// # let v = LogoutVerifier::new(policy, KeyCache::new(std::sync::Arc::new(StaticJwks(keys))))
    /// #     .with_replay_cache(std::sync::Arc::new(adieu_rp::replay::MemoryReplayCache::default()));
    /// let t = v.verify(&token, now).await.unwrap();
    /// v.logout_succeeded(&t, now).await.unwrap();
    /// assert!(v.verify(&token, now).await.is_err(), "replayed");
    /// # });
    /// ```
    pub async fn logout_succeeded(&self, token: &VerifiedLogoutToken, now: i64) -> Result<(), VerifyFailure> {
        let Some(replay) = &self.replay else { return Ok(()) };
        let until = self.policy.acceptable_until(token);
        replay.remember(token.issuer(), token.jti(), until, now).await.map_err(VerifyFailure::Replay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::JwksSource;
    use crate::testing::{AUD, ISS, NOW, TestKey, claims, set};
    use jsonwebtoken::jwk::JwkSet;
    use std::sync::Mutex;

    /// A provider whose JWKS answers `set`, or fails while it is `None`.
    #[derive(Debug)]
    struct Provider(Mutex<Option<JwkSet>>);

    #[async_trait::async_trait]
    impl JwksSource for Provider {
        async fn fetch(&self) -> Result<JwkSet, KeyFetchError> {
            self.0.lock().unwrap().clone().ok_or_else(|| KeyFetchError::new("offline"))
        }
    }

    fn verifier(provider: Arc<Provider>) -> LogoutVerifier {
        let policy = VerificationPolicy::new(ISS, AUD).with_algorithms(&[jsonwebtoken::Algorithm::ES256]).unwrap();
        LogoutVerifier::new(policy, KeyCache::new(provider))
    }

    #[tokio::test(start_paused = true)]
    async fn an_unknown_kid_in_a_freshly_fetched_key_set_is_an_invalid_token() {
        let (known, other) = (TestKey::ec("k1"), TestKey::ec("k-unpublished"));
        let provider = Arc::new(Provider(Mutex::new(Some(set(&[&known])))));
        let v = verifier(provider);
        v.keys().current().await.unwrap();
        let token = other.sign("ES256", serde_json::json!({"typ": "logout+jwt"}), &claims());
        // Fetched moments ago (the refetch is rate limited): the set is authoritative, so 400.
        let got = v.verify(&token, NOW).await;
        assert!(matches!(got, Err(VerifyFailure::Invalid(LogoutTokenError::UnknownKey(_)))), "{got:?}");
        assert!(!got.unwrap_err().is_temporary());
    }

    #[tokio::test(start_paused = true)]
    async fn an_unknown_kid_when_the_keys_cannot_be_fetched_is_temporary() {
        let (known, rotated) = (TestKey::ec("k1"), TestKey::ec("k2"));
        let provider = Arc::new(Provider(Mutex::new(Some(set(&[&known])))));
        let v = verifier(provider.clone());
        v.keys().current().await.unwrap();
        *provider.0.lock().unwrap() = None;
        tokio::time::advance(std::time::Duration::from_secs(11)).await;
        let token = rotated.sign("ES256", serde_json::json!({"typ": "logout+jwt"}), &claims());
        // The refetch failed and the kept set may lack the new key: 503, so the provider retries.
        let got = v.verify(&token, NOW).await;
        assert!(matches!(got, Err(VerifyFailure::Keys(_))), "{got:?}");
        // The provider is back with the new key: after the interval the token verifies.
        *provider.0.lock().unwrap() = Some(set(&[&known, &rotated]));
        tokio::time::advance(std::time::Duration::from_secs(11)).await;
        assert!(v.verify(&token, NOW).await.is_ok());
    }
}

//! [`LogoutVerifier`]: a policy, the issuer's cached keys and an optional replay cache, together.
//! On an unknown `kid` it refreshes the keys (rate limited) and tries once more (key rotation).

use crate::keys::{KeyCache, KeyFetchError};
use crate::replay::ReplayCache;
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
    /// The replay cache failed (answer 503).
    #[error("replay cache unavailable: {0}")]
    Replay(String),
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
    /// A verifier without replay protection.
    ///
    /// ```
    /// # use adieu_rp::{keys::{KeyCache, StaticJwks}, verifier::LogoutVerifier, verify::VerificationPolicy};
    /// let v = LogoutVerifier::new(
    ///     VerificationPolicy::new("https://op.example.com", "c"),
    ///     KeyCache::new(std::sync::Arc::new(StaticJwks(jsonwebtoken::jwk::JwkSet { keys: vec![] }))),
    /// );
    /// # let _ = v;
    /// ```
    pub fn new(policy: VerificationPolicy, keys: KeyCache) -> Self {
        crate::install_crypto();
        LogoutVerifier { policy, keys, replay: None }
    }

    /// Adds `jti` replay protection (BC-RP-08).
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
                let could_fetch = self.keys.can_refresh().await;
                let keys = self.keys.refresh().await?;
                match verify_prepared(raw, &keys, &self.policy, now) {
                    // The key may be newer than our last fetch: ask the provider to retry later.
                    Err(LogoutTokenError::UnknownKey(_)) if !could_fetch => {
                        return Err(KeyFetchError(format!(
                            "unknown key {kid:?}; the key set was refreshed moments ago"
                        ))
                        .into());
                    }
                    other => other?,
                }
            }
            other => other?,
        };
        if let Some(replay) = &self.replay
            && replay.seen(verified.issuer(), verified.jti(), now).await.map_err(|e| VerifyFailure::Replay(e.0))?
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
        replay.remember(token.issuer(), token.jti(), until, now).await.map_err(|e| VerifyFailure::Replay(e.0))
    }
}

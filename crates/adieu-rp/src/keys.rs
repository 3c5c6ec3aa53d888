//! The issuer's keys: a cached JWK Set, refetched when a token names an unknown `kid` (CORE-08),
//! at most once per `min_refresh_interval`, so a flood of tokens with made-up `kid`s cannot make
//! this application hammer its provider. Key rotation (a new key published, an old one removed)
//! is picked up by the same refetch.

use crate::verify::VerificationKeys;
use async_trait::async_trait;
use jsonwebtoken::jwk::JwkSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, RwLock};
use tokio::time::Instant;

/// Where a JWK Set comes from (the issuer's `jwks_uri`, or a fixed set in tests).
///
/// ```
/// use adieu_rp::keys::{JwksSource, StaticJwks};
/// # tokio_test_block(async {
/// let source = StaticJwks(jsonwebtoken::jwk::JwkSet { keys: vec![] });
/// assert!(source.fetch().await.unwrap().keys.is_empty());
/// # });
/// # fn tokio_test_block<F: std::future::Future>(f: F) { tokio::runtime::Runtime::new().unwrap().block_on(f); }
/// ```
#[async_trait]
pub trait JwksSource: Send + Sync + std::fmt::Debug {
    /// Fetches the current key set.
    async fn fetch(&self) -> Result<JwkSet, KeyFetchError>;
}

crate::sourced::sourced_error!(
    /// Fetching the key set failed; the HTTP or parse error underneath is its `source`.
    KeyFetchError,
    "fetching the issuer's keys failed",
    "keys::KeyFetchError"
);

/// A fixed key set.
///
/// ```
/// let s = adieu_rp::keys::StaticJwks(jsonwebtoken::jwk::JwkSet { keys: vec![] });
/// # let _ = s;
/// ```
#[derive(Debug, Clone)]
pub struct StaticJwks(pub JwkSet);

#[async_trait]
impl JwksSource for StaticJwks {
    async fn fetch(&self) -> Result<JwkSet, KeyFetchError> {
        Ok(self.0.clone())
    }
}

#[derive(Debug)]
struct Cached {
    set: Arc<VerificationKeys>,
    fetched_at: Option<Instant>,
    /// The last fetch failed (the set is an older one, kept).
    stale: bool,
}

/// A cached key set with rate-limited refresh.
///
/// ```
/// use adieu_rp::keys::{KeyCache, StaticJwks};
/// use std::sync::Arc;
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let cache = KeyCache::new(Arc::new(StaticJwks(jsonwebtoken::jwk::JwkSet { keys: vec![] })));
/// assert!(cache.current().await.unwrap().keys.is_empty());
/// # });
/// ```
#[derive(Debug)]
pub struct KeyCache {
    source: Arc<dyn JwksSource>,
    cached: RwLock<Cached>,
    refreshing: Mutex<()>,
    min_refresh_interval: Duration,
    max_age: Duration,
}

impl KeyCache {
    /// A cache over `source` that refetches at most every 10 seconds.
    ///
    /// ```
    /// # use adieu_rp::keys::{KeyCache, StaticJwks};
    /// let cache = KeyCache::new(std::sync::Arc::new(StaticJwks(jsonwebtoken::jwk::JwkSet { keys: vec![] })));
    /// # let _ = cache;
    /// ```
    pub fn new(source: Arc<dyn JwksSource>) -> Self {
        Self::with_min_refresh_interval(source, Duration::from_secs(10))
    }

    /// A cache that refetches at most every `interval`.
    ///
    /// ```
    /// # use adieu_rp::keys::{KeyCache, StaticJwks};
    /// let cache = KeyCache::with_min_refresh_interval(
    ///     std::sync::Arc::new(StaticJwks(jsonwebtoken::jwk::JwkSet { keys: vec![] })),
    ///     std::time::Duration::from_secs(60),
    /// );
    /// # let _ = cache;
    /// ```
    pub fn with_min_refresh_interval(source: Arc<dyn JwksSource>, interval: Duration) -> Self {
        KeyCache {
            source,
            cached: RwLock::new(Cached {
                set: Arc::new(VerificationKeys::new(JwkSet { keys: vec![] })),
                fetched_at: None,
                stale: false,
            }),
            refreshing: Mutex::new(()),
            min_refresh_interval: interval,
            max_age: Duration::from_secs(3600),
        }
    }

    /// Refetches the set when it is older than `max_age` (default one hour), so a key the
    /// provider removed stops being trusted even if no unknown `kid` arrives.
    ///
    /// ```
    /// # use adieu_rp::keys::{KeyCache, StaticJwks};
    /// let cache = KeyCache::new(std::sync::Arc::new(StaticJwks(jsonwebtoken::jwk::JwkSet { keys: vec![] })))
    ///     .max_age(std::time::Duration::from_secs(600));
    /// # let _ = cache;
    /// ```
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    /// Whether a refresh now would fetch (the minimum interval has passed).
    ///
    /// ```
    /// # use adieu_rp::keys::{KeyCache, StaticJwks};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # let cache = KeyCache::new(std::sync::Arc::new(StaticJwks(jsonwebtoken::jwk::JwkSet { keys: vec![] })));
    /// assert!(cache.can_refresh().await);
    /// cache.current().await.unwrap();
    /// assert!(!cache.can_refresh().await);
    /// # });
    /// ```
    pub async fn can_refresh(&self) -> bool {
        self.cached.read().await.fetched_at.is_none_or(|at| at.elapsed() >= self.min_refresh_interval)
    }

    /// Whether the last fetch failed, so the cached set may lack keys the provider published since
    /// (a `kid` missing from it is then not proof that the token is invalid).
    ///
    /// ```
    /// # use adieu_rp::keys::{KeyCache, StaticJwks};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # let (keys, _, _, _) = adieu_rp::verify::sample_for_docs();
    /// let cache = KeyCache::new(std::sync::Arc::new(StaticJwks(keys)));
    /// cache.current().await.unwrap();
    /// assert!(!cache.is_stale().await);
    /// # });
    /// ```
    pub async fn is_stale(&self) -> bool {
        self.cached.read().await.stale
    }

    /// The cached set, fetching it the first time.
    ///
    /// ```
    /// # use adieu_rp::keys::{KeyCache, StaticJwks};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # let cache = KeyCache::new(std::sync::Arc::new(StaticJwks(jsonwebtoken::jwk::JwkSet { keys: vec![] })));
    /// let keys = cache.current().await.unwrap();
    /// # let _ = keys;
    /// # });
    /// ```
    pub async fn current(&self) -> Result<Arc<VerificationKeys>, KeyFetchError> {
        {
            let c = self.cached.read().await;
            if c.fetched_at.is_some_and(|at| at.elapsed() < self.max_age) {
                return Ok(c.set.clone());
            }
        }
        self.refresh().await
    }

    /// Refetches because a token named an unknown `kid`, unless a fetch happened within the
    /// minimum interval (then the cached set is returned). Concurrent callers share one fetch.
    ///
    /// ```
    /// # use adieu_rp::keys::{KeyCache, StaticJwks};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # let cache = KeyCache::new(std::sync::Arc::new(StaticJwks(jsonwebtoken::jwk::JwkSet { keys: vec![] })));
    /// let keys = cache.refresh().await.unwrap();
    /// # let _ = keys;
    /// # });
    /// ```
    pub async fn refresh(&self) -> Result<Arc<VerificationKeys>, KeyFetchError> {
        let _one_at_a_time = self.refreshing.lock().await;
        {
            let c = self.cached.read().await;
            if let Some(at) = c.fetched_at
                && at.elapsed() < self.min_refresh_interval
            {
                return Ok(c.set.clone());
            }
        }
        let fetched = self.source.fetch().await;
        let mut c = self.cached.write().await;
        match fetched {
            Ok(set) => {
                c.set = Arc::new(VerificationKeys::new(set));
                c.fetched_at = Some(Instant::now());
                c.stale = false;
                Ok(c.set.clone())
            }
            Err(e) => {
                if c.fetched_at.is_some() {
                    // Keep using the last good set; try again after the interval.
                    c.fetched_at = Some(Instant::now());
                    c.stale = true;
                    tracing::warn!(error = %e, "refreshing the issuer's keys failed; keeping the cached set");
                    Ok(c.set.clone())
                } else {
                    Err(e)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestKey;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Debug, Default)]
    struct Counting {
        sets: std::sync::Mutex<Vec<JwkSet>>,
        fetches: AtomicUsize,
    }

    #[async_trait]
    impl JwksSource for Counting {
        async fn fetch(&self) -> Result<JwkSet, KeyFetchError> {
            self.fetches.fetch_add(1, Ordering::SeqCst);
            let sets = self.sets.lock().unwrap();
            sets.last().cloned().ok_or_else(|| KeyFetchError::new("offline"))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn refetch_on_unknown_kid_is_rate_limited() {
        let source = Arc::new(Counting::default());
        let k1 = TestKey::ec("k1");
        source.sets.lock().unwrap().push(JwkSet { keys: vec![k1.jwk(None)] });
        let cache = KeyCache::with_min_refresh_interval(source.clone(), Duration::from_secs(10));
        cache.current().await.unwrap();
        for _ in 0..100 {
            cache.refresh().await.unwrap();
        }
        assert_eq!(source.fetches.load(Ordering::SeqCst), 1, "a flood of unknown kids causes no extra fetch");
        // Rotation: a new key is published; after the interval a refresh picks it up.
        let k2 = TestKey::ec("k2");
        source.sets.lock().unwrap().push(JwkSet { keys: vec![k2.jwk(None)] });
        tokio::time::advance(Duration::from_secs(11)).await;
        let set = cache.refresh().await.unwrap();
        assert!(set.find("k2").is_some());
        assert!(set.find("k1").is_none(), "a removed key is gone after the refresh");
        assert_eq!(source.fetches.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_refresh_keeps_the_last_good_set() {
        let source = Arc::new(Counting::default());
        assert!(KeyCache::new(source.clone()).current().await.is_err(), "no set at all is an error");
        let k1 = TestKey::ec("k1");
        source.sets.lock().unwrap().push(JwkSet { keys: vec![k1.jwk(None)] });
        let cache = KeyCache::new(source.clone());
        cache.current().await.unwrap();
        source.sets.lock().unwrap().clear();
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(cache.refresh().await.unwrap().find("k1").is_some());
    }
}

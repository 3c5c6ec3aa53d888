//! Replay protection (BC-RP-08): a `jti` is remembered once its logout succeeded, until the
//! token's `exp` (plus leeway) has passed. Recording only after success means a provider's retry
//! after a failed logout is not mistaken for a replay.

use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Mutex;

/// Where used `jti`s are kept. Shared stores let several application replicas share it.
///
/// ```
/// use adieu_rp::replay::{MemoryReplayCache, ReplayCache};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let cache = MemoryReplayCache::default();
/// cache.remember("https://op", "jti-1", 2_000, 1_000).await.unwrap();
/// assert!(cache.seen("https://op", "jti-1", 1_500).await.unwrap());
/// assert!(!cache.seen("https://op", "jti-1", 2_001).await.unwrap());
/// # });
/// ```
#[async_trait]
pub trait ReplayCache: Send + Sync + std::fmt::Debug {
    /// Whether `jti` of `issuer` was remembered and has not expired at `now` (seconds).
    async fn seen(&self, issuer: &str, jti: &str, now: i64) -> Result<bool, ReplayError>;
    /// Remembers `jti` until `until` (seconds since the epoch).
    async fn remember(&self, issuer: &str, jti: &str, until: i64, now: i64) -> Result<(), ReplayError>;
}

crate::sourced::sourced_error!(
    /// The replay store failed; the database's error is its `source`.
    ReplayError,
    "replay cache",
    "replay::ReplayError"
);

/// An in-memory replay cache for a single process, bounded by expiry (expired entries are
/// dropped as new ones arrive).
///
/// ```
/// let cache = adieu_rp::replay::MemoryReplayCache::default();
/// # let _ = cache;
/// ```
#[derive(Debug, Default)]
pub struct MemoryReplayCache {
    entries: Mutex<HashMap<(String, String), i64>>,
}

#[async_trait]
impl ReplayCache for MemoryReplayCache {
    async fn seen(&self, issuer: &str, jti: &str, now: i64) -> Result<bool, ReplayError> {
        let m = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        Ok(m.get(&(issuer.to_owned(), jti.to_owned())).is_some_and(|until| *until >= now))
    }

    async fn remember(&self, issuer: &str, jti: &str, until: i64, now: i64) -> Result<(), ReplayError> {
        let mut m = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() >= 1024 && m.len().is_power_of_two() {
            m.retain(|_, u| *u >= now);
        }
        m.insert((issuer.to_owned(), jti.to_owned()), until);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bc_rp_08_a_remembered_jti_is_seen_until_it_expires_and_issuers_are_separate() {
        let c = MemoryReplayCache::default();
        assert!(!c.seen("a", "j", 10).await.unwrap());
        c.remember("a", "j", 100, 10).await.unwrap();
        assert!(c.seen("a", "j", 100).await.unwrap());
        assert!(!c.seen("b", "j", 50).await.unwrap());
        assert!(!c.seen("a", "j", 101).await.unwrap());
    }

    #[tokio::test]
    async fn expired_entries_are_dropped_as_the_cache_grows() {
        let c = MemoryReplayCache::default();
        for i in 0..5000 {
            c.remember("a", &format!("j{i}"), i, i).await.unwrap();
        }
        assert!(c.entries.lock().unwrap().len() < 5000);
    }
}

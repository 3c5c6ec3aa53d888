//! Sign-in attempt limiting: per account (failed attempts for one submitted username) and per
//! client address (all attempts), in fixed windows.
//!
//! The counters live in the database ([`RateLimitStore`]), so every replica on one PostgreSQL
//! database counts against the same budget (an atomic upsert per hit); with SQLite they are in the
//! database file, and so also survive a restart. Keyed by the *submitted* name, so a name that does
//! not exist is limited the same way as one that does (no account enumeration through the
//! limiter). The name is stored only as a SHA-256 hash (people type passwords into the name field),
//! and a window's row is deleted by the periodic purge once it has ended.

use crate::crypto::hash_secret;
use adieu_core::store::{RateLimitStore, StoreResult};
use adieu_core::time::UnixMillis;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// Counts sign-in attempts.
#[derive(Clone)]
pub struct LoginLimiter {
    store: Arc<dyn RateLimitStore>,
    max_failures_per_account: u32,
    max_attempts_per_address: u32,
    window: Duration,
}

impl std::fmt::Debug for LoginLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginLimiter")
            .field("max_failures_per_account", &self.max_failures_per_account)
            .field("max_attempts_per_address", &self.max_attempts_per_address)
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

/// Why an attempt is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limited {
    /// Too many failures for this username.
    Account,
    /// Too many attempts from this address.
    Address,
}

fn account_key(login: &str) -> String {
    format!("login-account:{}", hash_secret(&login.trim().to_lowercase()))
}

fn address_key(addr: IpAddr) -> String {
    format!("login-address:{addr}")
}

impl LoginLimiter {
    /// A limiter with the given limits, counting in `store`.
    pub fn new(
        store: Arc<dyn RateLimitStore>,
        max_failures_per_account: u32,
        max_attempts_per_address: u32,
        window: Duration,
    ) -> Self {
        LoginLimiter { store, max_failures_per_account, max_attempts_per_address, window }
    }

    /// Counts an attempt from `addr` for `login` and says whether it may proceed to the password
    /// check. A refused account costs the address nothing; a refused address is counted.
    pub async fn attempt(&self, addr: IpAddr, login: &str, now: UnixMillis) -> StoreResult<Result<(), Limited>> {
        if self.store.rate_limit_count(&account_key(login), now).await? >= self.max_failures_per_account {
            return Ok(Err(Limited::Account));
        }
        let hit = self.store.rate_limit_hit(&address_key(addr), self.window, now).await?;
        if hit.count > self.max_attempts_per_address {
            return Ok(Err(Limited::Address));
        }
        Ok(Ok(()))
    }

    /// Records a failed password for `login`.
    pub async fn failed(&self, login: &str, now: UnixMillis) -> StoreResult<()> {
        self.store.rate_limit_hit(&account_key(login), self.window, now).await?;
        Ok(())
    }

    /// A successful sign-in clears the account's failures.
    pub async fn succeeded(&self, login: &str) -> StoreResult<()> {
        self.store.rate_limit_clear(&account_key(login)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use adieu_store::SqliteStore;

    const ADDR: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    async fn limiter(failures: u32, attempts: u32) -> (LoginLimiter, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = Arc::new(SqliteStore::open(&url).await.unwrap());
        (LoginLimiter::new(store, failures, attempts, Duration::from_secs(60)), dir)
    }

    #[tokio::test]
    async fn account_is_refused_after_max_failures_until_the_window_passes() {
        let (l, _dir) = limiter(3, 100).await;
        let t = UnixMillis(0);
        for _ in 0..3 {
            l.attempt(ADDR, "Alice", t).await.unwrap().unwrap();
            l.failed("alice", t).await.unwrap();
        }
        assert_eq!(l.attempt(ADDR, "ALICE", t).await.unwrap(), Err(Limited::Account));
        assert_eq!(l.attempt(ADDR, " alice ", t).await.unwrap(), Err(Limited::Account), "trimmed");
        assert_eq!(l.attempt(ADDR, "bob", t).await.unwrap(), Ok(()));
        assert_eq!(l.attempt(ADDR, "alice", UnixMillis(60_000)).await.unwrap(), Ok(()));
    }

    #[tokio::test]
    async fn address_is_refused_after_max_attempts() {
        let (l, _dir) = limiter(100, 2).await;
        let t = UnixMillis(0);
        assert!(l.attempt(ADDR, "a", t).await.unwrap().is_ok());
        assert!(l.attempt(ADDR, "b", t).await.unwrap().is_ok());
        assert_eq!(l.attempt(ADDR, "c", t).await.unwrap(), Err(Limited::Address));
        let other = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
        assert!(l.attempt(other, "c", t).await.unwrap().is_ok(), "addresses are apart");
    }

    #[tokio::test]
    async fn success_clears_account_failures() {
        let (l, _dir) = limiter(2, 100).await;
        let t = UnixMillis(0);
        l.failed("a", t).await.unwrap();
        l.succeeded("a").await.unwrap();
        l.failed("a", t).await.unwrap();
        assert!(l.attempt(ADDR, "a", t).await.unwrap().is_ok());
    }

    #[test]
    fn the_submitted_name_is_never_stored_in_clear() {
        let k = account_key("My Secret Password");
        assert!(!k.to_lowercase().contains("secret"), "{k}");
        assert_eq!(k, account_key("  my secret password "));
    }
}

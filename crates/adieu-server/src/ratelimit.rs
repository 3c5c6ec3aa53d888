//! Sign-in attempt limiting: per account (attempts that did not succeed, one budget whichever
//! identifier was typed) and per client address (all attempts; IPv6 per /64), in fixed windows.
//! An attempt is reserved atomically *before* the password is checked and refunded on success,
//! so a burst of concurrent attempts cannot outrun the limit.
//!
//! The counters live in the database ([`RateLimitStore`]), so every replica on one PostgreSQL
//! database counts against the same budget (an atomic upsert per hit); with SQLite they are in the
//! database file, and so also survive a restart. Keyed by the *submitted* name, so a name that does
//! not exist is limited the same way as one that does (no account enumeration through the
//! limiter); an existing account is keyed by its id. The name is stored only as a SHA-256 hash (people type passwords into the name field),
//! and a window's row is deleted by the periodic purge once it has ended.

use crate::crypto::hash_secret;
use adieu_core::id::UserId;
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
    /// Too many failures for this account.
    Account,
    /// Too many attempts from this address.
    Address,
}

/// Whose budget an attempt spends: one budget per account, whichever of its identifiers (username
/// or email) was typed; a name that matches no account has a budget of its own, so the limiter
/// answers the same whether an account exists or not.
#[derive(Debug, Clone, Copy)]
pub enum Account<'a> {
    /// An existing account.
    User(&'a UserId),
    /// What was typed, when it names no account.
    Unknown(&'a str),
}

impl Account<'_> {
    fn key(self) -> String {
        match self {
            Account::User(id) => format!("login-account:user:{}", hash_secret(id.as_str())),
            Account::Unknown(login) => format!("login-account:{}", hash_secret(&login.trim().to_lowercase())),
        }
    }
}

/// The budget an address spends: an IPv4 address on its own; IPv6 by its /64, which one
/// subscriber usually holds whole (an IPv4-mapped IPv6 address counts as the IPv4 address).
fn address_key(addr: IpAddr) -> String {
    match adieu_core::net::client_bucket(addr) {
        IpAddr::V4(v4) => format!("login-address:{v4}"),
        IpAddr::V6(net) => format!("login-address:{net}/64"),
    }
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

    /// Reserves an attempt from `addr` on `account` before the password is checked, and says
    /// whether the check may run. Both counters are taken with one atomic hit each, so of any
    /// number of attempts sent at once at most `max_failures_per_account` reach the password
    /// check in a window; [`LoginLimiter::succeeded`] refunds the account's budget. Every
    /// attempt counts against the address, refused ones included.
    pub async fn reserve(
        &self,
        addr: IpAddr,
        account: Account<'_>,
        now: UnixMillis,
    ) -> StoreResult<Result<(), Limited>> {
        let hit = self.store.rate_limit_hit(&address_key(addr), self.window, now).await?;
        if hit.count > self.max_attempts_per_address {
            return Ok(Err(Limited::Address));
        }
        let hit = self.store.rate_limit_hit(&account.key(), self.window, now).await?;
        if hit.count > self.max_failures_per_account {
            return Ok(Err(Limited::Account));
        }
        Ok(Ok(()))
    }

    /// Counts a sign-in request stored for `addr` while it waits (an anonymous `/authorize`, or an
    /// upstream sign-in) and says whether it may be stored: at most `max` per address in `ttl`,
    /// so one client cannot fill the database with pending requests.
    pub async fn pending_request(&self, addr: IpAddr, max: u32, ttl: Duration, now: UnixMillis) -> StoreResult<bool> {
        let key = format!("pending-{}", address_key(addr));
        Ok(self.store.rate_limit_hit(&key, ttl, now).await?.count <= max)
    }

    /// A successful sign-in clears the account's budget (its reserved attempts are refunded).
    pub async fn succeeded(&self, account: Account<'_>) -> StoreResult<()> {
        self.store.rate_limit_clear(&account.key()).await
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
    async fn account_is_refused_after_max_reservations_until_the_window_passes() {
        let (l, _dir) = limiter(3, 100).await;
        let t = UnixMillis(0);
        for _ in 0..3 {
            l.reserve(ADDR, Account::Unknown("Alice"), t).await.unwrap().unwrap();
        }
        assert_eq!(l.reserve(ADDR, Account::Unknown("ALICE"), t).await.unwrap(), Err(Limited::Account));
        assert_eq!(l.reserve(ADDR, Account::Unknown(" alice "), t).await.unwrap(), Err(Limited::Account), "trimmed");
        assert_eq!(l.reserve(ADDR, Account::Unknown("bob"), t).await.unwrap(), Ok(()));
        assert_eq!(l.reserve(ADDR, Account::Unknown("alice"), UnixMillis(60_000)).await.unwrap(), Ok(()));
    }

    #[tokio::test]
    async fn one_budget_per_account_whichever_identifier_was_typed() {
        let (l, _dir) = limiter(2, 100).await;
        let id = UserId::new("u1");
        let t = UnixMillis(0);
        // The login form resolves the typed username or email to the account first.
        l.reserve(ADDR, Account::User(&id), t).await.unwrap().unwrap();
        l.reserve(ADDR, Account::User(&id), t).await.unwrap().unwrap();
        assert_eq!(l.reserve(ADDR, Account::User(&id), t).await.unwrap(), Err(Limited::Account));
        assert_eq!(l.reserve(ADDR, Account::User(&UserId::new("u2")), t).await.unwrap(), Ok(()));
    }

    #[tokio::test]
    async fn concurrent_reservations_never_exceed_the_account_limit() {
        let (l, _dir) = limiter(5, 1000).await;
        let id = UserId::new("u1");
        let tasks: Vec<_> = (0..100)
            .map(|_| {
                let (l, id) = (l.clone(), id.clone());
                tokio::spawn(async move { l.reserve(ADDR, Account::User(&id), UnixMillis(0)).await.unwrap() })
            })
            .collect();
        let mut allowed = 0;
        for t in tasks {
            if t.await.unwrap().is_ok() {
                allowed += 1;
            }
        }
        assert_eq!(allowed, 5);
    }

    #[tokio::test]
    async fn address_is_refused_after_max_attempts() {
        let (l, _dir) = limiter(100, 2).await;
        let t = UnixMillis(0);
        assert!(l.reserve(ADDR, Account::Unknown("a"), t).await.unwrap().is_ok());
        assert!(l.reserve(ADDR, Account::Unknown("b"), t).await.unwrap().is_ok());
        assert_eq!(l.reserve(ADDR, Account::Unknown("c"), t).await.unwrap(), Err(Limited::Address));
        let other = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
        assert!(l.reserve(other, Account::Unknown("c"), t).await.unwrap().is_ok(), "addresses are apart");
    }

    #[tokio::test]
    async fn ipv6_addresses_share_the_budget_of_their_64() {
        let (l, _dir) = limiter(100, 2).await;
        let t = UnixMillis(0);
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other_net: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert!(l.reserve(a, Account::Unknown("x"), t).await.unwrap().is_ok());
        assert!(l.reserve(b, Account::Unknown("y"), t).await.unwrap().is_ok());
        assert_eq!(l.reserve(b, Account::Unknown("z"), t).await.unwrap(), Err(Limited::Address));
        assert!(l.reserve(other_net, Account::Unknown("z"), t).await.unwrap().is_ok());
        assert_eq!(address_key("::ffff:192.0.2.7".parse().unwrap()), address_key("192.0.2.7".parse().unwrap()));
    }

    #[tokio::test]
    async fn success_refunds_the_account_budget() {
        let (l, _dir) = limiter(2, 100).await;
        let t = UnixMillis(0);
        let a = Account::Unknown("a");
        l.reserve(ADDR, a, t).await.unwrap().unwrap();
        l.succeeded(a).await.unwrap();
        l.reserve(ADDR, a, t).await.unwrap().unwrap();
        assert!(l.reserve(ADDR, a, t).await.unwrap().is_ok());
    }

    #[tokio::test]
    async fn pending_requests_per_address_are_bounded() {
        let (l, _dir) = limiter(5, 5).await;
        let ttl = Duration::from_secs(600);
        for _ in 0..3 {
            assert!(l.pending_request(ADDR, 3, ttl, UnixMillis(0)).await.unwrap());
        }
        assert!(!l.pending_request(ADDR, 3, ttl, UnixMillis(0)).await.unwrap());
        assert!(l.pending_request(ADDR, 3, ttl, UnixMillis(600_000)).await.unwrap(), "a new window");
    }

    #[test]
    fn the_submitted_name_is_never_stored_in_clear() {
        let k = Account::Unknown("My Secret Password").key();
        assert!(!k.to_lowercase().contains("secret"), "{k}");
        assert_eq!(k, Account::Unknown("  my secret password ").key());
    }
}

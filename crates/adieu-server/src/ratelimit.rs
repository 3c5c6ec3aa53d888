//! Sign-in attempt limiting: per account (failed attempts for one submitted username) and per
//! client address (all attempts). Fixed windows, in memory, bounded in size.
//!
//! Keyed by the *submitted* name, so a name that does not exist is limited the same way as one that
//! does (no account enumeration through the limiter).

use adieu_core::time::UnixMillis;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

const MAX_ENTRIES: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Window {
    started: UnixMillis,
    count: u32,
}

/// Counts sign-in attempts.
#[derive(Debug)]
pub struct LoginLimiter {
    max_failures_per_account: u32,
    max_attempts_per_address: u32,
    window: Duration,
    accounts: Mutex<HashMap<String, Window>>,
    addresses: Mutex<HashMap<IpAddr, Window>>,
}

/// Why an attempt is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limited {
    /// Too many failures for this username.
    Account,
    /// Too many attempts from this address.
    Address,
}

fn bump<K: std::hash::Hash + Eq + Clone>(
    map: &mut HashMap<K, Window>,
    key: &K,
    now: UnixMillis,
    window: Duration,
) -> u32 {
    if map.len() >= MAX_ENTRIES {
        let cutoff = now.minus(window);
        map.retain(|_, w| w.started > cutoff);
        if map.len() >= MAX_ENTRIES {
            // Still full of live windows: start over rather than grow without bound. Filling the map
            // takes far more attempts than the per-address limit lets one address make.
            map.clear();
        }
    }
    let w = map.entry(key.clone()).or_insert(Window { started: now, count: 0 });
    if now >= w.started.plus(window) {
        *w = Window { started: now, count: 0 };
    }
    w.count = w.count.saturating_add(1);
    w.count
}

fn current<K: std::hash::Hash + Eq>(map: &HashMap<K, Window>, key: &K, now: UnixMillis, window: Duration) -> u32 {
    map.get(key).filter(|w| now < w.started.plus(window)).map_or(0, |w| w.count)
}

impl LoginLimiter {
    /// A limiter with the given limits.
    pub fn new(max_failures_per_account: u32, max_attempts_per_address: u32, window: Duration) -> Self {
        LoginLimiter {
            max_failures_per_account,
            max_attempts_per_address,
            window,
            accounts: Mutex::default(),
            addresses: Mutex::default(),
        }
    }

    /// Counts an attempt from `addr` for `login` and says whether it may proceed to the password check.
    pub fn attempt(&self, addr: IpAddr, login: &str, now: UnixMillis) -> Result<(), Limited> {
        let key = login.trim().to_lowercase();
        {
            let accounts = self.accounts.lock().unwrap_or_else(|p| p.into_inner());
            if current(&accounts, &key, now, self.window) >= self.max_failures_per_account {
                return Err(Limited::Account);
            }
        }
        let mut addresses = self.addresses.lock().unwrap_or_else(|p| p.into_inner());
        if bump(&mut addresses, &addr, now, self.window) > self.max_attempts_per_address {
            return Err(Limited::Address);
        }
        Ok(())
    }

    /// Records a failed password for `login`.
    pub fn failed(&self, login: &str, now: UnixMillis) {
        let key = login.trim().to_lowercase();
        let mut accounts = self.accounts.lock().unwrap_or_else(|p| p.into_inner());
        bump(&mut accounts, &key, now, self.window);
    }

    /// A successful sign-in clears the account's failures.
    pub fn succeeded(&self, login: &str) {
        let key = login.trim().to_lowercase();
        self.accounts.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADDR: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn account_is_refused_after_max_failures_until_the_window_passes() {
        let l = LoginLimiter::new(3, 100, Duration::from_secs(60));
        let t = UnixMillis(0);
        for _ in 0..3 {
            l.attempt(ADDR, "Alice", t).unwrap();
            l.failed("alice", t);
        }
        assert_eq!(l.attempt(ADDR, "ALICE", t), Err(Limited::Account));
        assert_eq!(l.attempt(ADDR, "bob", t), Ok(()));
        assert_eq!(l.attempt(ADDR, "alice", UnixMillis(60_000)), Ok(()));
    }

    #[test]
    fn address_is_refused_after_max_attempts() {
        let l = LoginLimiter::new(100, 2, Duration::from_secs(60));
        let t = UnixMillis(0);
        assert!(l.attempt(ADDR, "a", t).is_ok());
        assert!(l.attempt(ADDR, "b", t).is_ok());
        assert_eq!(l.attempt(ADDR, "c", t), Err(Limited::Address));
    }

    #[test]
    fn success_clears_account_failures() {
        let l = LoginLimiter::new(2, 100, Duration::from_secs(60));
        let t = UnixMillis(0);
        l.failed("a", t);
        l.succeeded("a");
        l.failed("a", t);
        assert!(l.attempt(ADDR, "a", t).is_ok());
    }
}

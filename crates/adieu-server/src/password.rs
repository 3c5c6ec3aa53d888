//! Password hashing with argon2id (PHC strings), off the async threads and bounded in concurrency:
//! each hash takes ~20 ms of CPU and ~19 MiB of memory.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use std::sync::{Arc, Mutex, mpsc};
use tokio::sync::oneshot;
use zeroize::Zeroizing;

/// Hashes and verifies passwords on a small pool of dedicated threads; clones share the pool.
///
/// Dedicated threads (rather than `spawn_blocking`) keep memory bounded: each argon2id run
/// allocates ~19 MiB, and the allocator keeps a per-thread arena for every thread that ever did,
/// so hashing on the ever-changing blocking pool made the resident size grow with it.
#[derive(Debug, Clone)]
pub struct Passwords {
    pool: Arc<Pool>,
    dummy_hash: Arc<str>,
}

/// Shortest password accepted when setting one.
pub const MIN_PASSWORD_LEN: usize = 8;

/// A password that cannot be set.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PasswordError {
    /// Shorter than [`MIN_PASSWORD_LEN`] characters.
    #[error("the password must have at least {MIN_PASSWORD_LEN} characters")]
    TooShort,
    /// Longer than 1024 bytes (hashing cost is bounded).
    #[error("the password is too long")]
    TooLong,
    /// Hashing failed.
    #[error("password hashing failed")]
    Hashing,
}

type Job = Box<dyn FnOnce() + Send>;

#[derive(Debug)]
struct Pool {
    jobs: Mutex<mpsc::Sender<Job>>,
}

impl Pool {
    fn new(threads: usize) -> Pool {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            // The threads end when every `Passwords` clone is gone (the channel closes).
            let _ = std::thread::Builder::new().name(format!("adieu-argon2-{i}")).spawn(move || {
                loop {
                    let job = match rx.lock() {
                        Ok(r) => r.recv(),
                        Err(_) => return,
                    };
                    match job {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                }
            });
        }
        Pool { jobs: Mutex::new(tx) }
    }

    async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        self.jobs.lock().ok()?.send(job).ok()?;
        rx.await.ok()
    }
}

fn hash_now(password: &str) -> Result<String, PasswordError> {
    let mut bytes = [0u8; 16];
    SystemRandom::new().fill(&mut bytes).map_err(|_| PasswordError::Hashing)?;
    let salt = SaltString::encode_b64(&bytes).map_err(|_| PasswordError::Hashing)?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| PasswordError::Hashing)
}

impl Passwords {
    /// At most `concurrency` hashes run at once, each on its own thread.
    pub fn new(concurrency: usize) -> Self {
        // Invariant: hashing a fixed string with a fresh salt cannot fail.
        let dummy = hash_now("adieu-dummy-password").expect("argon2 works");
        Passwords { pool: Arc::new(Pool::new(concurrency)), dummy_hash: dummy.into() }
    }

    /// Checks the policy and hashes.
    pub async fn hash(&self, password: &str) -> Result<String, PasswordError> {
        check_policy(password)?;
        let password = Zeroizing::new(password.to_owned());
        self.pool.run(move || hash_now(&password)).await.ok_or(PasswordError::Hashing)?
    }

    /// Verifies `password` against `hash`; with `hash = None` (unknown user) it spends the same time
    /// on a dummy hash and answers false, so timing does not tell which accounts exist.
    pub async fn verify(&self, password: &str, hash: Option<&str>) -> bool {
        if password.len() > 1024 {
            return false;
        }
        let known = hash.is_some();
        let hash = hash.map(str::to_owned).unwrap_or_else(|| self.dummy_hash.to_string());
        let password = Zeroizing::new(password.to_owned());
        let ok = self
            .pool
            .run(move || {
                PasswordHash::new(&hash)
                    .map(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
                    .unwrap_or(false)
            })
            .await
            .unwrap_or(false);
        known && ok
    }
}

/// The password policy: 8 to 1024 characters (NIST SP 800-63B: length, no composition rules).
pub fn check_policy(password: &str) -> Result<(), PasswordError> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(PasswordError::TooShort);
    }
    if password.len() > 1024 {
        return Err(PasswordError::TooLong);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_verifies_and_wrong_password_does_not() {
        let p = Passwords::new(2);
        let h = p.hash("correct horse").await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(p.verify("correct horse", Some(&h)).await);
        assert!(!p.verify("correct hors", Some(&h)).await);
    }

    #[tokio::test]
    async fn unknown_user_never_verifies_even_with_the_dummy_password() {
        let p = Passwords::new(1);
        assert!(!p.verify("adieu-dummy-password", None).await);
    }

    #[tokio::test]
    async fn policy_rejects_short_and_huge_passwords() {
        let p = Passwords::new(1);
        assert_eq!(p.hash("short").await.unwrap_err(), PasswordError::TooShort);
        assert_eq!(p.hash(&"x".repeat(2000)).await.unwrap_err(), PasswordError::TooLong);
    }
}

//! Password hashing with argon2id (PHC strings), off the async threads and bounded in concurrency:
//! each hash takes ~20 ms of CPU and ~19 MiB of memory.

use argon2::Argon2;
use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Block, Params, Version};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use std::cell::RefCell;
use std::sync::{Arc, Mutex, OnceLock, mpsc};
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
    /// A hash to verify against for unknown users; made on the pool the first time it is needed.
    dummy_hash: Arc<OnceLock<String>>,
    /// Password checks run so far (`adieu_password_checks_total`).
    checks: Arc<std::sync::atomic::AtomicU64>,
}

/// Longest password accepted when setting one, in characters (hashing cost is bounded).
pub const MAX_PASSWORD_LEN: usize = 1024;

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

thread_local! {
    /// The argon2 working memory of this hashing thread, allocated once and reused: freeing and
    /// re-allocating 19 MiB per hash is what made the allocator keep large idle pools.
    static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

fn compute(argon: &Argon2<'_>, password: &[u8], salt: &[u8], out: &mut [u8]) -> Result<(), PasswordError> {
    let blocks = argon.params().block_count();
    MEMORY.with(|m| {
        let mut m = m.borrow_mut();
        if m.len() < blocks {
            m.resize(blocks, Block::default());
        }
        argon.hash_password_into_with_memory(password, salt, out, &mut m[..blocks]).map_err(|_| PasswordError::Hashing)
    })
}

/// argon2id with the default parameters (m = 19 MiB, t = 2, p = 1), as a PHC string.
fn hash_now(password: &str) -> Result<String, PasswordError> {
    let mut salt = [0u8; 16];
    SystemRandom::new().fill(&mut salt).map_err(|_| PasswordError::Hashing)?;
    let argon = Argon2::default();
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    compute(&argon, password.as_bytes(), &salt, &mut out)?;
    let salt_string = SaltString::encode_b64(&salt).map_err(|_| PasswordError::Hashing)?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(argon.params()).map_err(|_| PasswordError::Hashing)?,
        salt: Some(salt_string.as_salt()),
        hash: Some(Output::new(&out).map_err(|_| PasswordError::Hashing)?),
    };
    Ok(phc.to_string())
}

/// Verifies against a PHC string with whatever parameters it names (argon2id/i/d).
fn verify_now(password: &str, phc: &str) -> bool {
    let check = || -> Option<bool> {
        let parsed = PasswordHash::new(phc).ok()?;
        let algorithm = Algorithm::try_from(parsed.algorithm).ok()?;
        let version = parsed.version.map(Version::try_from).transpose().ok()?.unwrap_or_default();
        let params = Params::try_from(&parsed).ok()?;
        // Refuse absurd stored parameters rather than allocate for them.
        if params.m_cost() > 256 * 1024 || params.t_cost() > 16 {
            return None;
        }
        let argon = Argon2::new(algorithm, version, params);
        let mut salt_buf = [0u8; 64];
        let salt = parsed.salt?.decode_b64(&mut salt_buf).ok()?;
        let expected = parsed.hash?;
        let mut out = vec![0u8; expected.len()];
        compute(&argon, password.as_bytes(), salt, &mut out).ok()?;
        Some(aws_lc_rs::constant_time::verify_slices_are_equal(&out, expected.as_bytes()).is_ok())
    };
    check().unwrap_or(false)
}

impl Passwords {
    /// At most `concurrency` hashes run at once, each on its own thread.
    pub fn new(concurrency: usize) -> Self {
        Passwords { pool: Arc::new(Pool::new(concurrency)), dummy_hash: Arc::default(), checks: Arc::default() }
    }

    /// Checks the policy and hashes.
    pub async fn hash(&self, password: &str) -> Result<String, PasswordError> {
        check_policy(password)?;
        let password = Zeroizing::new(password.to_owned());
        self.pool.run(move || hash_now(&password)).await.ok_or(PasswordError::Hashing)?
    }

    /// How many password checks ([`Passwords::verify`]) ran since the start.
    pub fn checks(&self) -> u64 {
        self.checks.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Verifies `password` against `hash`; with `hash = None` (unknown user) or a hash that is not a
    /// PHC string (an account without a password) it spends the same time on a dummy hash and
    /// answers false, so timing does not tell which accounts exist or have a password.
    pub async fn verify(&self, password: &str, hash: Option<&str>) -> bool {
        if password.len() > 4 * MAX_PASSWORD_LEN {
            return false;
        }
        self.checks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let known = hash.map(str::to_owned);
        let dummy = self.dummy_hash.clone();
        let password = Zeroizing::new(password.to_owned());
        self.pool
            .run(move || match &known {
                Some(hash) if hash.starts_with('$') => verify_now(&password, hash),
                _ => {
                    // Unknown user, or an account without a password (`NO_PASSWORD`, made by an
                    // upstream sign-in): the same work on a dummy hash, and never a match.
                    let dummy = dummy.get_or_init(|| hash_now("adieu-dummy-password").unwrap_or_default());
                    let _ = verify_now(&password, dummy);
                    false
                }
            })
            .await
            .unwrap_or(false)
    }
}

/// The password policy: 8 to 1024 characters (NIST SP 800-63B: length, no composition rules).
pub fn check_policy(password: &str) -> Result<(), PasswordError> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(PasswordError::TooShort);
    }
    if password.chars().count() > MAX_PASSWORD_LEN {
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

    /// The reused-memory implementation writes and reads standard PHC strings.
    #[test]
    fn phc_strings_interoperate_with_the_stock_argon2_implementation() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let ours = hash_now("interop password").unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default().verify_password(b"interop password", &parsed).is_ok());
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let stock = Argon2::default().hash_password(b"stock password", &salt).unwrap().to_string();
        assert!(verify_now("stock password", &stock));
        assert!(!verify_now("Stock password", &stock));
        assert!(
            !verify_now("x", "$argon2id$v=19$m=99999999,t=2,p=1$c2FsdHNhbHQ$aGFzaA"),
            "absurd parameters are refused"
        );
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

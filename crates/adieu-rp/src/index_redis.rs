//! Session index, logged-out markers and `jti` replay cache in Redis (feature `redis`), shared by
//! every replica of an application.
//!
//! Keys (under a prefix, `adieu-rp:` by default; issuer and subject values are JSON-encoded into
//! the key, so no separator can be forged):
//! - `s:{session_id}`: a hash with the login (`iss`, `sub`, `sid`, `at`);
//! - `sid:["iss","sid"]`: a set of session ids; `sub:["iss","sub"]`: a sorted set of session ids
//!   scored by creation time;
//! - `out:{session_id}`: a logged-out marker; `jti:["iss","jti"]`: a used `jti`.
//!
//! Every key expires: index entries after the session TTL (default 30 days, so sessions the
//! application never forgets do not stay forever), markers after the marker TTL, `jti`s at the
//! token's acceptance limit. Lookups re-check every candidate against its login record with
//! [`crate::index::matches`], so the answer is the same as the in-memory index's.

use crate::index::{
    DEFAULT_MARKER_TTL_SECS, IndexError, LoginRecord, LogoutMarkerStore, SessionEnder, SessionIndex, matches,
};
use crate::replay::{ReplayCache, ReplayError};
use crate::verify::{LogoutSubject, VerifiedLogoutToken};
use async_trait::async_trait;
use fred::prelude::{
    Client, ClientLike, Config, Expiration, HashesInterface, KeysInterface, ReconnectPolicy, SetsInterface,
    SortedSetsInterface, TransactionInterface,
};
use std::collections::HashMap;

fn err(e: fred::error::Error) -> IndexError {
    IndexError::with_source(format!("redis: {e}"), e)
}

/// A session index (and marker store and replay cache) in Redis.
///
/// ```no_run
/// # async fn run() -> Result<(), adieu_rp::index::IndexError> {
/// use std::sync::Arc;
/// let redis = Arc::new(adieu_rp::index_redis::RedisSessionIndex::connect("redis://127.0.0.1:6379").await?);
/// // The same value is the index, the lazy ender (markers) and the replay cache:
/// let index: Arc<dyn adieu_rp::index::SessionIndex> = redis.clone();
/// let markers: Arc<dyn adieu_rp::index::LogoutMarkerStore> = redis.clone();
/// let replay: Arc<dyn adieu_rp::replay::ReplayCache> = redis;
/// # let _ = (index, markers, replay); Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisSessionIndex {
    client: Client,
    prefix: String,
    session_ttl_secs: i64,
    marker_ttl_secs: i64,
}

impl std::fmt::Debug for RedisSessionIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSessionIndex").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

impl RedisSessionIndex {
    /// Connects to `url` (`redis://[user:password@]host:port[/db]`), reconnecting with backoff
    /// when the connection drops.
    ///
    /// ```no_run
    /// # async fn run() {
    /// let index = adieu_rp::index_redis::RedisSessionIndex::connect("redis://127.0.0.1:6379/0").await.unwrap();
    /// # let _ = index; }
    /// ```
    pub async fn connect(url: &str) -> Result<Self, IndexError> {
        let config = Config::from_url(url).map_err(err)?;
        let client = fred::types::Builder::from_config(config)
            .set_policy(ReconnectPolicy::new_exponential(0, 100, 5_000, 2))
            .build()
            .map_err(err)?;
        client.init().await.map_err(err)?;
        Ok(Self::with_client(client))
    }

    /// Uses an existing, initialised client.
    ///
    /// ```no_run
    /// # fn run(client: fred::prelude::Client) {
    /// let index = adieu_rp::index_redis::RedisSessionIndex::with_client(client);
    /// # let _ = index; }
    /// ```
    pub fn with_client(client: Client) -> Self {
        RedisSessionIndex {
            client,
            prefix: "adieu-rp:".into(),
            session_ttl_secs: DEFAULT_MARKER_TTL_SECS,
            marker_ttl_secs: DEFAULT_MARKER_TTL_SECS,
        }
    }

    /// Puts every key under `prefix` (default `adieu-rp:`), e.g. to share one Redis between applications.
    ///
    /// ```no_run
    /// # fn run(index: adieu_rp::index_redis::RedisSessionIndex) {
    /// let index = index.with_prefix("shop:adieu-rp:");
    /// # let _ = index; }
    /// ```
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Keeps index entries for `ttl` after the login (default 30 days; use your sessions' absolute lifetime).
    ///
    /// ```no_run
    /// # fn run(index: adieu_rp::index_redis::RedisSessionIndex) {
    /// let index = index.with_session_ttl(std::time::Duration::from_secs(24 * 3600));
    /// # let _ = index; }
    /// ```
    pub fn with_session_ttl(mut self, ttl: std::time::Duration) -> Self {
        self.session_ttl_secs = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX).max(1);
        self
    }

    /// Keeps logged-out markers for `ttl` (default 30 days; use your sessions' absolute lifetime).
    ///
    /// ```no_run
    /// # fn run(index: adieu_rp::index_redis::RedisSessionIndex) {
    /// let index = index.with_marker_ttl(std::time::Duration::from_secs(24 * 3600));
    /// # let _ = index; }
    /// ```
    pub fn with_marker_ttl(mut self, ttl: std::time::Duration) -> Self {
        self.marker_ttl_secs = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX).max(1);
        self
    }

    fn pair(a: &str, b: &str) -> String {
        serde_json::to_string(&[a, b]).unwrap_or_default()
    }
    fn session_key(&self, id: &str) -> String {
        format!("{}s:{id}", self.prefix)
    }
    fn sid_key(&self, iss: &str, sid: &str) -> String {
        format!("{}sid:{}", self.prefix, Self::pair(iss, sid))
    }
    fn sub_key(&self, iss: &str, sub: &str) -> String {
        format!("{}sub:{}", self.prefix, Self::pair(iss, sub))
    }
    fn marker_key(&self, id: &str) -> String {
        format!("{}out:{id}", self.prefix)
    }
    fn jti_key(&self, iss: &str, jti: &str) -> String {
        format!("{}jti:{}", self.prefix, Self::pair(iss, jti))
    }

    async fn load(&self, id: &str) -> Result<Option<LoginRecord>, IndexError> {
        let h: HashMap<String, String> = self.client.hgetall(self.session_key(id)).await.map_err(err)?;
        let (Some(issuer), Some(sub), Some(at)) = (h.get("iss"), h.get("sub"), h.get("at")) else {
            return Ok(None);
        };
        Ok(Some(LoginRecord {
            issuer: issuer.clone(),
            sub: sub.clone(),
            sid: h.get("sid").filter(|s| !s.is_empty()).cloned(),
            session_id: id.to_owned(),
            created_at: at.parse().map_err(|_| IndexError::new(format!("redis: bad created-at for session {id}")))?,
        }))
    }

    /// Removes `old` from the sid and sub sets, and deletes its hash.
    async fn unlink(&self, old: &LoginRecord) -> Result<(), IndexError> {
        let trx = self.client.multi();
        if let Some(sid) = &old.sid {
            let _: () = trx.srem(self.sid_key(&old.issuer, sid), old.session_id.clone()).await.map_err(err)?;
        }
        let _: () = trx.zrem(self.sub_key(&old.issuer, &old.sub), old.session_id.clone()).await.map_err(err)?;
        let _: () = trx.del(self.session_key(&old.session_id)).await.map_err(err)?;
        trx.exec::<()>(true).await.map_err(err)
    }
}

#[async_trait]
impl SessionIndex for RedisSessionIndex {
    async fn record(&self, l: LoginRecord) -> Result<(), IndexError> {
        // Re-recording a session id replaces it: drop the old memberships first.
        if let Some(old) = self.load(&l.session_id).await? {
            self.unlink(&old).await?;
        }
        let ttl = self.session_ttl_secs;
        let trx = self.client.multi();
        let fields: Vec<(&str, String)> = vec![
            ("iss", l.issuer.clone()),
            ("sub", l.sub.clone()),
            ("sid", l.sid.clone().unwrap_or_default()),
            ("at", l.created_at.to_string()),
        ];
        let key = self.session_key(&l.session_id);
        let _: () = trx.hset(&key, fields).await.map_err(err)?;
        let _: () = trx.expire(&key, ttl, None).await.map_err(err)?;
        if let Some(sid) = &l.sid {
            let k = self.sid_key(&l.issuer, sid);
            let _: () = trx.sadd(&k, l.session_id.clone()).await.map_err(err)?;
            let _: () = trx.expire(&k, ttl, None).await.map_err(err)?;
        }
        let k = self.sub_key(&l.issuer, &l.sub);
        #[allow(clippy::cast_precision_loss)] // scores are seconds since the epoch: exact in an f64
        let score = l.created_at as f64;
        let _: () = trx.zadd(&k, None, None, false, false, (score, l.session_id.clone())).await.map_err(err)?;
        let _: () = trx.expire(&k, ttl, None).await.map_err(err)?;
        trx.exec::<()>(true).await.map_err(err)
    }

    async fn sessions_to_end(&self, token: &VerifiedLogoutToken) -> Result<Vec<String>, IndexError> {
        let candidates: Vec<String> = match token.subject() {
            LogoutSubject::Sid(sid) | LogoutSubject::Both { sid, .. } => {
                self.client.smembers(self.sid_key(token.issuer(), sid)).await.map_err(err)?
            }
            LogoutSubject::Sub(sub) => {
                #[allow(clippy::cast_precision_loss)]
                let iat = token.issued_at() as f64;
                self.client
                    .zrangebyscore(self.sub_key(token.issuer(), sub), f64::NEG_INFINITY, iat, false, None)
                    .await
                    .map_err(err)?
            }
        };
        let mut ids = Vec::new();
        for id in candidates {
            // Members whose login expired or was replaced are not sessions of this token any more.
            if let Some(login) = self.load(&id).await?
                && matches(&login, token)
            {
                ids.push(id);
            }
        }
        ids.sort();
        Ok(ids)
    }

    async fn forget(&self, session_ids: &[String]) -> Result<(), IndexError> {
        for id in session_ids {
            if let Some(old) = self.load(id).await? {
                self.unlink(&old).await?;
            }
        }
        Ok(())
    }
}

/// Lazy ending: records logged-out markers that every replica sees.
#[async_trait]
impl SessionEnder for RedisSessionIndex {
    async fn end_sessions(&self, session_ids: &[String]) -> Result<(), IndexError> {
        if session_ids.is_empty() {
            return Ok(());
        }
        let trx = self.client.multi();
        for id in session_ids {
            let _: () = trx
                .set(self.marker_key(id), "1", Some(Expiration::EX(self.marker_ttl_secs)), None, false)
                .await
                .map_err(err)?;
        }
        trx.exec::<()>(true).await.map_err(err)
    }
}

#[async_trait]
impl LogoutMarkerStore for RedisSessionIndex {
    async fn is_logged_out(&self, session_id: &str) -> Result<bool, IndexError> {
        let n: i64 = self.client.exists(self.marker_key(session_id)).await.map_err(err)?;
        Ok(n > 0)
    }
}

#[async_trait]
impl ReplayCache for RedisSessionIndex {
    async fn seen(&self, issuer: &str, jti: &str, now: i64) -> Result<bool, ReplayError> {
        let until: Option<i64> = self
            .client
            .get(self.jti_key(issuer, jti))
            .await
            .map_err(|e| ReplayError::with_source(format!("redis: {e}"), e))?;
        Ok(until.is_some_and(|u| u >= now))
    }

    async fn remember(&self, issuer: &str, jti: &str, until: i64, now: i64) -> Result<(), ReplayError> {
        if until < now {
            return Ok(());
        }
        // Redis expires the key one second after `until`, when the token is no longer acceptable.
        let _: () = self
            .client
            .set(self.jti_key(issuer, jti), until, Some(Expiration::EXAT(until + 1)), None, false)
            .await
            .map_err(|e| ReplayError::with_source(format!("redis: {e}"), e))?;
        Ok(())
    }
}

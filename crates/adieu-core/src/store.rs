//! Storage traits. Each backend (SQLite, and PostgreSQL for several replicas) is one type that
//! implements all of them; [`Store`] is the sum the server holds as `Arc<dyn Store>`.
//!
//! Rules every backend keeps: times are [`UnixMillis`]; secrets (codes, tokens, cookie values, client
//! secrets) arrive already hashed; every method that changes more than one row does so in one
//! transaction.

use crate::audit::Actor;
use crate::audit::{AuditEvent, AuditFilter};
use crate::client::Client;
use crate::delivery::{Attempt, Delivery, DeliveryStatus, Verdict};
use crate::grant::{AccessToken, AuthCode, PendingAuthorization, RefreshToken};
use crate::id::{ClientId, SessionId, Sid, UserId};
use crate::initiator::Initiator;
use crate::session::SessionLifetime;
use crate::session::{EndedSession, Participation, Session, SessionDevice};
use crate::time::UnixMillis;
use crate::upstream::{PendingUpstreamLogin, UpstreamIdentity, UpstreamSessionQuery, UpstreamSignIn};
use crate::user::{User, UserChanges, UserQuery, UserUpdated};
use async_trait::async_trait;

/// A storage failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A unique value is taken (username, email, client id…). The text names the field.
    #[error("already exists: {0}")]
    Conflict(String),
    /// The database failed; the text is for logs, never for clients.
    #[error("storage backend error: {0}")]
    Backend(String),
    /// The database cannot do this now, for a reason outside the request: the disk is full, the
    /// file system is read-only, the server is unreachable or restarting. Nothing was changed;
    /// the same call can succeed later. The text is for logs.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
}

/// Result alias for storage calls.
pub type StoreResult<T> = Result<T, StoreError>;

/// User accounts.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Adds a user and audits `user.created` with `actor`, in one transaction; `Conflict` if the
    /// username or email is taken.
    async fn add_user(&self, user: &User, actor: &str) -> StoreResult<()>;
    /// [`UserStore::add_user`] by the `system` actor (seeding, tests).
    async fn create_user(&self, user: &User) -> StoreResult<()> {
        self.add_user(user, &Actor::System.name()).await
    }
    /// A user by id.
    async fn user_by_id(&self, id: &UserId) -> StoreResult<Option<User>>;
    /// A user by username or email (compared lower-cased).
    async fn user_by_login(&self, login: &str) -> StoreResult<Option<User>>;
    /// One page of users matching `query`, ordered by username.
    async fn list_users(&self, query: &UserQuery) -> StoreResult<Vec<User>>;
    /// Changes an account in one transaction: the row (`Conflict` if the new username or email is
    /// taken, and then nothing changes), a `user.updated` audit event with `actor`, and, when
    /// [`UserChanges::ending_initiator`] says so, the end of every open session of the user with that
    /// initiator (deliveries written, `session.ended` audited with `actor`). A new password also
    /// revokes every access and refresh token of the user, `offline_access` ones included.
    /// `None` if there is no such user.
    async fn update_user(
        &self,
        id: &UserId,
        changes: &UserChanges,
        actor: &str,
        at: UnixMillis,
    ) -> StoreResult<Option<UserUpdated>>;
    /// Deletes the account in one transaction: its open sessions end with `account-deleted` (the
    /// deliveries keep the `sub`), every token is revoked, its codes go, the row goes, and
    /// `user.deleted` is audited with `actor`. Returns the ended sessions, or `None` if there is no
    /// such user.
    async fn delete_user(&self, id: &UserId, actor: &str, at: UnixMillis) -> StoreResult<Option<Vec<EndedSession>>>;
    /// Global Token Revocation, in one transaction: every open session of the user ends with
    /// `session-revoked` (the outbox tells the subscribed applications), every access and refresh
    /// token is revoked (`offline_access` ones included), and `user.tokens_revoked` is audited with
    /// `actor`. The ended sessions and how many tokens were revoked, or `None` if there is no
    /// such user.
    async fn revoke_user_everywhere(
        &self,
        id: &UserId,
        actor: &str,
        at: UnixMillis,
    ) -> StoreResult<Option<(Vec<EndedSession>, u64)>>;
}

/// Registered applications.
#[async_trait]
pub trait ClientStore: Send + Sync {
    /// Registers a client; `Conflict` if the id is taken. Audited as `client.created` (and
    /// `backchannel.subscribed` when it has a logout URI) with `actor`.
    async fn create_client(&self, client: &Client, actor: &str) -> StoreResult<()>;
    /// Replaces a client's metadata, in one transaction with its audit events: a changed logout URI
    /// is `backchannel.subscribed`/`changed`/`unsubscribed` with old and new values, and removing it
    /// discards the client's pending deliveries. Returns the previous version, `None` if unknown.
    async fn update_client(&self, client: &Client, actor: &str, at: UnixMillis) -> StoreResult<Option<Client>>;
    /// A client by id.
    async fn client_by_id(&self, id: &ClientId) -> StoreResult<Option<Client>>;
    /// All clients, ordered by id.
    async fn list_clients(&self) -> StoreResult<Vec<Client>>;
    /// The clients with these ids that exist (one query), in no particular order.
    async fn clients_by_ids(&self, ids: &[ClientId]) -> StoreResult<Vec<Client>>;
    /// Removes a client and its tokens, marks its pending deliveries `discarded` (audited); false if
    /// there is no such client.
    async fn delete_client(&self, id: &ClientId, actor: &str, at: UnixMillis) -> StoreResult<bool>;
}

/// OP sessions and their participations.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Stores a new session under the hash of its cookie value.
    async fn create_session(&self, session: &Session, cookie_hash: &str) -> StoreResult<()>;
    /// The session a cookie belongs to (ended or not; the caller checks lifetimes).
    async fn session_by_cookie(&self, cookie_hash: &str) -> StoreResult<Option<Session>>;
    /// A session by id.
    async fn session_by_id(&self, id: &SessionId) -> StoreResult<Option<Session>>;
    /// Records use of the session (idle lifetime).
    async fn touch_session(&self, id: &SessionId, at: UnixMillis) -> StoreResult<()>;
    /// The same user signed in again: new cookie (no fixation), new `auth_time`.
    async fn reauthenticate_session(&self, id: &SessionId, cookie_hash: &str, at: UnixMillis) -> StoreResult<()>;
    /// A user's sessions that have not ended, newest first.
    async fn open_sessions_of_user(&self, user: &UserId) -> StoreResult<Vec<Session>>;
    /// How many sessions have not ended (for metrics; ones past their lifetime count until the
    /// sweeper ends them).
    async fn count_open_sessions(&self) -> StoreResult<u64>;
    /// The participations of these sessions (one query), ordered by session, then time.
    async fn participations_of_sessions(&self, sessions: &[SessionId]) -> StoreResult<Vec<Participation>>;
    /// Records where `session` was signed in from, replacing what an earlier sign-in in it
    /// recorded (a re-authentication). Nothing happens if the session does not exist or has ended:
    /// a device is kept only while its session is open ([`SessionStore::end_session_as`] forgets it).
    async fn record_session_device(&self, session: &SessionId, device: &SessionDevice) -> StoreResult<()>;
    /// The recorded devices of these sessions (one query), ordered by session; a session without
    /// one is left out.
    async fn session_devices(&self, sessions: &[SessionId]) -> StoreResult<Vec<(SessionId, SessionDevice)>>;
    /// The participation of `client` in `session`, creating it with `new_sid` if there is none.
    /// The returned `sid` is the one every ID token of that pair carries.
    async fn ensure_participation(
        &self,
        session: &SessionId,
        client: &ClientId,
        new_sid: &Sid,
        at: UnixMillis,
    ) -> StoreResult<Participation>;
    /// A participation by its `sid`.
    async fn participation_by_sid(&self, sid: &Sid) -> StoreResult<Option<Participation>>;
    /// Ends a session, in one transaction: marks it ended with `initiator`, revokes its refresh and
    /// access tokens that are not `offline_access` (BC-RT-01/02), writes one pending delivery per
    /// participation whose client has a back-channel logout URI and subscribes to `initiator` (the
    /// outbox), forgets its device ([`SessionStore::record_session_device`]), and records a
    /// `session.ended` audit event. `None` if the session does not exist or
    /// had already ended (ending is idempotent).
    async fn end_session(
        &self,
        id: &SessionId,
        initiator: Initiator,
        at: UnixMillis,
    ) -> StoreResult<Option<EndedSession>> {
        self.end_session_as(id, initiator, &Actor::System.name(), at).await
    }
    /// [`SessionStore::end_session`] with the `session.ended` event audited as `actor`
    /// (`admin-api`, `cli`, `system`…).
    async fn end_session_as(
        &self,
        id: &SessionId,
        initiator: Initiator,
        actor: &str,
        at: UnixMillis,
    ) -> StoreResult<Option<EndedSession>>;
    /// Ends every open session of `user` with `initiator`, in one transaction, as
    /// [`SessionStore::end_session_as`] does for one. Returns the ended sessions (none if the user
    /// has no open session or does not exist).
    async fn end_user_sessions(
        &self,
        user: &UserId,
        initiator: Initiator,
        actor: &str,
        at: UnixMillis,
    ) -> StoreResult<Vec<EndedSession>>;
    /// Ends, with `session-expired` and the `system` actor, at most `limit` open sessions that are
    /// past their idle or absolute `lifetime` at `now` (least recently used first), in one transaction.
    /// A caller loops until fewer than `limit` come back.
    async fn end_expired_sessions(
        &self,
        lifetime: SessionLifetime,
        now: UnixMillis,
        limit: u32,
    ) -> StoreResult<Vec<EndedSession>>;
}

/// The outcome of redeeming an authorization code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeRedemption {
    /// First use: the code is now spent.
    Redeemed(AuthCode),
    /// The code had been redeemed before.
    AlreadyUsed(AuthCode),
    /// No such code.
    Unknown,
}

/// The outcome of presenting a refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshUse {
    /// The token was current; it is now rotated out.
    Rotated(RefreshToken),
    /// The token had already been rotated: a replay.
    Replayed(RefreshToken),
    /// The token was revoked.
    Revoked(RefreshToken),
    /// The token belongs to another client; it was left untouched.
    WrongClient,
    /// No such token.
    Unknown,
}

/// Codes, tokens and pending sign-in requests.
#[async_trait]
pub trait GrantStore: Send + Sync {
    /// Saves a validated authorization request while the user signs in.
    async fn put_pending_authorization(
        &self,
        id: &str,
        request: &PendingAuthorization,
        expires_at: UnixMillis,
    ) -> StoreResult<()>;
    /// A pending request that has not expired.
    async fn pending_authorization(&self, id: &str, now: UnixMillis) -> StoreResult<Option<PendingAuthorization>>;
    /// Forgets a pending request (after use).
    async fn delete_pending_authorization(&self, id: &str) -> StoreResult<()>;
    /// Removes a pending request that has not expired and returns it, in one step: of callers
    /// racing for one request, one gets it.
    async fn take_pending_authorization(&self, id: &str, now: UnixMillis) -> StoreResult<Option<PendingAuthorization>>;
    /// Stores a new authorization code.
    async fn insert_code(&self, code: &AuthCode) -> StoreResult<()>;
    /// A code by hash, used or not, without changing it (to check the client and `redirect_uri`
    /// before the code is spent).
    async fn code_by_hash(&self, code_hash: &str) -> StoreResult<Option<AuthCode>>;
    /// Atomically marks a code used; a second caller sees `AlreadyUsed`.
    async fn redeem_code(&self, code_hash: &str, at: UnixMillis) -> StoreResult<CodeRedemption>;
    /// Revokes every access and refresh token of a grant family and remembers the grant as
    /// revoked, so that tokens a concurrent request is issuing for it are refused
    /// ([`GrantStore::issue_tokens`]); returns how many tokens were revoked.
    async fn revoke_grant(&self, grant_id: &str, at: UnixMillis) -> StoreResult<u64>;
    /// Revokes every access and refresh token of a user, `offline_access` ones included
    /// (password change, account deletion); returns how many.
    async fn revoke_user_tokens(&self, user: &UserId, at: UnixMillis) -> StoreResult<u64>;
    /// Stores an access token.
    async fn insert_access_token(&self, token: &AccessToken) -> StoreResult<()>;
    /// An access token by hash.
    async fn access_token(&self, token_hash: &str) -> StoreResult<Option<AccessToken>>;
    /// A refresh token by hash (rotated and revoked ones too).
    async fn refresh_token(&self, token_hash: &str) -> StoreResult<Option<RefreshToken>>;
    /// Revokes one access token (RFC 7009); false if there is none or it was revoked already.
    async fn revoke_access_token(&self, token_hash: &str, at: UnixMillis) -> StoreResult<bool>;
    /// Stores a refresh token.
    async fn insert_refresh_token(&self, token: &RefreshToken) -> StoreResult<()>;
    /// Stores the access and refresh token of one issuance, in one transaction, unless their grant
    /// was revoked ([`GrantStore::revoke_grant`]): then nothing is stored and the answer is false.
    /// Serialised with `revoke_grant` of the same grant, so a reuse or replay that races the
    /// legitimate use revokes the winner's tokens whichever commits first.
    async fn issue_tokens(&self, access: &AccessToken, refresh: &RefreshToken) -> StoreResult<bool>;
    /// Atomically rotates a refresh token of `client` out (first use wins). A token of another
    /// client is not touched.
    async fn use_refresh_token(&self, token_hash: &str, client: &ClientId, at: UnixMillis) -> StoreResult<RefreshUse>;
    /// Deletes expired codes, pending requests (and pending upstream sign-ins), tokens and ended
    /// rate-limit windows; returns how many rows went.
    async fn purge_expired(&self, now: UnixMillis) -> StoreResult<u64>;
}

/// A query on deliveries.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    /// Only this status.
    pub status: Option<DeliveryStatus>,
    /// Only this client.
    pub client_id: Option<ClientId>,
    /// Only this session.
    pub session_id: Option<SessionId>,
    /// At most this many, newest first (default 100, at most 1000).
    pub limit: Option<u32>,
}

/// A request to lease due deliveries.
#[derive(Debug, Clone)]
pub struct Claim<'a> {
    /// The current time.
    pub now: UnixMillis,
    /// How long the lease lasts.
    pub lease: std::time::Duration,
    /// At most this many in all.
    pub limit: u32,
    /// At most this many for one client (so one busy application cannot fill a batch).
    pub per_client_limit: u32,
    /// Skip these clients (their host is at its concurrency limit).
    pub exclude_clients: &'a [ClientId],
}

/// An attempt with its result, to be recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// The attempt.
    pub attempt: Attempt,
    /// What it means (the store writes [`DeliveryState::after`](crate::delivery::DeliveryState::after)).
    pub verdict: Verdict,
}

/// Queue figures for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueStats {
    /// Deliveries pending or leased.
    pub depth: u64,
    /// Creation time of the oldest of them.
    pub oldest_created_at: Option<UnixMillis>,
}

/// The delivery queue.
#[async_trait]
pub trait DeliveryStore: Send + Sync {
    /// Leases deliveries that are due (pending and `next_attempt_at <= now`, or leased with an
    /// expired lease), oldest first, until `now + lease`, counting an attempt for each. Two
    /// callers, in this process or in other replicas, never lease the same delivery while its
    /// lease is valid.
    async fn claim_due(&self, claim: &Claim<'_>) -> StoreResult<Vec<Delivery>>;
    /// Records attempts and their results, all in one transaction (failures are audited too).
    /// For each: false if the delivery was no longer leased (e.g. discarded meanwhile), in which
    /// case only the attempt is kept.
    async fn record_attempts(&self, batch: &[Recorded]) -> StoreResult<Vec<bool>>;

    /// [`DeliveryStore::record_attempts`] for one attempt.
    async fn record_attempt(&self, attempt: &Attempt, verdict: Verdict) -> StoreResult<bool> {
        let r = Recorded { attempt: attempt.clone(), verdict };
        Ok(self.record_attempts(std::slice::from_ref(&r)).await?.first().copied().unwrap_or(false))
    }
    /// Deliveries matching `filter`, newest first.
    async fn deliveries(&self, filter: &DeliveryFilter) -> StoreResult<Vec<Delivery>>;
    /// One delivery with its attempts.
    async fn delivery(&self, id: &str) -> StoreResult<Option<(Delivery, Vec<Attempt>)>>;
    /// An operator's retry (audited `delivery.retried`): a pending delivery is due at `at`; a dead
    /// or rejected one starts a new round of attempts at `at`. The status it had, or `None` if it
    /// does not exist or is not [retryable](crate::delivery::DeliveryStatus::retryable).
    async fn retry_delivery(&self, id: &str, actor: &str, at: UnixMillis) -> StoreResult<Option<DeliveryStatus>>;
    /// Makes the deliveries leased by this process's replica claimable again, at start-up and at
    /// the end of a graceful shutdown; returns how many. SQLite has one process per database file,
    /// so every lease is released. PostgreSQL releases only the leases held under this store's
    /// replica id (other replicas' leases stay theirs until they expire; a replica that died loses
    /// them then), and notifies the other replicas' workers.
    async fn release_leases(&self) -> StoreResult<u64>;
    /// Listens for word from other processes that deliveries became claimable (written, released
    /// or put back for a retry) and calls `wake` for each; also once as soon as it listens, so
    /// that whatever came while it was not listening is looked for. Returns only with an error
    /// (the connection was lost); the caller calls it again after a pause. PostgreSQL listens on
    /// the channel `adieu_deliveries`, which every transaction that makes deliveries claimable
    /// notifies at commit. The default never returns and never calls `wake`: with SQLite the only
    /// other writer is the command line, whose deliveries the worker's polling finds.
    async fn listen_for_deliveries(&self, wake: &(dyn Fn() + Send + Sync)) -> StoreResult<()> {
        let _ = wake;
        std::future::pending::<()>().await;
        Ok(())
    }
    /// The earliest time something becomes claimable (a pending delivery's `next_attempt_at` or a
    /// leased one's `lease_until`), to know how long to sleep.
    async fn next_due(&self) -> StoreResult<Option<UnixMillis>>;
    /// Queue depth and age.
    async fn queue_stats(&self) -> StoreResult<QueueStats>;
    /// Installs this process's worker as the taker of freshly written deliveries
    /// ([`crate::handoff`]): from now on, ending a session writes up to its free slots leased to
    /// this replica. Without it (the default, and in the command line) every delivery is written
    /// pending.
    fn set_handoff(&self, handoff: std::sync::Arc<dyn crate::handoff::Handoff>) {
        let _ = handoff;
    }
}

/// The audit log.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends an event.
    async fn append_audit(&self, event: &AuditEvent) -> StoreResult<()>;
    /// Events matching `filter`, newest first.
    async fn audit_events(&self, filter: &AuditFilter) -> StoreResult<Vec<AuditEvent>>;
}

/// Kinds of API bearer tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiTokenKind {
    /// The management API.
    Admin,
    /// An initial access token for dynamic client registration.
    Registration,
    /// The credential of a caller of the Global Token Revocation endpoint (a security tool, an
    /// upstream identity provider): it can end a user's sessions and tokens, and nothing else.
    GlobalRevocation,
}

impl ApiTokenKind {
    /// Storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            ApiTokenKind::Admin => "admin",
            ApiTokenKind::Registration => "registration",
            ApiTokenKind::GlobalRevocation => "global-token-revocation",
        }
    }
}

impl std::str::FromStr for ApiTokenKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "admin" => Ok(ApiTokenKind::Admin),
            "registration" => Ok(ApiTokenKind::Registration),
            "global-token-revocation" => Ok(ApiTokenKind::GlobalRevocation),
            other => Err(format!("unknown token kind {other:?} (admin, registration or global-token-revocation)")),
        }
    }
}

/// A stored API token, as listed: never the token, nor its whole hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    /// Its name for listing and revoking: the first [`ApiToken::ID_LEN`] characters of the
    /// token's hash (72 bits; the token cannot be found from it).
    pub id: String,
    /// What it is for.
    pub kind: ApiTokenKind,
    /// The label given at creation.
    pub label: String,
    /// When it was created.
    pub created_at: UnixMillis,
}

impl ApiToken {
    /// Characters of the hash that name a token.
    pub const ID_LEN: usize = 12;

    /// The id of the token whose hash is `hash`.
    pub fn id_of(hash: &str) -> String {
        hash.chars().take(Self::ID_LEN).collect()
    }
}

/// Bearer tokens for the management API and registration, stored as hashes.
#[async_trait]
pub trait ApiTokenStore: Send + Sync {
    /// Stores a token hash (audited `api_token.created`, with its id, kind and label).
    async fn insert_api_token(
        &self,
        hash: &str,
        kind: ApiTokenKind,
        label: &str,
        actor: &str,
        at: UnixMillis,
    ) -> StoreResult<()>;
    /// Whether a token with this hash and kind exists.
    async fn api_token_exists(&self, hash: &str, kind: ApiTokenKind) -> StoreResult<bool>;
    /// Every token, oldest first.
    async fn api_tokens(&self) -> StoreResult<Vec<ApiToken>>;
    /// Deletes the token with this [id](ApiToken::id) (audited `api_token.revoked`); false if
    /// there is none. Requests bearing it are refused from then on.
    async fn revoke_api_token(&self, id: &str, actor: &str, at: UnixMillis) -> StoreResult<bool>;
}

pub use crate::keys::{RetireRefusal, StoredSigningKey};

/// Signing keys, shared by every replica through the database (see [`crate::keys`] for the rules).
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// All signing keys, retired ones included, oldest first.
    async fn signing_keys(&self) -> StoreResult<Vec<StoredSigningKey>>;
    /// Adds a signing key and audits `key.created` with `actor`, in one transaction.
    /// `Conflict("generation")` if its algorithm already has a key of that generation (another
    /// replica or the command line inserted one first): then nothing is stored.
    async fn insert_signing_key(&self, key: &StoredSigningKey, actor: &str) -> StoreResult<()>;
    /// Retires the key `kid` at `at` and audits `key.retired` with `actor`, in one transaction:
    /// it leaves the JWKS and its private key is erased. With the algorithm's keys locked, the
    /// rules of [`crate::keys::check_retire`] decide at `at`: the current signer and the last
    /// published key of an algorithm are refused (then nothing changes).
    async fn retire_signing_key(
        &self,
        kid: &str,
        actor: &str,
        at: UnixMillis,
    ) -> StoreResult<Result<StoredSigningKey, RetireRefusal>>;
}

/// Liveness of the backend.
#[async_trait]
pub trait Health: Send + Sync {
    /// Succeeds if the database answers.
    async fn ping(&self) -> StoreResult<()>;
}

/// Signing in through upstream providers, and finding the sessions an upstream logout names.
#[async_trait]
pub trait UpstreamStore: Send + Sync {
    /// Stores a sign-in sent to an upstream until its callback.
    async fn put_upstream_login(&self, login: &PendingUpstreamLogin) -> StoreResult<()>;
    /// Takes (deletes and returns) the pending sign-in with this state hash, atomically: a second
    /// caller gets `None`. An expired one is deleted and `None` returned.
    async fn take_upstream_login(&self, state_hash: &str, now: UnixMillis)
    -> StoreResult<Option<PendingUpstreamLogin>>;
    /// The local user linked to the upstream account `(issuer, sub)`.
    async fn user_by_upstream(&self, issuer: &str, sub: &str) -> StoreResult<Option<User>>;
    /// Creates `user` linked to `identity`, in one transaction with a `user.created` audit event
    /// (actor `actor`, the upstream named in the detail). `Conflict("username")` or
    /// `Conflict("email")` if taken, `Conflict("upstream_identity")` if the upstream account is
    /// already linked; then nothing is stored.
    async fn create_upstream_user(&self, user: &User, identity: &UpstreamIdentity, actor: &str) -> StoreResult<()>;
    /// [`SessionStore::create_session`] for a session authenticated by an upstream sign-in.
    async fn create_upstream_session(
        &self,
        session: &Session,
        cookie_hash: &str,
        upstream: &UpstreamSignIn,
    ) -> StoreResult<()>;
    /// [`SessionStore::reauthenticate_session`] by an upstream sign-in, which the session now
    /// remembers instead of any earlier one.
    async fn reauthenticate_upstream_session(
        &self,
        id: &SessionId,
        cookie_hash: &str,
        upstream: &UpstreamSignIn,
    ) -> StoreResult<()>;
    /// The ids of the open sessions `query` names, oldest first.
    async fn upstream_sessions(&self, query: &UpstreamSessionQuery) -> StoreResult<Vec<SessionId>>;
}

/// A rate-limit counter after a hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateCount {
    /// Hits in the current window, this one included.
    pub count: u32,
    /// When the current window ends (a hit at or after it starts a new one).
    pub window_ends: UnixMillis,
}

/// Fixed-window counters for rate limits (sign-in attempts), kept in the database so that every
/// replica counts against the same budget. Keys are opaque to the store; callers hash anything
/// a user typed.
#[async_trait]
pub trait RateLimitStore: Send + Sync {
    /// Counts a hit on `key` and returns the count with it, atomically: concurrent hits, from this
    /// process or another replica, each get their own count. If `key` has no window, or its window
    /// ended at or before `now`, a new one starts at `now` and lasts `window`.
    async fn rate_limit_hit(&self, key: &str, window: std::time::Duration, now: UnixMillis) -> StoreResult<RateCount>;
    /// The hits in `key`'s window at `now`, without counting one (0 if it has none or it ended).
    async fn rate_limit_count(&self, key: &str, now: UnixMillis) -> StoreResult<u32>;
    /// Forgets `key`'s window.
    async fn rate_limit_clear(&self, key: &str) -> StoreResult<()>;
}

/// Retention: deleting what is old enough, a small batch at a time (each call one short
/// transaction, so writers in between are never held up for long).
#[async_trait]
pub trait RetentionStore: Send + Sync {
    /// Deletes at most `limit` deliveries that finished (delivered, rejected, dead or discarded)
    /// before `before`, oldest first, with their attempts; returns how many deliveries went.
    async fn prune_deliveries(&self, before: UnixMillis, limit: u32) -> StoreResult<u64>;
    /// Deletes at most `limit` audit events from before `before`, oldest first; returns how many.
    async fn prune_audit(&self, before: UnixMillis, limit: u32) -> StoreResult<u64>;
}

/// Everything the server needs from storage.
pub trait Store:
    UserStore
    + ClientStore
    + SessionStore
    + GrantStore
    + crate::consent::ConsentStore
    + KeyStore
    + DeliveryStore
    + AuditStore
    + ApiTokenStore
    + UpstreamStore
    + RateLimitStore
    + RetentionStore
    + Health
    + std::fmt::Debug
{
}

impl<T> Store for T where
    T: UserStore
        + ClientStore
        + SessionStore
        + GrantStore
        + crate::consent::ConsentStore
        + KeyStore
        + DeliveryStore
        + AuditStore
        + ApiTokenStore
        + UpstreamStore
        + RateLimitStore
        + RetentionStore
        + Health
        + std::fmt::Debug
{
}

//! Cancel safety and write health for any [`Store`] (DESIGN.md §5).
//!
//! A client may drop its request at any await point, and axum then drops the handler's future.
//! A store call that is dropped half-way can leave its connection inside a transaction that no
//! one will end, and with SQLite's single writer that stops every write of the process (the
//! sqlx transaction-depth class of bugs). [`DetachedStore`] runs every store operation to
//! completion on a task of its own: the request may go, the operation commits or rolls back
//! regardless, and the caller that is still there gets its result.
//!
//! It also keeps the truth about writes for `/readyz`: a write that fails because the database
//! cannot write (disk full, read-only file system, database unreachable:
//! [`StoreError::Unavailable`]) marks the store faulted, and the next successful write clears
//! the mark. The change is logged once each way, not once per request. [`Health::ping`] answers
//! an error while the last write failed less than a second ago, and otherwise probes (the
//! backend's ping writes), so readiness turns good again by itself once the cause is gone.

use adieu_core::audit::{AuditEvent, AuditFilter};
use adieu_core::client::Client;
use adieu_core::consent::{Consent, ConsentStore};
use adieu_core::delivery::{Attempt, Delivery, DeliveryStatus};
use adieu_core::grant::{AccessToken, AuthCode, PendingAuthorization, RefreshToken};
use adieu_core::id::{ClientId, SessionId, Sid, UserId};
use adieu_core::initiator::Initiator;
use adieu_core::session::{EndedSession, Participation, Session, SessionDevice, SessionLifetime};
use adieu_core::store::*;
use adieu_core::time::UnixMillis;
use adieu_core::upstream::{PendingUpstreamLogin, UpstreamIdentity, UpstreamSessionQuery, UpstreamSignIn};
use adieu_core::user::{User, UserChanges, UserQuery, UserUpdated};
use async_trait::async_trait;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a failed write keeps `/readyz` unready before a probe may clear it.
const FAULT_HOLD: Duration = Duration::from_secs(1);

/// A [`Store`] whose operations run detached from the caller, with write health tracking.
#[derive(Debug, Clone)]
pub struct DetachedStore {
    inner: Arc<dyn Store>,
    health: Arc<WriteHealth>,
}

/// Whether the last write failed because the database could not write, and since when.
#[derive(Debug, Default)]
struct WriteHealth {
    faulted: Mutex<Option<(Instant, Instant)>>,
}

impl WriteHealth {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(Instant, Instant)>> {
        self.faulted.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Looks at a write's result: an `Unavailable` error marks the fault (logged when it begins),
    /// a success ends it (logged with its length).
    fn observe<T>(&self, result: &StoreResult<T>) {
        match result {
            Err(StoreError::Unavailable(reason)) => {
                let now = Instant::now();
                let mut f = self.lock();
                if f.is_none() {
                    tracing::error!(
                        %reason,
                        "the database cannot write: requests that change state answer 503 and \
                         deliveries wait; adieu retries by itself and recovers when the cause is gone"
                    );
                }
                let since = f.map_or(now, |(since, _)| since);
                *f = Some((since, now));
            }
            Ok(_) => {
                if let Some((since, _)) = self.lock().take() {
                    tracing::warn!(after_ms = since.elapsed().as_millis() as u64, "the database writes again");
                }
            }
            Err(_) => {}
        }
    }

    fn recently_failed(&self) -> bool {
        self.lock().is_some_and(|(_, last)| last.elapsed() < FAULT_HOLD)
    }
}

impl DetachedStore {
    /// Wraps `inner`. Wrapping a `DetachedStore` again is harmless but pointless.
    pub fn new(inner: Arc<dyn Store>) -> Self {
        DetachedStore { inner, health: Arc::default() }
    }

    /// Runs a read on its own task.
    async fn read<T, F, Fut>(&self, f: F) -> StoreResult<T>
    where
        F: FnOnce(Arc<dyn Store>) -> Fut,
        Fut: Future<Output = StoreResult<T>> + Send + 'static,
        T: Send + 'static,
    {
        match tokio::spawn(f(self.inner.clone())).await {
            Ok(r) => r,
            Err(e) => Err(StoreError::Backend(format!("store task failed: {e}"))),
        }
    }

    /// Runs a write on its own task and observes its result for write health.
    async fn write<T, F, Fut>(&self, f: F) -> StoreResult<T>
    where
        F: FnOnce(Arc<dyn Store>) -> Fut,
        Fut: Future<Output = StoreResult<T>> + Send + 'static,
        T: Send + 'static,
    {
        let health = self.health.clone();
        let task = f(self.inner.clone());
        let run = async move {
            let r = task.await;
            health.observe(&r);
            r
        };
        match tokio::spawn(run).await {
            Ok(r) => r,
            Err(e) => Err(StoreError::Backend(format!("store task failed: {e}"))),
        }
    }
}

#[async_trait]
impl UserStore for DetachedStore {
    async fn add_user(&self, user: &User, actor: &str) -> StoreResult<()> {
        let (user, actor) = (user.clone(), actor.to_owned());
        self.write(move |s| async move { s.add_user(&user, &actor).await }).await
    }
    async fn user_by_id(&self, id: &UserId) -> StoreResult<Option<User>> {
        let id = id.clone();
        self.read(move |s| async move { s.user_by_id(&id).await }).await
    }
    async fn user_by_login(&self, login: &str) -> StoreResult<Option<User>> {
        let login = login.to_owned();
        self.read(move |s| async move { s.user_by_login(&login).await }).await
    }
    async fn list_users(&self, query: &UserQuery) -> StoreResult<Vec<User>> {
        let query = query.clone();
        self.read(move |s| async move { s.list_users(&query).await }).await
    }
    async fn update_user(
        &self,
        id: &UserId,
        changes: &UserChanges,
        actor: &str,
        at: UnixMillis,
    ) -> StoreResult<Option<UserUpdated>> {
        let (id, changes, actor) = (id.clone(), changes.clone(), actor.to_owned());
        self.write(move |s| async move { handed(s.update_user(&id, &changes, &actor, at).await, |u| &u.ended) }).await
    }
    async fn delete_user(&self, id: &UserId, actor: &str, at: UnixMillis) -> StoreResult<Option<Vec<EndedSession>>> {
        let (id, actor) = (id.clone(), actor.to_owned());
        self.write(move |s| async move { handed(s.delete_user(&id, &actor, at).await, |e| e) }).await
    }
    async fn revoke_user_everywhere(
        &self,
        id: &UserId,
        actor: &str,
        at: UnixMillis,
    ) -> StoreResult<Option<(Vec<EndedSession>, u64)>> {
        let (id, actor) = (id.clone(), actor.to_owned());
        self.write(move |s| async move { handed(s.revoke_user_everywhere(&id, &actor, at).await, |(e, _)| e) }).await
    }
}

#[async_trait]
impl ClientStore for DetachedStore {
    async fn create_client(&self, client: &Client, actor: &str) -> StoreResult<()> {
        let (client, actor) = (client.clone(), actor.to_owned());
        self.write(move |s| async move { s.create_client(&client, &actor).await }).await
    }
    async fn update_client(&self, client: &Client, actor: &str, at: UnixMillis) -> StoreResult<Option<Client>> {
        let (client, actor) = (client.clone(), actor.to_owned());
        self.write(move |s| async move { s.update_client(&client, &actor, at).await }).await
    }
    async fn client_by_id(&self, id: &ClientId) -> StoreResult<Option<Client>> {
        let id = id.clone();
        self.read(move |s| async move { s.client_by_id(&id).await }).await
    }
    async fn list_clients(&self) -> StoreResult<Vec<Client>> {
        self.read(move |s| async move { s.list_clients().await }).await
    }
    async fn clients_by_ids(&self, ids: &[ClientId]) -> StoreResult<Vec<Client>> {
        let ids = ids.to_vec();
        self.read(move |s| async move { s.clients_by_ids(&ids).await }).await
    }
    async fn delete_client(&self, id: &ClientId, actor: &str, at: UnixMillis) -> StoreResult<bool> {
        let (id, actor) = (id.clone(), actor.to_owned());
        self.write(move |s| async move { s.delete_client(&id, &actor, at).await }).await
    }
}

#[async_trait]
impl SessionStore for DetachedStore {
    async fn create_session(&self, session: &Session, cookie_hash: &str) -> StoreResult<()> {
        let (session, cookie_hash) = (session.clone(), cookie_hash.to_owned());
        self.write(move |s| async move { s.create_session(&session, &cookie_hash).await }).await
    }
    async fn session_by_cookie(&self, cookie_hash: &str) -> StoreResult<Option<Session>> {
        let cookie_hash = cookie_hash.to_owned();
        self.read(move |s| async move { s.session_by_cookie(&cookie_hash).await }).await
    }
    async fn session_by_id(&self, id: &SessionId) -> StoreResult<Option<Session>> {
        let id = id.clone();
        self.read(move |s| async move { s.session_by_id(&id).await }).await
    }
    async fn touch_session(&self, id: &SessionId, at: UnixMillis) -> StoreResult<()> {
        let id = id.clone();
        self.write(move |s| async move { s.touch_session(&id, at).await }).await
    }
    async fn reauthenticate_session(&self, id: &SessionId, cookie_hash: &str, at: UnixMillis) -> StoreResult<()> {
        let (id, cookie_hash) = (id.clone(), cookie_hash.to_owned());
        self.write(move |s| async move { s.reauthenticate_session(&id, &cookie_hash, at).await }).await
    }
    async fn open_sessions_of_user(&self, user: &UserId) -> StoreResult<Vec<Session>> {
        let user = user.clone();
        self.read(move |s| async move { s.open_sessions_of_user(&user).await }).await
    }
    async fn count_open_sessions(&self) -> StoreResult<u64> {
        self.read(move |s| async move { s.count_open_sessions().await }).await
    }
    async fn participations_of_sessions(&self, sessions: &[SessionId]) -> StoreResult<Vec<Participation>> {
        let sessions = sessions.to_vec();
        self.read(move |s| async move { s.participations_of_sessions(&sessions).await }).await
    }
    async fn record_session_device(&self, session: &SessionId, device: &SessionDevice) -> StoreResult<()> {
        let (session, device) = (session.clone(), device.clone());
        self.write(move |s| async move { s.record_session_device(&session, &device).await }).await
    }
    async fn session_devices(&self, sessions: &[SessionId]) -> StoreResult<Vec<(SessionId, SessionDevice)>> {
        let sessions = sessions.to_vec();
        self.read(move |s| async move { s.session_devices(&sessions).await }).await
    }
    async fn ensure_participation(
        &self,
        session: &SessionId,
        client: &ClientId,
        new_sid: &Sid,
        at: UnixMillis,
    ) -> StoreResult<Participation> {
        let (session, client, new_sid) = (session.clone(), client.clone(), new_sid.clone());
        self.write(move |s| async move { s.ensure_participation(&session, &client, &new_sid, at).await }).await
    }
    async fn participation_by_sid(&self, sid: &Sid) -> StoreResult<Option<Participation>> {
        let sid = sid.clone();
        self.read(move |s| async move { s.participation_by_sid(&sid).await }).await
    }
    async fn end_session_as(
        &self,
        id: &SessionId,
        initiator: Initiator,
        actor: &str,
        at: UnixMillis,
    ) -> StoreResult<Option<EndedSession>> {
        let (id, actor) = (id.clone(), actor.to_owned());
        self.write(
            move |s| async move { handed(s.end_session_as(&id, initiator, &actor, at).await, std::slice::from_ref) },
        )
        .await
    }
    async fn end_user_sessions(
        &self,
        user: &UserId,
        initiator: Initiator,
        actor: &str,
        at: UnixMillis,
    ) -> StoreResult<Vec<EndedSession>> {
        let (user, actor) = (user.clone(), actor.to_owned());
        self.write(
            move |s| async move { handed(Ok(Some(s.end_user_sessions(&user, initiator, &actor, at).await?)), |e| e) },
        )
        .await
        .map(Option::unwrap_or_default)
    }
    async fn end_expired_sessions(
        &self,
        lifetime: SessionLifetime,
        now: UnixMillis,
        limit: u32,
    ) -> StoreResult<Vec<EndedSession>> {
        self.write(move |s| async move { handed(Ok(Some(s.end_expired_sessions(lifetime, now, limit).await?)), |e| e) })
            .await
            .map(Option::unwrap_or_default)
    }
}

#[async_trait]
impl ConsentStore for DetachedStore {
    async fn consent(&self, user: &UserId, client: &ClientId) -> StoreResult<Option<Consent>> {
        let (user, client) = (user.clone(), client.clone());
        self.read(move |s| async move { s.consent(&user, &client).await }).await
    }
    async fn put_consent(&self, consent: &Consent) -> StoreResult<()> {
        let consent = consent.clone();
        self.write(move |s| async move { s.put_consent(&consent).await }).await
    }
    async fn consents_of_user(&self, user: &UserId) -> StoreResult<Vec<Consent>> {
        let user = user.clone();
        self.read(move |s| async move { s.consents_of_user(&user).await }).await
    }
    async fn delete_consent(&self, user: &UserId, client: &ClientId, at: UnixMillis) -> StoreResult<bool> {
        let (user, client) = (user.clone(), client.clone());
        self.write(move |s| async move { s.delete_consent(&user, &client, at).await }).await
    }
}

#[async_trait]
impl GrantStore for DetachedStore {
    async fn put_pending_authorization(
        &self,
        id: &str,
        request: &PendingAuthorization,
        expires_at: UnixMillis,
    ) -> StoreResult<()> {
        let (id, request) = (id.to_owned(), request.clone());
        self.write(move |s| async move { s.put_pending_authorization(&id, &request, expires_at).await }).await
    }
    async fn pending_authorization(&self, id: &str, now: UnixMillis) -> StoreResult<Option<PendingAuthorization>> {
        let id = id.to_owned();
        self.read(move |s| async move { s.pending_authorization(&id, now).await }).await
    }
    async fn delete_pending_authorization(&self, id: &str) -> StoreResult<()> {
        let id = id.to_owned();
        self.write(move |s| async move { s.delete_pending_authorization(&id).await }).await
    }
    async fn take_pending_authorization(&self, id: &str, now: UnixMillis) -> StoreResult<Option<PendingAuthorization>> {
        let id = id.to_owned();
        self.write(move |s| async move { s.take_pending_authorization(&id, now).await }).await
    }
    async fn insert_code(&self, code: &AuthCode) -> StoreResult<()> {
        let code = code.clone();
        self.write(move |s| async move { s.insert_code(&code).await }).await
    }
    async fn code_by_hash(&self, code_hash: &str) -> StoreResult<Option<AuthCode>> {
        let code_hash = code_hash.to_owned();
        self.read(move |s| async move { s.code_by_hash(&code_hash).await }).await
    }
    async fn redeem_code(&self, code_hash: &str, at: UnixMillis) -> StoreResult<CodeRedemption> {
        let code_hash = code_hash.to_owned();
        self.write(move |s| async move { s.redeem_code(&code_hash, at).await }).await
    }
    async fn revoke_grant(&self, grant_id: &str, at: UnixMillis) -> StoreResult<u64> {
        let grant_id = grant_id.to_owned();
        self.write(move |s| async move { s.revoke_grant(&grant_id, at).await }).await
    }
    async fn revoke_user_tokens(&self, user: &UserId, at: UnixMillis) -> StoreResult<u64> {
        let user = user.clone();
        self.write(move |s| async move { s.revoke_user_tokens(&user, at).await }).await
    }
    async fn insert_access_token(&self, token: &AccessToken) -> StoreResult<()> {
        let token = token.clone();
        self.write(move |s| async move { s.insert_access_token(&token).await }).await
    }
    async fn access_token(&self, token_hash: &str) -> StoreResult<Option<AccessToken>> {
        let token_hash = token_hash.to_owned();
        self.read(move |s| async move { s.access_token(&token_hash).await }).await
    }
    async fn refresh_token(&self, token_hash: &str) -> StoreResult<Option<RefreshToken>> {
        let token_hash = token_hash.to_owned();
        self.read(move |s| async move { s.refresh_token(&token_hash).await }).await
    }
    async fn revoke_access_token(&self, token_hash: &str, at: UnixMillis) -> StoreResult<bool> {
        let token_hash = token_hash.to_owned();
        self.write(move |s| async move { s.revoke_access_token(&token_hash, at).await }).await
    }
    async fn insert_refresh_token(&self, token: &RefreshToken) -> StoreResult<()> {
        let token = token.clone();
        self.write(move |s| async move { s.insert_refresh_token(&token).await }).await
    }
    async fn issue_tokens(&self, access: &AccessToken, refresh: &RefreshToken) -> StoreResult<bool> {
        let (access, refresh) = (access.clone(), refresh.clone());
        self.write(move |s| async move { s.issue_tokens(&access, &refresh).await }).await
    }
    async fn use_refresh_token(&self, token_hash: &str, client: &ClientId, at: UnixMillis) -> StoreResult<RefreshUse> {
        let (token_hash, client) = (token_hash.to_owned(), client.clone());
        self.write(move |s| async move { s.use_refresh_token(&token_hash, &client, at).await }).await
    }
    async fn purge_expired(&self, now: UnixMillis) -> StoreResult<u64> {
        self.write(move |s| async move { s.purge_expired(now).await }).await
    }
}

#[async_trait]
impl DeliveryStore for DetachedStore {
    async fn claim_due(&self, claim: &Claim<'_>) -> StoreResult<Vec<Delivery>> {
        let (now, lease, limit, per_client_limit) = (claim.now, claim.lease, claim.limit, claim.per_client_limit);
        let exclude = claim.exclude_clients.to_vec();
        self.write(move |s| async move {
            let claim = Claim { now, lease, limit, per_client_limit, exclude_clients: &exclude };
            s.claim_due(&claim).await
        })
        .await
    }
    async fn record_attempts(&self, batch: &[Recorded]) -> StoreResult<Vec<bool>> {
        let batch = batch.to_vec();
        self.write(move |s| async move { s.record_attempts(&batch).await }).await
    }
    async fn deliveries(&self, filter: &DeliveryFilter) -> StoreResult<Vec<Delivery>> {
        let filter = filter.clone();
        self.read(move |s| async move { s.deliveries(&filter).await }).await
    }
    async fn delivery(&self, id: &str) -> StoreResult<Option<(Delivery, Vec<Attempt>)>> {
        let id = id.to_owned();
        self.read(move |s| async move { s.delivery(&id).await }).await
    }
    async fn retry_delivery(&self, id: &str, actor: &str, at: UnixMillis) -> StoreResult<Option<DeliveryStatus>> {
        let (id, actor) = (id.to_owned(), actor.to_owned());
        self.write(move |s| async move { s.retry_delivery(&id, &actor, at).await }).await
    }
    async fn release_leases(&self) -> StoreResult<u64> {
        self.write(move |s| async move { s.release_leases().await }).await
    }
    async fn listen_for_deliveries(&self, wake: &(dyn Fn() + Send + Sync)) -> StoreResult<()> {
        // Long-lived and owned by the worker, not by a request: no task of its own.
        self.inner.listen_for_deliveries(wake).await
    }
    async fn next_due(&self) -> StoreResult<Option<UnixMillis>> {
        self.read(move |s| async move { s.next_due().await }).await
    }
    async fn queue_stats(&self) -> StoreResult<QueueStats> {
        self.read(move |s| async move { s.queue_stats().await }).await
    }
    fn set_handoff(&self, handoff: Arc<dyn adieu_core::handoff::Handoff>) {
        self.inner.set_handoff(handoff);
    }
}

/// After a committed operation that ended sessions, still on the detached task: hands the
/// deliveries written leased to this process's worker ([`adieu_core::handoff`]), so a caller
/// that went away meanwhile does not leave them waiting for their lease to end.
fn handed<T>(result: StoreResult<Option<T>>, ended: impl Fn(&T) -> &[EndedSession]) -> StoreResult<Option<T>> {
    if let Ok(Some(value)) = &result {
        for e in ended(value) {
            e.hand_over();
        }
    }
    result
}

#[async_trait]
impl AuditStore for DetachedStore {
    async fn append_audit(&self, event: &AuditEvent) -> StoreResult<()> {
        let event = event.clone();
        self.write(move |s| async move { s.append_audit(&event).await }).await
    }
    async fn audit_events(&self, filter: &AuditFilter) -> StoreResult<Vec<AuditEvent>> {
        let filter = filter.clone();
        self.read(move |s| async move { s.audit_events(&filter).await }).await
    }
}

#[async_trait]
impl ApiTokenStore for DetachedStore {
    async fn insert_api_token(
        &self,
        hash: &str,
        kind: ApiTokenKind,
        label: &str,
        actor: &str,
        at: UnixMillis,
    ) -> StoreResult<()> {
        let (hash, label, actor) = (hash.to_owned(), label.to_owned(), actor.to_owned());
        self.write(move |s| async move { s.insert_api_token(&hash, kind, &label, &actor, at).await }).await
    }
    async fn api_tokens(&self) -> StoreResult<Vec<ApiToken>> {
        self.read(move |s| async move { s.api_tokens().await }).await
    }
    async fn revoke_api_token(&self, id: &str, actor: &str, at: UnixMillis) -> StoreResult<bool> {
        let (id, actor) = (id.to_owned(), actor.to_owned());
        self.write(move |s| async move { s.revoke_api_token(&id, &actor, at).await }).await
    }
    async fn api_token_exists(&self, hash: &str, kind: ApiTokenKind) -> StoreResult<bool> {
        let hash = hash.to_owned();
        self.read(move |s| async move { s.api_token_exists(&hash, kind).await }).await
    }
}

#[async_trait]
impl KeyStore for DetachedStore {
    async fn signing_keys(&self) -> StoreResult<Vec<StoredSigningKey>> {
        self.read(move |s| async move { s.signing_keys().await }).await
    }
    async fn insert_signing_key(&self, key: &StoredSigningKey, actor: &str) -> StoreResult<()> {
        let (key, actor) = (key.clone(), actor.to_owned());
        self.write(move |s| async move { s.insert_signing_key(&key, &actor).await }).await
    }
    async fn retire_signing_key(
        &self,
        kid: &str,
        actor: &str,
        at: UnixMillis,
    ) -> StoreResult<Result<StoredSigningKey, RetireRefusal>> {
        let (kid, actor) = (kid.to_owned(), actor.to_owned());
        self.write(move |s| async move { s.retire_signing_key(&kid, &actor, at).await }).await
    }
}

#[async_trait]
impl Health for DetachedStore {
    async fn ping(&self) -> StoreResult<()> {
        if self.health.recently_failed() {
            return Err(StoreError::Unavailable("the last write failed less than a second ago".into()));
        }
        // The backends' ping writes (SQLite) or reaches the server (PostgreSQL): a success ends
        // a fault, as any other write does.
        self.write(move |s| async move { s.ping().await }).await
    }
}

#[async_trait]
impl UpstreamStore for DetachedStore {
    async fn put_upstream_login(&self, login: &PendingUpstreamLogin) -> StoreResult<()> {
        let login = login.clone();
        self.write(move |s| async move { s.put_upstream_login(&login).await }).await
    }
    async fn take_upstream_login(
        &self,
        state_hash: &str,
        now: UnixMillis,
    ) -> StoreResult<Option<PendingUpstreamLogin>> {
        let state_hash = state_hash.to_owned();
        self.write(move |s| async move { s.take_upstream_login(&state_hash, now).await }).await
    }
    async fn user_by_upstream(&self, issuer: &str, sub: &str) -> StoreResult<Option<User>> {
        let (issuer, sub) = (issuer.to_owned(), sub.to_owned());
        self.read(move |s| async move { s.user_by_upstream(&issuer, &sub).await }).await
    }
    async fn create_upstream_user(&self, user: &User, identity: &UpstreamIdentity, actor: &str) -> StoreResult<()> {
        let (user, identity, actor) = (user.clone(), identity.clone(), actor.to_owned());
        self.write(move |s| async move { s.create_upstream_user(&user, &identity, &actor).await }).await
    }
    async fn create_upstream_session(
        &self,
        session: &Session,
        cookie_hash: &str,
        upstream: &UpstreamSignIn,
    ) -> StoreResult<()> {
        let (session, cookie_hash, upstream) = (session.clone(), cookie_hash.to_owned(), upstream.clone());
        self.write(move |s| async move { s.create_upstream_session(&session, &cookie_hash, &upstream).await }).await
    }
    async fn reauthenticate_upstream_session(
        &self,
        id: &SessionId,
        cookie_hash: &str,
        upstream: &UpstreamSignIn,
    ) -> StoreResult<()> {
        let (id, cookie_hash, upstream) = (id.clone(), cookie_hash.to_owned(), upstream.clone());
        self.write(move |s| async move { s.reauthenticate_upstream_session(&id, &cookie_hash, &upstream).await }).await
    }
    async fn upstream_sessions(&self, query: &UpstreamSessionQuery) -> StoreResult<Vec<SessionId>> {
        let query = query.clone();
        self.read(move |s| async move { s.upstream_sessions(&query).await }).await
    }
}

#[async_trait]
impl RateLimitStore for DetachedStore {
    async fn rate_limit_hit(&self, key: &str, window: Duration, now: UnixMillis) -> StoreResult<RateCount> {
        let key = key.to_owned();
        self.write(move |s| async move { s.rate_limit_hit(&key, window, now).await }).await
    }
    async fn rate_limit_count(&self, key: &str, now: UnixMillis) -> StoreResult<u32> {
        let key = key.to_owned();
        self.read(move |s| async move { s.rate_limit_count(&key, now).await }).await
    }
    async fn rate_limit_clear(&self, key: &str) -> StoreResult<()> {
        let key = key.to_owned();
        self.write(move |s| async move { s.rate_limit_clear(&key).await }).await
    }
}

#[async_trait]
impl RetentionStore for DetachedStore {
    async fn prune_deliveries(&self, before: UnixMillis, limit: u32) -> StoreResult<u64> {
        self.write(move |s| async move { s.prune_deliveries(before, limit).await }).await
    }
    async fn prune_audit(&self, before: UnixMillis, limit: u32) -> StoreResult<u64> {
        self.write(move |s| async move { s.prune_audit(before, limit).await }).await
    }
}

//! OP sessions, participations, and ending a session: the one code path every initiator goes
//! through, inside the caller's transaction (the outbox).
//!
//! Who gets a back-channel delivery when a session ends is decided by
//! [`adieu_core::delivery::notified`]; this module reads what that rule needs, under the locks
//! that keep a concurrent client change from slipping between the read and the commit.

use super::audit::append_audit_in;
use super::rows::{self, delivery_cols, participation_cols, session_cols};
use super::stmt::to_json;
use super::{Dialect, Read, Sql, SqlStore, commit};
use adieu_core::audit::Actor;
use adieu_core::audit::{AuditEvent, AuditKind};
use adieu_core::delivery::{Delivery, notified};
use adieu_core::handoff::{HandOver, Handoff};
use adieu_core::id::{ClientId, SessionId, Sid, UserId};
use adieu_core::initiator::{Initiator, InitiatorSubscription};
use adieu_core::session::{EndedSession, Participation, Session, SessionDevice, SessionLifetime};
use adieu_core::store::{SessionStore, StoreError, StoreResult};
use adieu_core::time::UnixMillis;
use adieu_core::upstream::UpstreamSignIn;
use async_trait::async_trait;
use serde_json::json;

/// The `(name, type)` columns of the JSON rows the outbox insert reads its targets from.
const TARGET_ROWS: &[(&str, &str)] = &[("client", "text"), ("sid", "text")];

/// Inserts a new open session under `cookie_hash`, remembering the upstream sign-in that
/// authenticated it, if any (its `upstream_*` columns stay NULL otherwise).
pub(crate) async fn insert_session_in<D: Dialect>(
    conn: &mut D::Connection,
    s: &Session,
    cookie_hash: &str,
    upstream: Option<&UpstreamSignIn>,
) -> StoreResult<()> {
    Sql::new(
        "INSERT INTO sessions (id, user_id, cookie_hash, auth_time, created_at, last_seen_at, ended_at, end_reason,
                               upstream_iss, upstream_sub, upstream_sid, upstream_auth_at)
         VALUES ($1, $2, $3, $4, $5, $6, NULL, NULL, $7, $8, $9, $10)",
    )
    .bind(s.id.as_str())
    .bind(s.user_id.as_str())
    .bind(cookie_hash)
    .bind(s.auth_time)
    .bind(s.created_at)
    .bind(s.last_seen_at)
    .bind(upstream.map(|u| u.issuer.as_str()))
    .bind(upstream.map(|u| u.sub.as_str()))
    .bind(upstream.and_then(|u| u.sid.as_deref()))
    .bind(upstream.map(|u| u.at))
    .execute::<D>(conn)
    .await?;
    Ok(())
}

/// Locks the clients participating in session `id` (KEY SHARE, id order): a concurrent update or
/// deletion of one of them (which locks it FOR UPDATE) then commits wholly before or after this
/// logout, so the subscriptions read afterwards are the ones in force when the session ends.
async fn lock_participants_in<D: Dialect>(conn: &mut D::Connection, id: &SessionId) -> StoreResult<()> {
    let sql = format!(
        "SELECT id FROM clients WHERE id IN (SELECT client_id FROM participations WHERE session_id = $1)
         ORDER BY id{}",
        D::FOR_KEY_SHARE
    );
    Sql::new(sql).bind(id.as_str()).fetch_all::<D>(conn).await?;
    Ok(())
}

/// Revokes the tokens of session `id` that are not `offline_access` (BC-RT-01; BC-RT-02: offline
/// ones survive); returns how many.
async fn revoke_session_tokens_in<D: Dialect>(
    conn: &mut D::Connection,
    id: &SessionId,
    at: UnixMillis,
) -> StoreResult<u64> {
    let mut revoked = 0;
    // Refresh before access, the order every transaction uses.
    for stmt in [
        "UPDATE refresh_tokens SET revoked_at = $1 WHERE session_id = $2 AND NOT offline AND revoked_at IS NULL",
        "UPDATE access_tokens SET revoked_at = $1 WHERE session_id = $2 AND NOT offline AND revoked_at IS NULL",
    ] {
        revoked += Sql::new(stmt).bind(at).bind(id.as_str()).execute::<D>(&mut *conn).await?;
    }
    Ok(revoked)
}

/// The participations of session `id`, oldest first.
async fn participations_in<D: Dialect>(conn: &mut D::Connection, id: &SessionId) -> StoreResult<Vec<Participation>> {
    let rows = Sql::new(concat!(
        "SELECT ",
        participation_cols!(),
        " FROM participations WHERE session_id = $1 ORDER BY created_at, client_id"
    ))
    .bind(id.as_str())
    .fetch_all::<D>(conn)
    .await?;
    rows.iter().map(rows::participation).collect()
}

/// The participants of session `id` that [`notified`] says get a delivery for `initiator`, as the
/// JSON array (`[{"client", "sid"}]`, oldest participation first) the outbox insert reads.
async fn targets_in<D: Dialect>(
    conn: &mut D::Connection,
    id: &SessionId,
    initiator: Initiator,
) -> StoreResult<Vec<serde_json::Value>> {
    let rows = Sql::new(
        "SELECT p.client_id, p.sid, c.backchannel_logout_uri, c.backchannel_logout_initiators FROM participations p
         JOIN clients c ON c.id = p.client_id
         WHERE p.session_id = $1
         ORDER BY p.created_at, p.client_id",
    )
    .bind(id.as_str())
    .fetch_all::<D>(conn)
    .await?;
    let mut targets = Vec::new();
    for r in &rows {
        let subscription: InitiatorSubscription = r.json("backchannel_logout_initiators")?;
        if notified(initiator, r.opt_text("backchannel_logout_uri")?.as_deref(), &subscription) {
            targets.push(json!({ "client": r.text("client_id")?, "sid": r.text("sid")? }));
        }
    }
    Ok(targets)
}

/// Writes one delivery per target of the ended `session` (the outbox): the first ones leased to
/// this replica, as many as `handoff` reserved slots for, and the rest pending, which the other
/// replicas' workers are woken for at commit. The deliveries in client order.
async fn insert_deliveries_in<D: Dialect>(
    conn: &mut D::Connection,
    ending: &Ending<'_>,
    session: &Session,
    mut targets: Vec<serde_json::Value>,
) -> StoreResult<(Vec<Delivery>, HandOver)> {
    if targets.is_empty() {
        return Ok((Vec::new(), HandOver::default()));
    }
    let reserved = ending.handoff.and_then(|h| h.reserve(targets.len()));
    let mut deliveries = Vec::with_capacity(targets.len());
    let pending = targets.split_off(reserved.as_ref().map_or(0, |r| r.slots().min(targets.len())));
    if let Some(r) = &reserved
        && !targets.is_empty()
    {
        let lease = Some((r.lease_until(), ending.replica));
        deliveries.extend(insert_rows_in::<D>(&mut *conn, session, ending, targets, lease).await?);
    }
    if !pending.is_empty() {
        deliveries.extend(insert_rows_in::<D>(&mut *conn, session, ending, pending, None).await?);
        // Every replica's worker is woken at commit (not at all on rollback).
        D::wake_at_commit(conn).await?;
    }
    deliveries.sort_by(|a, b| a.client_id.cmp(&b.client_id));
    Ok((deliveries, reserved.map(HandOver::new).unwrap_or_default()))
}

/// Inserts one delivery per target: pending, or leased until `lease.0` to replica `lease.1` with
/// its first attempt counted (as a claim would).
async fn insert_rows_in<D: Dialect>(
    conn: &mut D::Connection,
    session: &Session,
    ending: &Ending<'_>,
    targets: Vec<serde_json::Value>,
    lease: Option<(UnixMillis, &str)>,
) -> StoreResult<Vec<Delivery>> {
    let sql = format!(
        "INSERT INTO deliveries (id, session_id, client_id, sub, sid, initiator, status, attempts, total_attempts,
           next_attempt_at, lease_until, lease_owner, round_started_at, created_at, finished_at, last_error)
         SELECT {}, $1, t.client, $2, t.sid, $3, $6, $7, $7, $4, $8, $9, $4, $4, NULL, NULL
         FROM {}
         RETURNING {}",
        D::NEW_ID,
        D::json_rows("$5", "t", TARGET_ROWS),
        delivery_cols!()
    );
    let (status, attempts) = if lease.is_some() { ("leased", 1_i64) } else { ("pending", 0) };
    let rows = Sql::new(sql)
        .bind(session.id.as_str())
        .bind(session.user_id.as_str())
        .bind(ending.initiator.as_str())
        .bind(ending.at)
        .bind(to_json(&targets)?)
        .bind(status)
        .bind(attempts)
        .bind(lease.map(|l| l.0))
        .bind(lease.map(|l| l.1))
        .fetch_all::<D>(&mut *conn)
        .await?;
    rows.iter().map(rows::delivery).collect()
}

/// What ends sessions inside a transaction: why, who (audited), when, and the worker that takes
/// the deliveries as they are written (if any) with the replica they are leased to.
pub(crate) struct Ending<'a> {
    /// Why.
    pub(crate) initiator: Initiator,
    /// Who, as audited.
    pub(crate) actor: &'a str,
    /// When.
    pub(crate) at: UnixMillis,
    /// This process's worker ([`adieu_core::handoff`]).
    pub(crate) handoff: Option<&'a dyn Handoff>,
    /// This store's replica id (the lease owner of handed-over deliveries).
    pub(crate) replica: &'a str,
}

impl<D: Dialect> SqlStore<D> {
    /// An [`Ending`] by `initiator`, audited as `actor`, at `at`, from this store.
    pub(crate) fn ending<'a>(&'a self, initiator: Initiator, actor: &'a str, at: UnixMillis) -> Ending<'a> {
        Ending { initiator, actor, at, handoff: self.handoff(), replica: &self.replica }
    }
}

/// Ends one session inside the caller's transaction: marks it ended, revokes its tokens that are
/// not `offline_access`, writes the deliveries (outbox) that [`adieu_core::delivery::notified`]
/// says, forgets where it was signed in from (`session_devices`) and audits `session.ended`. `None`
/// if it does not exist or had already ended.
pub(crate) async fn end_session_in<D: Dialect>(
    conn: &mut D::Connection,
    id: &SessionId,
    ending: &Ending<'_>,
) -> StoreResult<Option<EndedSession>> {
    let Ending { initiator, actor, at, .. } = *ending;
    lock_participants_in::<D>(&mut *conn, id).await?;
    let row = Sql::new(concat!(
        "UPDATE sessions SET ended_at = $1, end_reason = $2 WHERE id = $3 AND ended_at IS NULL RETURNING ",
        session_cols!()
    ))
    .bind(at)
    .bind(initiator.as_str())
    .bind(id.as_str())
    .fetch_optional::<D>(&mut *conn)
    .await?;
    let Some(session) = row.as_ref().map(rows::session).transpose()? else { return Ok(None) };
    // The address and user agent are shown while the session is open, and kept no longer.
    Sql::new("DELETE FROM session_devices WHERE session_id = $1").bind(id.as_str()).execute::<D>(&mut *conn).await?;
    let revoked = revoke_session_tokens_in::<D>(&mut *conn, id, at).await?;
    let participations = participations_in::<D>(&mut *conn, id).await?;
    let targets = targets_in::<D>(&mut *conn, id, initiator).await?;
    let (deliveries, handoff) = insert_deliveries_in::<D>(&mut *conn, ending, &session, targets).await?;
    let event = AuditEvent::new(
        AuditKind::SessionEnded,
        actor,
        at,
        json!({
            "initiator": initiator.as_str(),
            "participations": participations.len(),
            "deliveries": deliveries.len(),
            "revoked_tokens": revoked,
        }),
    )
    .user(session.user_id.as_str())
    .session(id.as_str());
    append_audit_in::<D>(conn, &event).await?;
    Ok(Some(EndedSession { session, participations, revoked_tokens: revoked, deliveries, handoff }))
}

/// Ends the sessions `ids` (in that order) inside the caller's transaction; those that had
/// already ended are left out.
async fn end_sessions_in<D: Dialect>(
    conn: &mut D::Connection,
    ids: Vec<String>,
    ending: &Ending<'_>,
) -> StoreResult<Vec<EndedSession>> {
    let mut ended = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(e) = end_session_in::<D>(&mut *conn, &SessionId::new(id), ending).await? {
            ended.push(e);
        }
    }
    Ok(ended)
}

/// Ends every open session of `user` inside the caller's transaction (locked first, oldest first).
pub(crate) async fn end_user_sessions_in<D: Dialect>(
    conn: &mut D::Connection,
    user: &UserId,
    ending: &Ending<'_>,
) -> StoreResult<Vec<EndedSession>> {
    let sql = format!(
        "SELECT id FROM sessions WHERE user_id = $1 AND ended_at IS NULL ORDER BY created_at, id{}",
        D::FOR_UPDATE
    );
    let open = Sql::new(sql).bind(user.as_str()).fetch_texts::<D>(&mut *conn, "id").await?;
    end_sessions_in::<D>(conn, open, ending).await
}

/// Revokes every access and refresh token of `user`, offline ones included; returns how many.
pub(crate) async fn revoke_user_tokens_in<D: Dialect>(
    conn: &mut D::Connection,
    user: &UserId,
    at: UnixMillis,
) -> StoreResult<u64> {
    let mut n = 0;
    for stmt in [
        "UPDATE refresh_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL",
        "UPDATE access_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL",
    ] {
        n += Sql::new(stmt).bind(at).bind(user.as_str()).execute::<D>(&mut *conn).await?;
    }
    Ok(n)
}

/// The one session the query `sql` (its `$1` bound to `key`) selects.
async fn session_where<D: Dialect>(store: &SqlStore<D>, sql: &'static str, key: &str) -> StoreResult<Option<Session>> {
    let row = Sql::new(sql).bind(key).fetch_optional::<D>(&mut *store.read().await?).await?;
    row.as_ref().map(rows::session).transpose()
}

#[async_trait]
impl<D: Dialect> SessionStore for SqlStore<D> {
    async fn create_session(&self, s: &Session, cookie_hash: &str) -> StoreResult<()> {
        insert_session_in::<D>(&mut *self.writer().await?, s, cookie_hash, None).await
    }

    async fn session_by_cookie(&self, cookie_hash: &str) -> StoreResult<Option<Session>> {
        session_where(self, concat!("SELECT ", session_cols!(), " FROM sessions WHERE cookie_hash = $1"), cookie_hash)
            .await
    }

    async fn session_by_id(&self, id: &SessionId) -> StoreResult<Option<Session>> {
        session_where(self, concat!("SELECT ", session_cols!(), " FROM sessions WHERE id = $1"), id.as_str()).await
    }

    async fn touch_session(&self, id: &SessionId, at: UnixMillis) -> StoreResult<()> {
        // `CASE` for the larger of two values: `GREATEST` is PostgreSQL's, two-argument `max` SQLite's.
        Sql::new(
            "UPDATE sessions SET last_seen_at = CASE WHEN last_seen_at > $1 THEN last_seen_at ELSE $1 END
             WHERE id = $2 AND ended_at IS NULL",
        )
        .bind(at)
        .bind(id.as_str())
        .execute::<D>(&mut *self.writer().await?)
        .await?;
        Ok(())
    }

    async fn reauthenticate_session(&self, id: &SessionId, cookie_hash: &str, at: UnixMillis) -> StoreResult<()> {
        Sql::new(
            "UPDATE sessions SET cookie_hash = $1, auth_time = $2,
                    last_seen_at = CASE WHEN last_seen_at > $2 THEN last_seen_at ELSE $2 END
             WHERE id = $3 AND ended_at IS NULL",
        )
        .bind(cookie_hash)
        .bind(at)
        .bind(id.as_str())
        .execute::<D>(&mut *self.writer().await?)
        .await?;
        Ok(())
    }

    async fn open_sessions_of_user(&self, user: &UserId) -> StoreResult<Vec<Session>> {
        let rows = Sql::new(concat!(
            "SELECT ",
            session_cols!(),
            " FROM sessions WHERE user_id = $1 AND ended_at IS NULL ORDER BY created_at DESC"
        ))
        .bind(user.as_str())
        .fetch_all::<D>(&mut *self.read().await?)
        .await?;
        rows.iter().map(rows::session).collect()
    }

    async fn count_open_sessions(&self) -> StoreResult<u64> {
        // Through the partial index `sessions_open`.
        let n = Sql::new("SELECT COUNT(*) AS n FROM sessions WHERE ended_at IS NULL")
            .fetch_i64::<D>(&mut *self.read().await?, "n")
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn participations_of_sessions(&self, sessions: &[SessionId]) -> StoreResult<Vec<Participation>> {
        if sessions.is_empty() {
            return Ok(Vec::new());
        }
        let ids = to_json(&sessions.iter().map(SessionId::as_str).collect::<Vec<_>>())?;
        let sql = format!(
            "SELECT {} FROM participations WHERE session_id IN {} ORDER BY session_id, created_at, client_id",
            participation_cols!(),
            D::json_list("$1")
        );
        let rows = Sql::new(sql).bind(ids).fetch_all::<D>(&mut *self.read().await?).await?;
        rows.iter().map(rows::participation).collect()
    }

    async fn record_session_device(&self, session: &SessionId, device: &SessionDevice) -> StoreResult<()> {
        let mut tx = self.write().await?;
        // The session row is locked, so a concurrent end (which updates it, then deletes the
        // device) comes wholly before this, which then records nothing, or wholly after.
        let open = Sql::new(format!("SELECT id FROM sessions WHERE id = $1 AND ended_at IS NULL{}", D::FOR_UPDATE))
            .bind(session.as_str())
            .fetch_optional::<D>(&mut *tx)
            .await?;
        if open.is_some() {
            Sql::new(
                "INSERT INTO session_devices (session_id, address, user_agent, recorded_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (session_id) DO UPDATE
                 SET address = excluded.address, user_agent = excluded.user_agent, recorded_at = excluded.recorded_at",
            )
            .bind(session.as_str())
            .bind(device.address().map(|a| a.to_string()))
            .bind(device.user_agent())
            .bind(device.recorded_at())
            .execute::<D>(&mut *tx)
            .await?;
        }
        commit::<D>(tx).await
    }

    async fn session_devices(&self, sessions: &[SessionId]) -> StoreResult<Vec<(SessionId, SessionDevice)>> {
        if sessions.is_empty() {
            return Ok(Vec::new());
        }
        let ids = to_json(&sessions.iter().map(SessionId::as_str).collect::<Vec<_>>())?;
        let sql = format!(
            "SELECT session_id, address, user_agent, recorded_at FROM session_devices WHERE session_id IN {}
             ORDER BY session_id",
            D::json_list("$1")
        );
        let rows = Sql::new(sql).bind(ids).fetch_all::<D>(&mut *self.read().await?).await?;
        rows.iter().map(rows::session_device).collect()
    }

    async fn ensure_participation(
        &self,
        session: &SessionId,
        client: &ClientId,
        new_sid: &Sid,
        at: UnixMillis,
    ) -> StoreResult<Participation> {
        let mut tx = self.write().await?;
        // A concurrent insert of the same pair waits for the other to commit, then does nothing;
        // the SELECT (a new statement) sees the winner's row.
        Sql::new(
            "INSERT INTO participations (session_id, client_id, sid, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (session_id, client_id) DO NOTHING",
        )
        .bind(session.as_str())
        .bind(client.as_str())
        .bind(new_sid.as_str())
        .bind(at)
        .execute::<D>(&mut *tx)
        .await?;
        let row = Sql::new(concat!(
            "SELECT ",
            participation_cols!(),
            " FROM participations WHERE session_id = $1 AND client_id = $2"
        ))
        .bind(session.as_str())
        .bind(client.as_str())
        .fetch_optional::<D>(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::Backend("the participation just ensured is missing".into()))?;
        commit::<D>(tx).await?;
        rows::participation(&row)
    }

    async fn participation_by_sid(&self, sid: &Sid) -> StoreResult<Option<Participation>> {
        let row = Sql::new(concat!("SELECT ", participation_cols!(), " FROM participations WHERE sid = $1"))
            .bind(sid.as_str())
            .fetch_optional::<D>(&mut *self.read().await?)
            .await?;
        row.as_ref().map(rows::participation).transpose()
    }

    async fn end_session_as(
        &self,
        id: &SessionId,
        initiator: Initiator,
        actor: &str,
        at: UnixMillis,
    ) -> StoreResult<Option<EndedSession>> {
        let mut tx = self.write().await?;
        let ended = end_session_in::<D>(&mut *tx, id, &self.ending(initiator, actor, at)).await?;
        commit::<D>(tx).await?;
        Ok(ended)
    }

    async fn end_user_sessions(
        &self,
        user: &UserId,
        initiator: Initiator,
        actor: &str,
        at: UnixMillis,
    ) -> StoreResult<Vec<EndedSession>> {
        let mut tx = self.write().await?;
        let ended = end_user_sessions_in::<D>(&mut *tx, user, &self.ending(initiator, actor, at)).await?;
        commit::<D>(tx).await?;
        Ok(ended)
    }

    async fn end_expired_sessions(
        &self,
        lifetime: SessionLifetime,
        now: UnixMillis,
        limit: u32,
    ) -> StoreResult<Vec<EndedSession>> {
        let mut tx = self.write().await?;
        // Expired when `now` has reached the earlier of last use + idle and creation + absolute
        // (`Session::expires_at`). SKIP LOCKED: sweepers on several replicas take disjoint batches,
        // and each session ends once.
        let sql = format!(
            "SELECT id FROM sessions WHERE ended_at IS NULL AND (last_seen_at <= $1 OR created_at <= $2)
             ORDER BY last_seen_at, id LIMIT $3{}",
            D::SKIP_LOCKED
        );
        let ids = Sql::new(sql)
            .bind(now.minus(lifetime.idle))
            .bind(now.minus(lifetime.absolute))
            .bind(i64::from(limit))
            .fetch_texts::<D>(&mut *tx, "id")
            .await?;
        let system = Actor::System.name();
        let ended = end_sessions_in::<D>(&mut *tx, ids, &self.ending(Initiator::SessionExpired, &system, now)).await?;
        commit::<D>(tx).await?;
        Ok(ended)
    }
}

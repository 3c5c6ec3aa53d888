//! The delivery queue (the outbox's reading side): claims (`claim`), recording attempts, the
//! operator's views and retries, and leases at start and stop.
//!
//! Recording locks the batch's rows in id order first (PostgreSQL; SQLite has one writer), so
//! concurrent recorders and unsubscriptions (which lock the same way) wait for each other instead
//! of deadlocking. What a delivery becomes after an attempt is [`DeliveryState::after`]; this file
//! only persists it.

use super::audit::append_audit_in;
use super::rows::{self, attempt_cols, delivery_cols};
use super::stmt::to_json;
use super::{Dialect, Read, Sql, SqlStore, commit};
use adieu_core::audit::Actor;
use adieu_core::audit::{AuditEvent, AuditKind};
use adieu_core::delivery::{Attempt, Delivery, DeliveryState, DeliveryStatus, Verdict};
use adieu_core::store::{Claim, DeliveryFilter, DeliveryStore, QueueStats, Recorded, StoreResult};
use adieu_core::time::UnixMillis;
use async_trait::async_trait;
use serde_json::json;
use std::collections::HashMap;
use std::time::Duration;

/// The columns of the JSON rows a batch of attempts is written from.
const ATTEMPT_ROWS: &[(&str, &str)] = &[
    ("id", "text"),
    ("at", "bigint"),
    ("ms", "bigint"),
    ("http", "bigint"),
    ("err", "text"),
    ("status", "text"),
    ("next", "bigint"),
    ("finished", "bigint"),
    ("reason", "text"),
];

/// One delivery's record in a batch: the attempt, when it ended and the state it leads to.
struct Row<'a> {
    attempt: &'a Attempt,
    verdict: &'a Verdict,
    ended_at: UnixMillis,
    state: DeliveryState,
}

impl<'a> Row<'a> {
    fn new(r: &'a Recorded) -> Self {
        let ended_at = r.attempt.at.plus(Duration::from_millis(r.attempt.latency_ms));
        Row { attempt: &r.attempt, verdict: &r.verdict, ended_at, state: DeliveryState::after(&r.verdict, ended_at) }
    }

    fn json(&self) -> serde_json::Value {
        let a = self.attempt;
        let next = match self.state {
            DeliveryState::Pending { next_attempt_at } => Some(next_attempt_at.0),
            _ => None,
        };
        json!({
            "id": a.delivery_id,
            "at": a.at.0,
            "ms": i64::try_from(a.latency_ms).unwrap_or(i64::MAX),
            "http": a.http_status.map(i64::from),
            "err": a.error,
            "status": self.state.status().as_str(),
            "next": next,
            "finished": self.state.finished_at().map(|t| t.0),
            "reason": self.verdict.reason(),
        })
    }
}

/// Locks the batch's rows in id order where the backend has row locks (PostgreSQL), so
/// concurrent recorders and unsubscriptions wait for each other instead of deadlocking. SQLite has
/// one writer, and the transaction already excludes every other.
async fn lock_batch<D: Dialect>(conn: &mut D::Connection, ids: &[&str]) -> StoreResult<()> {
    if D::FOR_UPDATE.is_empty() {
        return Ok(());
    }
    let sql = format!("SELECT id FROM deliveries WHERE id IN {} ORDER BY id{}", D::json_list("$1"), D::FOR_UPDATE);
    Sql::new(sql).bind(to_json(ids)?).fetch_all::<D>(conn).await?;
    Ok(())
}

/// The deliveries `ids`, whole (for the audit of failed attempts).
async fn load_batch<D: Dialect>(conn: &mut D::Connection, ids: &[&str]) -> StoreResult<HashMap<String, Delivery>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let sql = format!("SELECT {} FROM deliveries WHERE id IN {}", delivery_cols!(), D::json_list("$1"));
    let found = Sql::new(sql).bind(to_json(ids)?).fetch_all::<D>(conn).await?;
    found.iter().map(|r| Ok((r.text("id")?, rows::delivery(r)?))).collect()
}

/// Writes the attempts (numbered by the delivery's `total_attempts`, so a repeated record
/// replaces its own row) and the new states of the deliveries still leased, two statements for
/// the whole batch; the ids of those that were still leased.
async fn write_batch<D: Dialect>(
    conn: &mut D::Connection,
    batch: &[(usize, Row<'_>)],
) -> StoreResult<std::collections::HashSet<String>> {
    let rows = to_json(&batch.iter().map(|(_, r)| r.json()).collect::<Vec<_>>())?;
    let insert = format!(
        "INSERT INTO delivery_attempts (delivery_id, number, at, latency_ms, http_status, error)
         SELECT d.id, d.total_attempts, j.at, j.ms, j.http, j.err FROM {} JOIN deliveries d ON d.id = j.id WHERE true
         ON CONFLICT (delivery_id, number) DO UPDATE SET at = excluded.at, latency_ms = excluded.latency_ms,
           http_status = excluded.http_status, error = excluded.error",
        D::json_rows("$1", "j", ATTEMPT_ROWS)
    );
    Sql::new(insert).bind(&rows).execute::<D>(conn).await?;
    let update = format!(
        "UPDATE deliveries SET status = j.status, lease_until = NULL, lease_owner = NULL,
           next_attempt_at = COALESCE(j.next, deliveries.next_attempt_at), finished_at = j.finished,
           last_error = COALESCE(j.reason, deliveries.last_error)
         FROM {} WHERE deliveries.id = j.id AND deliveries.status || '' = 'leased'
         RETURNING deliveries.id",
        D::json_rows("$1", "j", ATTEMPT_ROWS)
    );
    // `status || ''`: an expression, not the column, so that SQLite's planner looks each row up
    // by id instead of walking `deliveries_status` and scanning the batch for every leased row
    // (that plan cost ~200 µs of CPU per delivery in a mass logout, docs/benchmarks.md (h)).
    let updated = Sql::new(update).bind(&rows).fetch_all::<D>(conn).await?;
    updated.iter().map(|r| r.text("id")).collect()
}

/// Audits a failed attempt of `d` (rejected, failed for now, or dead).
async fn audit_failure<D: Dialect>(conn: &mut D::Connection, d: &Delivery, r: &Row<'_>) -> StoreResult<()> {
    let (k, next) = match r.verdict {
        Verdict::Delivered => return Ok(()),
        Verdict::Rejected => (AuditKind::DeliveryRejected, None),
        Verdict::Retry { at, .. } => (AuditKind::DeliveryAttemptFailed, Some(at.0)),
        Verdict::Dead { .. } => (AuditKind::DeliveryDead, None),
    };
    let detail = json!({
        "attempt": d.attempts,
        "http_status": r.attempt.http_status,
        "error": r.verdict.reason(),
        "next_attempt_at": next,
        "initiator": d.initiator.as_str(),
    });
    let e = AuditEvent::new(k, &Actor::System.name(), r.ended_at, detail)
        .client(d.client_id.as_str())
        .session(d.session_id.as_str())
        .user(d.sub.as_str())
        .delivery(d.id.as_str());
    append_audit_in::<D>(conn, &e).await
}

#[async_trait]
impl<D: Dialect> DeliveryStore for SqlStore<D> {
    async fn claim_due(&self, c: &Claim<'_>) -> StoreResult<Vec<Delivery>> {
        self.claim(c).await
    }

    fn set_handoff(&self, handoff: std::sync::Arc<dyn adieu_core::handoff::Handoff>) {
        // Installed once, by the assembly that starts the worker; a second call keeps the first.
        let _ = self.handoff.set(handoff);
    }

    async fn record_attempts(&self, batch: &[Recorded]) -> StoreResult<Vec<bool>> {
        let mut out = vec![false; batch.len()];
        // One record per delivery: if one appears twice, the last wins.
        let mut last: HashMap<&str, usize> = HashMap::new();
        for (i, r) in batch.iter().enumerate() {
            last.insert(r.attempt.delivery_id.as_str(), i);
        }
        if last.is_empty() {
            return Ok(out);
        }
        let mut ids: Vec<&str> = last.keys().copied().collect();
        ids.sort_unstable();
        let mut tx = self.write().await?;
        lock_batch::<D>(&mut *tx, &ids).await?;
        let kept: Vec<(usize, Row<'_>)> = ids.iter().map(|id| (last[id], Row::new(&batch[last[id]]))).collect();
        // Not leased any more: discarded (the client unsubscribed) or finished by another
        // worker; only the attempt is kept.
        let leased = write_batch::<D>(&mut *tx, &kept).await?;
        let failed: Vec<&str> = kept
            .iter()
            .filter(|(_, r)| !matches!(r.verdict, Verdict::Delivered) && leased.contains(&r.attempt.delivery_id))
            .map(|(_, r)| r.attempt.delivery_id.as_str())
            .collect();
        let failed = load_batch::<D>(&mut *tx, &failed).await?;
        for (i, r) in &kept {
            out[*i] = leased.contains(&r.attempt.delivery_id);
            if let Some(d) = failed.get(&r.attempt.delivery_id) {
                audit_failure::<D>(&mut *tx, d, r).await?;
            }
        }
        commit::<D>(tx).await?;
        Ok(out)
    }

    async fn deliveries(&self, f: &DeliveryFilter) -> StoreResult<Vec<Delivery>> {
        let rows = Sql::new(concat!(
            "SELECT ",
            delivery_cols!(),
            " FROM deliveries
             WHERE (CAST($1 AS TEXT) IS NULL OR status = $1) AND (CAST($2 AS TEXT) IS NULL OR client_id = $2)
               AND (CAST($3 AS TEXT) IS NULL OR session_id = $3)
             ORDER BY created_at DESC, id LIMIT $4"
        ))
        .bind(f.status.map(|s| s.as_str()))
        .bind(f.client_id.as_ref().map(|c| c.as_str()))
        .bind(f.session_id.as_ref().map(|s| s.as_str()))
        .bind(i64::from(f.limit.unwrap_or(100).clamp(1, 1000)))
        .fetch_all::<D>(&mut *self.read().await?)
        .await?;
        rows.iter().map(rows::delivery).collect()
    }

    async fn delivery(&self, id: &str) -> StoreResult<Option<(Delivery, Vec<Attempt>)>> {
        let mut conn = self.read().await?;
        let row = Sql::new(concat!("SELECT ", delivery_cols!(), " FROM deliveries WHERE id = $1"))
            .bind(id)
            .fetch_optional::<D>(&mut *conn)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let attempts = Sql::new(concat!(
            "SELECT ",
            attempt_cols!(),
            " FROM delivery_attempts WHERE delivery_id = $1 ORDER BY number"
        ))
        .bind(id)
        .fetch_all::<D>(&mut *conn)
        .await?
        .iter()
        .map(rows::attempt)
        .collect::<StoreResult<Vec<_>>>()?;
        Ok(Some((rows::delivery(&row)?, attempts)))
    }

    async fn retry_delivery(&self, id: &str, actor: &str, at: UnixMillis) -> StoreResult<Option<DeliveryStatus>> {
        let mut tx = self.write().await?;
        let sql = format!("SELECT {} FROM deliveries WHERE id = $1{}", delivery_cols!(), D::FOR_UPDATE);
        let row = Sql::new(sql).bind(id).fetch_optional::<D>(&mut *tx).await?;
        let Some(d) = row.as_ref().map(rows::delivery).transpose()? else { return Ok(None) };
        if !d.status.retryable() {
            return Ok(None);
        }
        // A pending delivery is only brought forward; a finished one starts a new round.
        let new_round = d.status != DeliveryStatus::Pending;
        Sql::new(
            "UPDATE deliveries SET status = 'pending', next_attempt_at = $1, finished_at = NULL,
               attempts = CASE WHEN $2 THEN 0 ELSE attempts END,
               round_started_at = CASE WHEN $2 THEN $1 ELSE round_started_at END
             WHERE id = $3",
        )
        .bind(at)
        .bind(new_round)
        .bind(id)
        .execute::<D>(&mut *tx)
        .await?;
        D::wake_at_commit(&mut *tx).await?;
        let e = AuditEvent::new(AuditKind::DeliveryRetried, actor, at, json!({ "from": d.status.as_str() }))
            .client(d.client_id.as_str())
            .session(d.session_id.as_str())
            .delivery(d.id.as_str());
        append_audit_in::<D>(&mut *tx, &e).await?;
        commit::<D>(tx).await?;
        Ok(Some(d.status))
    }

    async fn release_leases(&self) -> StoreResult<u64> {
        let mut tx = self.write().await?;
        let n = Sql::new(
            "UPDATE deliveries SET status = 'pending', lease_until = NULL, lease_owner = NULL
             WHERE status = 'leased' AND ($1 OR lease_owner = $2)",
        )
        .bind(D::RELEASES_EVERY_LEASE)
        .bind(&*self.replica)
        .execute::<D>(&mut *tx)
        .await?;
        if n > 0 {
            D::wake_at_commit(&mut *tx).await?;
        }
        commit::<D>(tx).await?;
        Ok(n)
    }

    async fn listen_for_deliveries(&self, wake: &(dyn Fn() + Send + Sync)) -> StoreResult<()> {
        D::listen(self, wake).await
    }

    async fn next_due(&self) -> StoreResult<Option<UnixMillis>> {
        // Each minimum through its partial index.
        let row = Sql::new(
            "SELECT MIN(t) AS t FROM (
               SELECT MIN(next_attempt_at) AS t FROM deliveries WHERE status = 'pending'
               UNION ALL
               SELECT MIN(lease_until) AS t FROM deliveries WHERE status = 'leased') AS due",
        )
        .fetch_optional::<D>(&mut *self.read().await?)
        .await?;
        Ok(row.map(|r| r.opt_ms("t")).transpose()?.flatten())
    }

    async fn queue_stats(&self) -> StoreResult<QueueStats> {
        let row = Sql::new(
            "SELECT COUNT(*) AS depth, MIN(created_at) AS oldest FROM deliveries WHERE status IN ('pending', 'leased')",
        )
        .fetch_optional::<D>(&mut *self.read().await?)
        .await?;
        let Some(row) = row else { return Ok(QueueStats::default()) };
        Ok(QueueStats {
            depth: u64::try_from(row.i64("depth")?).unwrap_or(0),
            oldest_created_at: row.opt_ms("oldest")?,
        })
    }
}

//! The delivery queue, shared by every replica.
//!
//! A claim takes due rows with `FOR UPDATE SKIP LOCKED` (a replica never waits for, nor takes, a
//! row another replica is claiming) and leases them to this replica until `now + lease`
//! (`lease_until`, `lease_owner`). A leased row is due again only when its lease has expired, so
//! while a lease is valid no other replica claims the row; a replica that dies loses its leases
//! when they expire. Recording locks the batch's rows in id order first, so concurrent recorders
//! and unsubscriptions (which lock the same way) wait for each other instead of deadlocking.

use super::notify::notify_in;
use super::rows::{attempt_cols, delivery_cols};
use super::{PostgresStore, append_audit_in, backend, rows};
use adieu_core::audit::{AuditEvent, kind};
use adieu_core::delivery::{Attempt, Delivery, DeliveryStatus};
use adieu_core::store::{AttemptResult, Claim, DeliveryFilter, DeliveryStore, QueueStats, Recorded, StoreResult};
use adieu_core::time::UnixMillis;
use async_trait::async_trait;
use serde_json::json;
use sqlx::{PgConnection, Row};
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// Due pending deliveries, oldest first, through the partial index `deliveries_due`.
const DUE_PENDING: &str = "SELECT id, client_id, next_attempt_at AS due FROM deliveries
     WHERE status = 'pending' AND next_attempt_at <= $1 AND client_id <> ALL($3) AND id <> ALL($4)
     ORDER BY next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED";

/// Leased deliveries whose lease has expired, oldest first, through `deliveries_leased`.
const DUE_EXPIRED: &str = "SELECT id, client_id, lease_until AS due FROM deliveries
     WHERE status = 'leased' AND lease_until <= $1 AND client_id <> ALL($3) AND id <> ALL($4)
     ORDER BY lease_until LIMIT $2 FOR UPDATE SKIP LOCKED";

/// Records one attempt inside the caller's transaction (its row already locked).
async fn record_attempt_in(
    conn: &mut PgConnection,
    a: &Attempt,
    result: AttemptResult,
    reason: Option<&str>,
) -> StoreResult<bool> {
    let row = sqlx::query(concat!("SELECT ", delivery_cols!(), " FROM deliveries WHERE id = $1 FOR UPDATE"))
        .bind(&a.delivery_id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(backend)?;
    let Some(row) = row else { return Ok(false) };
    let d = rows::delivery(&row)?;
    let total: i64 = row.try_get("total_attempts").map_err(backend)?;
    sqlx::query(
        "INSERT INTO delivery_attempts (delivery_id, number, at, latency_ms, http_status, error)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (delivery_id, number) DO UPDATE SET at = EXCLUDED.at, latency_ms = EXCLUDED.latency_ms,
           http_status = EXCLUDED.http_status, error = EXCLUDED.error",
    )
    .bind(&a.delivery_id)
    .bind(total)
    .bind(a.at.0)
    .bind(i64::try_from(a.latency_ms).unwrap_or(i64::MAX))
    .bind(a.http_status.map(i64::from))
    .bind(&a.error)
    .execute(&mut *conn)
    .await
    .map_err(backend)?;
    if d.status != DeliveryStatus::Leased {
        // Discarded (client unsubscribed) or already finished by another worker: keep the record only.
        return Ok(false);
    }
    let now = a.at.plus(Duration::from_millis(a.latency_ms));
    let (status, next, audit_kind) = match result {
        AttemptResult::Delivered => ("delivered", None, None),
        AttemptResult::Rejected => ("rejected", None, Some(kind::DELIVERY_REJECTED)),
        AttemptResult::Retry { at } => ("pending", Some(at), Some(kind::DELIVERY_ATTEMPT_FAILED)),
        AttemptResult::Dead => ("dead", None, Some(kind::DELIVERY_DEAD)),
    };
    let finished = if status == "pending" { None } else { Some(now.0) };
    sqlx::query(
        "UPDATE deliveries SET status = $1, lease_until = NULL, lease_owner = NULL,
           next_attempt_at = COALESCE($2, next_attempt_at), finished_at = $3, last_error = COALESCE($4, last_error)
         WHERE id = $5",
    )
    .bind(status)
    .bind(next.map(|t| t.0))
    .bind(finished)
    .bind(reason)
    .bind(&a.delivery_id)
    .execute(&mut *conn)
    .await
    .map_err(backend)?;
    if let Some(k) = audit_kind {
        let e = AuditEvent::new(
            k,
            "system",
            now,
            json!({
                "attempt": d.attempts,
                "http_status": a.http_status,
                "error": reason,
                "next_attempt_at": next.map(|t| t.0),
                "initiator": d.initiator.as_str(),
            }),
        )
        .client(d.client_id.as_str())
        .session(d.session_id.as_str())
        .user(d.sub.as_str())
        .delivery(d.id.as_str());
        append_audit_in(conn, &e).await?;
    }
    Ok(true)
}

/// Records the delivered attempts of a batch in two statements; returns the ids whose delivery
/// was still leased (and is now `delivered`).
async fn record_delivered_in(conn: &mut PgConnection, delivered: &[&Recorded]) -> StoreResult<HashSet<String>> {
    // One attempt row per delivery: if a delivery appears twice, the last record wins (as
    // SQLite's INSERT OR REPLACE does).
    let mut last: HashMap<&str, &Attempt> = HashMap::new();
    for r in delivered {
        last.insert(r.attempt.delivery_id.as_str(), &r.attempt);
    }
    let (mut ids, mut ats, mut latencies, mut statuses) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (id, a) in &last {
        ids.push(*id);
        ats.push(a.at.0);
        latencies.push(i64::try_from(a.latency_ms).unwrap_or(i64::MAX));
        statuses.push(a.http_status.map(i64::from));
    }
    sqlx::query(
        "INSERT INTO delivery_attempts (delivery_id, number, at, latency_ms, http_status, error)
         SELECT d.id, d.total_attempts, j.at, j.ms, j.status, NULL
         FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[]) AS j(id, at, ms, status)
         JOIN deliveries d ON d.id = j.id
         ON CONFLICT (delivery_id, number) DO UPDATE SET at = EXCLUDED.at, latency_ms = EXCLUDED.latency_ms,
           http_status = EXCLUDED.http_status, error = EXCLUDED.error",
    )
    .bind(&ids)
    .bind(&ats)
    .bind(&latencies)
    .bind(&statuses)
    .execute(&mut *conn)
    .await
    .map_err(backend)?;
    let finished = delivered
        .iter()
        .map(|r| r.attempt.at.0.saturating_add(i64::try_from(r.attempt.latency_ms).unwrap_or(i64::MAX)))
        .max()
        .unwrap_or(0);
    let updated: Vec<String> = sqlx::query_scalar(
        "UPDATE deliveries SET status = 'delivered', lease_until = NULL, lease_owner = NULL, finished_at = $2
         WHERE id = ANY($1) AND status = 'leased'
         RETURNING id",
    )
    .bind(&ids)
    .bind(finished)
    .fetch_all(&mut *conn)
    .await
    .map_err(backend)?;
    Ok(updated.into_iter().collect())
}

#[async_trait]
impl DeliveryStore for PostgresStore {
    async fn claim_due(&self, c: &Claim<'_>) -> StoreResult<Vec<Delivery>> {
        let until = c.now.plus(c.lease);
        let mut tx = self.pool.begin().await.map_err(backend)?;
        // Candidates, oldest first, through the two partial indexes: the cost follows the batch
        // size, not the queue length. A few more than needed, so per-client caps can skip some.
        // If the window is taken by clients that are excluded or already at their cap (a dead
        // application with a backlog), look again without them: one application's backlog must
        // never hide another's due deliveries (no head-of-line blocking). Rows another replica is
        // claiming are skipped; rows this claim looked at stay locked until it commits. A later pass
        // leaves out the rows already chosen (still due until the commit), so they do not take the
        // place of others in its window.
        let window = i64::from(c.limit).saturating_mul(4).max(64);
        let mut skip: Vec<String> = c.exclude_clients.iter().map(|x| x.as_str().to_owned()).collect();
        let mut per_client: HashMap<String, u32> = HashMap::new();
        let mut chosen: Vec<String> = Vec::new();
        for _pass in 0..4 {
            let mut candidates: Vec<(i64, String, String)> = Vec::new();
            for sql in [DUE_PENDING, DUE_EXPIRED] {
                let rows = sqlx::query(sql)
                    .bind(c.now.0)
                    .bind(window)
                    .bind(&skip)
                    .bind(&chosen)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(backend)?;
                for row in rows {
                    candidates.push((
                        row.try_get("due").map_err(backend)?,
                        row.try_get("id").map_err(backend)?,
                        row.try_get("client_id").map_err(backend)?,
                    ));
                }
            }
            candidates.sort_by_key(|(due, _, _)| *due);
            let full_window = candidates.len() as i64 >= window;
            candidates.truncate(usize::try_from(window).unwrap_or(usize::MAX));
            for (_, id, client) in candidates {
                if chosen.len() >= c.limit as usize {
                    break;
                }
                let n = per_client.entry(client.clone()).or_default();
                if *n >= c.per_client_limit.max(1) {
                    if !skip.contains(&client) {
                        skip.push(client);
                    }
                    continue;
                }
                *n += 1;
                chosen.push(id);
            }
            if chosen.len() >= c.limit as usize || !full_window {
                break;
            }
        }
        if chosen.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(concat!(
            "UPDATE deliveries SET status = 'leased', lease_until = $1, lease_owner = $2, attempts = attempts + 1,
               total_attempts = total_attempts + 1
             WHERE id = ANY($3) RETURNING ",
            delivery_cols!()
        ))
        .bind(until.0)
        .bind(&*self.replica)
        .bind(&chosen)
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        let mut out: Vec<Delivery> = rows.iter().map(rows::delivery).collect::<StoreResult<_>>()?;
        out.sort_by_key(|d| d.next_attempt_at);
        Ok(out)
    }

    async fn record_attempts(&self, batch: &[Recorded]) -> StoreResult<Vec<bool>> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let mut out = vec![false; batch.len()];
        // Every row of the batch, locked in id order before anything is written.
        let mut ids: Vec<&str> = batch.iter().map(|r| r.attempt.delivery_id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        sqlx::query("SELECT id FROM deliveries WHERE id = ANY($1) ORDER BY id FOR UPDATE")
            .bind(&ids)
            .fetch_all(&mut *tx)
            .await
            .map_err(backend)?;
        // Deliveries (the common case) in two statements for the whole batch; failures one by one
        // (they also write audit events).
        let delivered: Vec<&Recorded> = batch.iter().filter(|r| r.result == AttemptResult::Delivered).collect();
        if !delivered.is_empty() {
            let updated = record_delivered_in(&mut tx, &delivered).await?;
            for (i, r) in batch.iter().enumerate() {
                if r.result == AttemptResult::Delivered {
                    out[i] = updated.contains(&r.attempt.delivery_id);
                }
            }
        }
        for (i, r) in batch.iter().enumerate() {
            if r.result != AttemptResult::Delivered {
                out[i] = record_attempt_in(&mut tx, &r.attempt, r.result.clone(), r.reason.as_deref()).await?;
            }
        }
        tx.commit().await.map_err(backend)?;
        Ok(out)
    }

    async fn deliveries(&self, f: &DeliveryFilter) -> StoreResult<Vec<Delivery>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            delivery_cols!(),
            " FROM deliveries
             WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR client_id = $2)
               AND ($3::text IS NULL OR session_id = $3)
             ORDER BY created_at DESC, id LIMIT $4"
        ))
        .bind(f.status.map(|s| s.as_str()))
        .bind(f.client_id.as_ref().map(|c| c.as_str()))
        .bind(f.session_id.as_ref().map(|s| s.as_str()))
        .bind(i64::from(f.limit.unwrap_or(100).clamp(1, 1000)))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter().map(rows::delivery).collect()
    }

    async fn delivery(&self, id: &str) -> StoreResult<Option<(Delivery, Vec<Attempt>)>> {
        let row = sqlx::query(concat!("SELECT ", delivery_cols!(), " FROM deliveries WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        let Some(row) = row else { return Ok(None) };
        let attempts = sqlx::query(concat!(
            "SELECT ",
            attempt_cols!(),
            " FROM delivery_attempts WHERE delivery_id = $1 ORDER BY number"
        ))
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?
        .iter()
        .map(rows::attempt)
        .collect::<StoreResult<Vec<_>>>()?;
        Ok(Some((rows::delivery(&row)?, attempts)))
    }

    async fn retry_dead(&self, id: &str, actor: &str, at: UnixMillis) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let row = sqlx::query(concat!(
            "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = $1, round_started_at = $1,
               finished_at = NULL
             WHERE id = $2 AND status = 'dead' RETURNING ",
            delivery_cols!()
        ))
        .bind(at.0)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?;
        let Some(row) = row else { return Ok(false) };
        let d = rows::delivery(&row)?;
        notify_in(&mut tx).await?;
        let e = AuditEvent::new(kind::DELIVERY_RETRIED, actor, at, json!({}))
            .client(d.client_id.as_str())
            .session(d.session_id.as_str())
            .delivery(d.id.as_str());
        append_audit_in(&mut tx, &e).await?;
        tx.commit().await.map_err(backend)?;
        Ok(true)
    }

    /// Releases the leases held by this store's replica only: other replicas' leases are theirs
    /// until they expire. The other replicas are told at once.
    async fn release_leases(&self) -> StoreResult<u64> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let n = sqlx::query(
            "UPDATE deliveries SET status = 'pending', lease_until = NULL, lease_owner = NULL
             WHERE status = 'leased' AND lease_owner = $1",
        )
        .bind(&*self.replica)
        .execute(&mut *tx)
        .await
        .map_err(backend)?
        .rows_affected();
        if n > 0 {
            notify_in(&mut tx).await?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(n)
    }

    async fn listen_for_deliveries(&self, wake: &(dyn Fn() + Send + Sync)) -> StoreResult<()> {
        self.listen(wake).await
    }

    async fn next_due(&self) -> StoreResult<Option<UnixMillis>> {
        let t: Option<i64> = sqlx::query_scalar(
            "SELECT LEAST((SELECT MIN(next_attempt_at) FROM deliveries WHERE status = 'pending'),
                          (SELECT MIN(lease_until) FROM deliveries WHERE status = 'leased'))",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?;
        Ok(t.map(UnixMillis))
    }

    async fn queue_stats(&self) -> StoreResult<QueueStats> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS depth, MIN(created_at) AS oldest FROM deliveries WHERE status IN ('pending', 'leased')",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?;
        Ok(QueueStats {
            depth: u64::try_from(row.try_get::<i64, _>("depth").map_err(backend)?).unwrap_or(0),
            oldest_created_at: row.try_get::<Option<i64>, _>("oldest").map_err(backend)?.map(UnixMillis),
        })
    }
}

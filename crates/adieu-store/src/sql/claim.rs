//! Claiming due deliveries: which rows a worker leases next, on both backends.
//!
//! Candidates come oldest first through the two partial indexes (`deliveries_due` for pending
//! rows, `deliveries_leased` for expired leases), so a claim costs what its batch costs, not what
//! the queue holds. A few more than needed are read, so per-client caps can skip some; if the
//! window is taken by clients that are excluded or already at their cap (a dead application with
//! a backlog), the claim looks again without them: one application's backlog never hides
//! another's due deliveries (no head-of-line blocking). A later pass leaves out the rows already
//! chosen (still due until the claim commits), so they do not take the place of others.
//!
//! PostgreSQL reads with `FOR UPDATE SKIP LOCKED`: a replica never waits for, nor takes, a row
//! another replica is claiming. SQLite has one writer, and the claim runs in its transaction.

use super::rows::{self, delivery_cols};
use super::stmt::to_json;
use super::{Dialect, Read, Sql, SqlStore, commit};
use adieu_core::delivery::Delivery;
use adieu_core::store::{Claim, StoreResult};
use std::collections::HashMap;

/// How many passes a claim makes at most before it settles for a smaller batch.
const PASSES: usize = 4;

/// One candidate row: when it became due, its id and its client.
struct Candidate {
    due: i64,
    id: String,
    client: String,
}

/// The candidates of one kind (`status`, ordered by `due_col` through `index`), oldest first.
async fn candidates<D: Dialect>(
    conn: &mut D::Connection,
    kind: (&str, &str, &str),
    claim: &Claim<'_>,
    window: i64,
    skip: &[String],
    chosen: &[String],
) -> StoreResult<Vec<Candidate>> {
    let (status, due_col, index) = kind;
    let sql = format!(
        "SELECT id, client_id, {due_col} AS due FROM {table}
         WHERE status = '{status}' AND {due_col} <= $1
           AND client_id NOT IN {skip} AND id NOT IN {chosen}
         ORDER BY {due_col} LIMIT $2{lock}",
        table = D::indexed("deliveries", index),
        skip = D::json_list("$3"),
        chosen = D::json_list("$4"),
        lock = D::SKIP_LOCKED,
    );
    let rows = Sql::new(sql)
        .bind(claim.now)
        .bind(window)
        .bind(to_json(skip)?)
        .bind(to_json(chosen)?)
        .fetch_all::<D>(conn)
        .await?;
    rows.iter().map(|r| Ok(Candidate { due: r.i64("due")?, id: r.text("id")?, client: r.text("client_id")? })).collect()
}

/// The ids to lease, chosen under the claim's limits.
async fn choose<D: Dialect>(conn: &mut D::Connection, c: &Claim<'_>) -> StoreResult<Vec<String>> {
    let limit = c.limit as usize;
    let window = i64::from(c.limit).saturating_mul(2).max(64);
    let mut skip: Vec<String> = c.exclude_clients.iter().map(|x| x.as_str().to_owned()).collect();
    let mut per_client: HashMap<String, u32> = HashMap::new();
    let mut chosen: Vec<String> = Vec::new();
    for _pass in 0..PASSES {
        let mut found =
            candidates::<D>(conn, ("pending", "next_attempt_at", "deliveries_due"), c, window, &skip, &chosen).await?;
        found.extend(
            candidates::<D>(conn, ("leased", "lease_until", "deliveries_leased"), c, window, &skip, &chosen).await?,
        );
        found.sort_by_key(|x| x.due);
        let full_window = found.len() as i64 >= window;
        found.truncate(usize::try_from(window).unwrap_or(usize::MAX));
        for Candidate { id, client, .. } in found {
            if chosen.len() >= limit {
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
        if chosen.len() >= limit || !full_window {
            break;
        }
    }
    Ok(chosen)
}

impl<D: Dialect> SqlStore<D> {
    /// See [`DeliveryStore::claim_due`](adieu_core::store::DeliveryStore::claim_due).
    pub(crate) async fn claim(&self, c: &Claim<'_>) -> StoreResult<Vec<Delivery>> {
        let mut tx = self.write().await?;
        let chosen = choose::<D>(&mut *tx, c).await?;
        if chosen.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "UPDATE deliveries SET status = 'leased', lease_until = $1, lease_owner = $2, attempts = attempts + 1,
               total_attempts = total_attempts + 1
             WHERE id IN {} RETURNING {}",
            D::json_list("$3"),
            delivery_cols!()
        );
        let leased = Sql::new(sql)
            .bind(c.now.plus(c.lease))
            .bind(&*self.replica)
            .bind(to_json(&chosen)?)
            .fetch_all::<D>(&mut *tx)
            .await?;
        commit::<D>(tx).await?;
        let mut out: Vec<Delivery> = leased.iter().map(rows::delivery).collect::<StoreResult<_>>()?;
        out.sort_by_key(|d| d.next_attempt_at);
        Ok(out)
    }
}

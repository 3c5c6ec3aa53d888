//! Waking other replicas: `LISTEN/NOTIFY` on the channel [`CHANNEL`].
//!
//! Every transaction that makes deliveries claimable (ending sessions, an operator's retry,
//! released leases) calls [`notify_in`] before it commits; PostgreSQL sends the notification at
//! commit, and not at all on rollback, so a woken worker always finds the rows committed. Each
//! replica's worker listens ([`listen`]) on a connection of its own and looks at
//! the queue when told. The payload is the schema the rows went to, so installations that share
//! a database in different schemas do not wake each other. Notifications are not stored: one sent
//! while a replica was not listening is lost, which is why a (re)connected listener wakes its
//! worker once, and why workers still poll.

use super::classify as backend;
use crate::sql::SqlStore;
use adieu_core::store::StoreResult;
use sqlx::postgres::{PgListener, PgPoolOptions};
use sqlx::{PgConnection, Postgres};
use std::time::Duration;

/// The notification channel.
pub const CHANNEL: &str = "adieu_deliveries";

/// Queues the notification inside the caller's transaction; PostgreSQL sends it at commit (one per
/// transaction however often this is called: identical notifications are folded).
pub(super) async fn notify_in(conn: &mut PgConnection) -> StoreResult<()> {
    sqlx::query("SELECT pg_notify($1, coalesce(current_schema(), ''))")
        .bind(CHANNEL)
        .execute(&mut *conn)
        .await
        .map_err(backend)?;
    Ok(())
}

/// Listens on [`CHANNEL`] for this schema and calls `wake` for each notification, and once as
/// soon as it listens. A connection lost and re-established by the listener also calls `wake`
/// (what was sent in between is lost). Returns only with an error.
pub(super) async fn listen(store: &SqlStore<Postgres>, wake: &(dyn Fn() + Send + Sync)) -> StoreResult<()> {
    // A pool of one connection of its own: listening never takes a connection from queries,
    // and the connection is not recycled while it listens.
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .max_lifetime(None)
        .idle_timeout(None)
        .connect_with((*store.writer.connect_options()).clone())
        .await
        .map_err(backend)?;
    let result = listen_on(&pool, wake).await;
    pool.close().await;
    result
}

async fn listen_on(pool: &sqlx::PgPool, wake: &(dyn Fn() + Send + Sync)) -> StoreResult<()> {
    let mut listener = PgListener::connect_with(pool).await.map_err(backend)?;
    listener.listen(CHANNEL).await.map_err(backend)?;
    let schema: String =
        sqlx::query_scalar("SELECT coalesce(current_schema(), '')").fetch_one(&mut listener).await.map_err(backend)?;
    tracing::info!(channel = CHANNEL, schema, "listening for deliveries written by other replicas");
    wake();
    loop {
        match listener.try_recv().await.map_err(backend)? {
            Some(n) if n.payload() == schema => wake(),
            Some(_) => {}
            None => {
                tracing::info!("the listening connection was lost and re-established; looking at the queue");
                wake();
            }
        }
    }
}

//! The provider side of scenario h: one `adieu serve` on SQLite, or two replicas on a fresh
//! PostgreSQL database; the users, sessions and participations seeded before they start; the
//! management API calls that end those sessions; and the CPU and memory of the processes.
//!
//! **Seeding.** Signing in thousands of sessions through the browser flow (an argon2id hash each)
//! would take far longer than the measurement and measure something else, so every session is
//! written with SQL before `adieu serve` starts, on the database the CLI has just migrated: one row
//! per user in `users`, one per session in `sessions` (open, `last_seen_at` = now), and one per
//! (session, client) in `participations` with `sid` = `{session id}.{client index}`, the rows
//! `adieu-store`'s `create_user`, `create_session` and `ensure_participation` write. The same
//! statements run on SQLite and PostgreSQL (`INSERT … SELECT` over a recursive CTE, so a million
//! participations are a hundred statements). Ending them goes through the real provider: the
//! management API (`DELETE /api/v1/users/{id}/sessions`, `DELETE /api/v1/sessions/{id}`), which ends
//! the sessions as `session-revoked` and writes their deliveries in one transaction, and the
//! replicas' delivery workers, which sign and send them.

use crate::Opts;
use crate::cpu::clock_ticks;
use crate::harness::{KEEP, Prepared, Provider, Verifier};
use crate::scenario_f::{backend_pids, cpu_of, postgres_pids, used_between};
use adieu_core::{Clock, SystemClock};
use anyhow::{Context, Result, ensure};
use serde_json::Value;
use sqlx::Connection;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Where the provider keeps its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    /// One `adieu serve` on a fresh SQLite file.
    Sqlite,
    /// Two `adieu serve` replicas (`replica_id` `h-1`, `h-2`, each with its delivery worker) on a
    /// fresh PostgreSQL database.
    Postgres,
}

impl Backend {
    /// For the report.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite, 1 replica",
            Backend::Postgres => "PostgreSQL, 2 replicas",
        }
    }

    /// How many `adieu serve` processes (each with a delivery worker).
    pub(crate) fn replicas(self) -> usize {
        match self {
            Backend::Sqlite => 1,
            Backend::Postgres => 2,
        }
    }
}

/// Sessions to seed: `sessions` open sessions of the user `user` (also its id, the tokens' `sub`),
/// each with a participation of clients `0..clients`.
#[derive(Debug, Clone)]
pub(crate) struct Seed {
    pub user: String,
    pub sessions: usize,
    pub clients: usize,
}

impl Seed {
    /// The id of session `k` (`{user}-{k}`); its participations' `sid`s are `{id}.{client index}`.
    pub(crate) fn session_id(&self, k: usize) -> String {
        format!("{}-{k}", self.user)
    }

    /// Deliveries when all its sessions end.
    pub(crate) fn deliveries(&self) -> usize {
        self.sessions * self.clients
    }
}

/// A connection for seeding, to either backend.
#[derive(Debug)]
enum Sql {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl Sql {
    async fn connect(url: &str) -> Result<Sql> {
        Ok(if url.starts_with("sqlite:") {
            Sql::Sqlite(sqlx::SqliteConnection::connect(url).await?)
        } else {
            Sql::Postgres(sqlx::PgConnection::connect(url).await?)
        })
    }

    async fn exec(&mut self, sql: &str) -> Result<u64> {
        Ok(match self {
            Sql::Sqlite(c) => sqlx::query(sql).execute(c).await?.rows_affected(),
            Sql::Postgres(c) => sqlx::query(sql).execute(c).await?.rows_affected(),
        })
    }

    async fn close(self) {
        let _ = match self {
            Sql::Sqlite(c) => c.close().await,
            Sql::Postgres(c) => c.close().await,
        };
    }
}

/// Writes the users, sessions and participations of `seeds` into the database at `url` (see the
/// module documentation). Names are the harness's own (letters, digits, `-`), so they go into the
/// statements as literals.
async fn seed(url: &str, seeds: &[Seed]) -> Result<()> {
    let mut db = Sql::connect(url).await.context("connecting for seeding")?;
    let now = SystemClock.now().0;
    for s in seeds {
        let u = &s.user;
        db.exec(&format!(
            "INSERT INTO users (id, username, email, password_hash, created_at, updated_at) \
             VALUES ('{u}', '{u}', NULL, '!seeded-without-a-password', {now}, {now})"
        ))
        .await?;
        let sessions = db
            .exec(&format!(
                "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < {}) \
                 INSERT INTO sessions (id, user_id, cookie_hash, auth_time, created_at, last_seen_at) \
                 SELECT '{u}-' || i, '{u}', 'seeded-cookie-{u}-' || i, {now}, {now}, {now} FROM n",
                s.sessions
            ))
            .await?;
        let participations = db
            .exec(&format!(
                "WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i + 1 < {}) \
                 INSERT INTO participations (session_id, client_id, sid, created_at) \
                 SELECT s.id, 'bench-' || c.i, s.id || '.' || c.i, {now} FROM sessions s CROSS JOIN c \
                 WHERE s.user_id = '{u}'",
                s.clients
            ))
            .await?;
        ensure!(
            sessions as usize == s.sessions && participations as usize == s.deliveries(),
            "seeding {u}: {sessions} sessions and {participations} participations written"
        );
    }
    db.close().await;
    Ok(())
}

/// A fresh PostgreSQL database for one run, dropped by [`Cluster::stop`].
#[derive(Debug)]
struct PgDatabase {
    /// Where `CREATE DATABASE` ran: `ADIEU_TEST_POSTGRES_URL`, default
    /// `postgres://postgres@127.0.0.1:5432/postgres`.
    admin_url: String,
    name: String,
    /// The admin URL with the new database's name as its path.
    url: String,
}

impl PgDatabase {
    async fn create() -> Result<PgDatabase> {
        let admin_url = std::env::var("ADIEU_TEST_POSTGRES_URL")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let mut conn = sqlx::PgConnection::connect(&admin_url)
            .await
            .with_context(|| format!("PostgreSQL at {admin_url} (set ADIEU_TEST_POSTGRES_URL)"))?;
        let name: String = sqlx::query_scalar("SELECT 'bench_h_' || replace(gen_random_uuid()::text, '-', '')")
            .fetch_one(&mut conn)
            .await?;
        // The simple query protocol: CREATE DATABASE must not run inside a transaction block.
        sqlx::raw_sql(&format!("CREATE DATABASE {name}")).execute(&mut conn).await?;
        let _ = conn.close().await;
        let mut url = url::Url::parse(&admin_url)?;
        url.set_path(&format!("/{name}"));
        eprintln!("    PostgreSQL database {name}");
        Ok(PgDatabase { admin_url, name, url: url.to_string() })
    }

    /// Drops the database (unless `--keep`); a failure is only reported.
    async fn drop_database(&self) {
        if KEEP.load(Ordering::Relaxed) {
            eprintln!("    kept PostgreSQL database {}", self.name);
            return;
        }
        let result = async {
            let mut conn = sqlx::PgConnection::connect(&self.admin_url).await?;
            sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)).execute(&mut conn).await?;
            let _ = conn.close().await;
            anyhow::Ok(())
        };
        if let Err(e) = result.await {
            eprintln!("    could not drop database {}: {e:#}", self.name);
        }
    }
}

/// The management API of the running replicas (cheap to clone into a driver task).
#[derive(Debug, Clone)]
pub(crate) struct Api {
    http: reqwest::Client,
    token: String,
    bases: Vec<String>,
}

impl Api {
    /// `DELETE /api/v1/users/{user}/sessions` at replica `replica % replicas`; the number of
    /// sessions it ended.
    pub(crate) async fn end_user_sessions(&self, replica: usize, user: &str) -> Result<usize> {
        let base = &self.bases[replica % self.bases.len()];
        let res =
            self.http.delete(format!("{base}/api/v1/users/{user}/sessions")).bearer_auth(&self.token).send().await?;
        ensure!(res.status() == 200, "DELETE /api/v1/users/{user}/sessions answered {}", res.status());
        let body: Value = res.json().await?;
        body["sessions_ended"].as_u64().map(|n| n as usize).context("no sessions_ended in the answer")
    }

    /// `DELETE /api/v1/sessions/{id}` at replica `replica % replicas`.
    pub(crate) async fn end_session(&self, replica: usize, id: &str) -> Result<()> {
        let base = &self.bases[replica % self.bases.len()];
        let res = self.http.delete(format!("{base}/api/v1/sessions/{id}")).bearer_auth(&self.token).send().await?;
        ensure!(res.status() == 200, "DELETE /api/v1/sessions/{id} answered {}", res.status());
        Ok(())
    }
}

/// CPU seconds so far of the replicas and of the PostgreSQL backends serving them.
#[derive(Debug)]
pub(crate) struct CpuSnap {
    replicas: HashMap<u32, f64>,
    backends: HashMap<u32, f64>,
}

/// The running provider: one or two replicas, their management API and their database.
#[derive(Debug)]
pub(crate) struct Cluster {
    pub providers: Vec<Provider>,
    pub api: Api,
    pub backend: Backend,
    /// Seconds it took to seed the sessions.
    pub seed_secs: f64,
    db: Option<PgDatabase>,
    ticks: f64,
}

impl Cluster {
    /// Prepares the database (clients `bench-{i}` for `receivers`, signing with `alg`, subscribed
    /// to `session-revoked`; `logout_wait_ms = 0`; other settings default), seeds `seeds`, makes an
    /// admin token and starts the replicas.
    pub(crate) async fn start(
        opts: &Opts,
        backend: Backend,
        alg: &str,
        receivers: &[SocketAddr],
        seeds: &[Seed],
    ) -> Result<Cluster> {
        let db = match backend {
            Backend::Postgres => Some(PgDatabase::create().await?),
            Backend::Sqlite => None,
        };
        match Self::start_on(opts, backend, alg, receivers, seeds, db.as_ref()).await {
            Ok((providers, api, seed_secs)) => {
                Ok(Cluster { providers, api, backend, seed_secs, db, ticks: clock_ticks() })
            }
            Err(e) => {
                if let Some(db) = db {
                    db.drop_database().await;
                }
                Err(e)
            }
        }
    }

    async fn start_on(
        opts: &Opts,
        backend: Backend,
        alg: &str,
        receivers: &[SocketAddr],
        seeds: &[Seed],
        db: Option<&PgDatabase>,
    ) -> Result<(Vec<Provider>, Api, f64)> {
        let mut env: Vec<(&str, String)> = vec![("ADIEU_DELIVERY__LOGOUT_WAIT_MS", "0".into())];
        if let Some(db) = db {
            env.push(("ADIEU_DATABASE_URL", db.url.clone()));
            env.push(("ADIEU_DATABASE__REPLICA_ID", "h-1".into()));
        }
        eprintln!("(h) {}: registering {} {alg} clients…", backend.label(), receivers.len());
        let initiators = ["--backchannel-logout-initiators", "session-revoked"];
        let prepared = Prepared::with_alg(&opts.adieu, receivers, &env, &initiators, alg).await?;
        let url = db.map_or_else(|| prepared.database_url(), |d| d.url.clone());
        let total: usize = seeds.iter().map(Seed::deliveries).sum();
        eprintln!("(h) seeding {} users, {total} participations…", seeds.len());
        let started = Instant::now();
        seed(&url, seeds).await.context("seeding")?;
        let seed_secs = started.elapsed().as_secs_f64();
        let token = prepared.cli(&["admin-token", "create", "--label", "bench h"]).await?.trim().to_owned();
        let second = match backend {
            Backend::Postgres => Some(prepared.replica(&[
                ("ADIEU_ISSUER", prepared.base().to_owned()),
                ("ADIEU_DATABASE__REPLICA_ID", "h-2".into()),
            ])?),
            Backend::Sqlite => None,
        };
        let mut providers = vec![prepared.serve().await?];
        if let Some(p) = second {
            providers.push(p.serve().await?);
        }
        let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(600)).build()?;
        let api = Api { http, token, bases: providers.iter().map(|p| p.base.clone()).collect() };
        Ok((providers, api, seed_secs))
    }

    /// A verifier for the provider's tokens signed with `alg`.
    pub(crate) async fn verifier(&self, alg: jsonwebtoken::Algorithm) -> Result<Verifier> {
        Ok(self.providers[0].verifier().await?.expecting(alg))
    }

    /// Waits until no replica has a delivery pending or in flight.
    pub(crate) async fn wait_idle(&self, within: Duration) -> Result<()> {
        for p in &self.providers {
            p.wait_idle(within).await?;
        }
        Ok(())
    }

    /// `adieu_delivery_attempts_total{outcome}` of each replica.
    pub(crate) async fn attempts(&self, outcome: &str) -> Result<Vec<u64>> {
        let mut out = Vec::with_capacity(self.providers.len());
        for p in &self.providers {
            out.push(p.attempts(outcome).await?);
        }
        Ok(out)
    }

    /// `VmHWM` (peak resident set) of each replica, KiB.
    pub(crate) fn peak_memory_kib(&self) -> Result<Vec<u64>> {
        self.providers.iter().map(|p| Ok(p.memory_kib()?.0)).collect()
    }

    /// WARN and ERROR lines in all the replicas' logs.
    pub(crate) fn log_levels(&self) -> (usize, usize) {
        self.providers.iter().map(Provider::log_levels).fold((0, 0), |(w, e), (a, b)| (w + a, e + b))
    }

    /// CPU seconds so far (see [`Cluster::cpu_since`]).
    pub(crate) async fn cpu(&self) -> Result<CpuSnap> {
        let pids: Vec<u32> = self.providers.iter().map(|p| p.pid).collect();
        let backends = match &self.db {
            Some(db) => cpu_of(&backend_pids(&db.url, "h-").await?, self.ticks),
            None => HashMap::new(),
        };
        Ok(CpuSnap { replicas: cpu_of(&pids, self.ticks), backends })
    }

    /// CPU seconds used since `before` by the replicas (utime + stime of the `adieu serve`
    /// processes, from `/proc/<pid>/stat`) and by the PostgreSQL backends of their connections
    /// (found by `application_name` `adieu h-…`; 0 on SQLite).
    pub(crate) async fn cpu_since(&self, before: &CpuSnap) -> Result<(f64, f64)> {
        let now = self.cpu().await?;
        Ok((used_between(&before.replicas, &now.replicas), used_between(&before.backends, &now.backends)))
    }

    /// Every PostgreSQL server process's CPU seconds so far (empty on SQLite).
    pub(crate) fn postgres_cpu(&self) -> HashMap<u32, f64> {
        if self.db.is_some() { cpu_of(&postgres_pids(), self.ticks) } else { HashMap::new() }
    }

    /// Stops the replicas and drops the PostgreSQL database.
    pub(crate) async fn stop(self) -> Result<()> {
        let mut result = Ok(());
        for p in self.providers {
            if let Err(e) = p.stop().await {
                result = Err(e);
            }
        }
        if let Some(db) = &self.db {
            db.drop_database().await;
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use adieu_core::id::{SessionId, UserId};
    use adieu_core::store::SessionStore;
    use adieu_store::SqliteStore;

    #[tokio::test]
    async fn seeded_rows_read_back_through_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/seed.db", dir.path().display());
        // Opening migrates, as `adieu migrate` does before the harness seeds.
        let store = SqliteStore::open(&url).await.unwrap();
        let seeds = [
            Seed { user: "h-keep-mass".into(), sessions: 3, clients: 4 },
            Seed { user: "h-keep-n50".into(), sessions: 1, clients: 2 },
        ];
        seed(&url, &seeds).await.unwrap();
        let open = store.open_sessions_of_user(&UserId::new("h-keep-mass")).await.unwrap();
        assert_eq!(open.len(), 3);
        let ids: Vec<SessionId> = (0..3).map(|k| SessionId::new(seeds[0].session_id(k))).collect();
        let parts = store.participations_of_sessions(&ids).await.unwrap();
        assert_eq!(parts.len(), seeds[0].deliveries());
        for p in &parts {
            let index = p.client_id.as_str().strip_prefix("bench-").unwrap();
            assert_eq!(p.sid.as_str(), format!("{}.{index}", p.session_id.as_str()));
        }
        let other = store.open_sessions_of_user(&UserId::new("h-keep-n50")).await.unwrap();
        assert_eq!(other.len(), 1);
    }
}

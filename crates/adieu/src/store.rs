//! Choosing the storage backend: the only place that does. `sqlite:` URLs open the embedded
//! database; `postgres:`/`postgresql:` URLs open PostgreSQL (cargo feature `postgres`, on by
//! default), where several replicas share one database.

use crate::config::{Config, DatabaseSettings};
use adieu_core::Store;
use anyhow::Context;
use std::sync::Arc;

/// Opens the configured database and applies migrations.
pub async fn open(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let url = &config.database_url;
    if url.starts_with("sqlite:") {
        if let Some(dir) = config.sqlite_dir() {
            std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let store = adieu_store::SqliteStore::open(url).await.with_context(|| format!("cannot open {url}"))?;
        return Ok(Arc::new(store));
    }
    if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        return open_postgres(url, &config.database).await;
    }
    anyhow::bail!("unsupported database_url {:?} (expected sqlite://PATH or postgres://…)", redacted(url))
}

#[cfg(feature = "postgres")]
async fn open_postgres(url: &str, db: &DatabaseSettings) -> anyhow::Result<Arc<dyn Store>> {
    anyhow::ensure!(db.max_connections >= 1, "database.max_connections must be at least 1");
    let options = adieu_store::PostgresOptions {
        max_connections: db.max_connections,
        replica_id: db.replica_id.clone(),
        ..Default::default()
    };
    let store = adieu_store::PostgresStore::open(url, &options)
        .await
        .with_context(|| format!("cannot open {}", redacted(url)))?;
    tracing::debug!(replica_id = store.replica_id(), max_connections = db.max_connections, "PostgreSQL store open");
    Ok(Arc::new(store))
}

#[cfg(not(feature = "postgres"))]
async fn open_postgres(_url: &str, _db: &DatabaseSettings) -> anyhow::Result<Arc<dyn Store>> {
    anyhow::bail!("this adieu was built without PostgreSQL support (cargo feature `postgres`)")
}

/// `url` with its password (in the user part or a `password=` parameter) replaced by `***`, for
/// logs and error messages.
pub fn redacted(url: &str) -> String {
    let Ok(mut u) = url::Url::parse(url) else { return url.to_owned() };
    if u.password().is_some() {
        let _ = u.set_password(Some("***"));
    }
    if u.query_pairs().any(|(k, _)| k == "password") {
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, v)| {
                let v = if k == "password" { "***".to_owned() } else { v.into_owned() };
                (k.into_owned(), v)
            })
            .collect();
        u.query_pairs_mut().clear().extend_pairs(pairs);
    }
    u.to_string()
}

#[cfg(test)]
mod tests {
    use super::redacted;

    #[test]
    fn passwords_never_reach_the_logs() {
        assert_eq!(redacted("postgres://adieu:s3cret@db:5432/adieu"), "postgres://adieu:***@db:5432/adieu");
        assert_eq!(redacted("postgres://adieu@db/adieu?sslmode=require"), "postgres://adieu@db/adieu?sslmode=require");
        assert_eq!(redacted("postgres://db/adieu?user=a&password=s3cret"), "postgres://db/adieu?user=a&password=***");
        assert_eq!(redacted("sqlite://./adieu-data/adieu.db"), "sqlite://./adieu-data/adieu.db");
    }
}

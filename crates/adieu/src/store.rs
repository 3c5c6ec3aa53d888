//! Choosing the storage backend: the only place that does.

use crate::config::Config;
use adieu_core::Store;
use adieu_store::SqliteStore;
use anyhow::Context;
use std::sync::Arc;

/// Opens the configured database and applies migrations.
pub async fn open(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let url = &config.database_url;
    if url.starts_with("sqlite:") {
        if let Some(dir) = config.sqlite_dir() {
            std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let store = SqliteStore::open(url).await.with_context(|| format!("cannot open {url}"))?;
        return Ok(Arc::new(store));
    }
    if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        anyhow::bail!("PostgreSQL is not supported by this version yet; use a sqlite:// database_url");
    }
    anyhow::bail!("unsupported database_url {url:?} (expected sqlite://PATH)")
}

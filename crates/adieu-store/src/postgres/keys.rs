//! [`KeyStore`] for PostgreSQL: signing keys with their generation, start of signing and
//! retirement (migration 0005). `(alg, generation)` is unique, so replicas that generate a first
//! key at the same moment insert one and the others get a conflict; a retirement locks its
//! algorithm's rows (`FOR UPDATE`), so two retirements at once cannot leave an algorithm without a
//! published key.

use super::{PostgresStore, append_audit_in, backend};
use adieu_core::audit::{AuditEvent, kind};
use adieu_core::keys::{RetireRefusal, StoredSigningKey, check_retire};
use adieu_core::store::{KeyStore, StoreError, StoreResult};
use adieu_core::time::UnixMillis;
use async_trait::async_trait;
use serde_json::json;
use sqlx::Row;
use sqlx::postgres::PgRow;

/// Named columns (never `*`): a running replica's cached statements survive added columns.
macro_rules! key_cols {
    () => {
        "kid, alg, generation, private_pkcs8, created_at, signs_from, retired_at"
    };
}

fn key_from_row(r: &PgRow) -> StoreResult<StoredSigningKey> {
    Ok(StoredSigningKey {
        kid: r.try_get("kid").map_err(backend)?,
        alg: r
            .try_get::<String, _>("alg")
            .map_err(backend)?
            .parse()
            .map_err(|e| StoreError::Backend(format!("{e}")))?,
        generation: r.try_get("generation").map_err(backend)?,
        private_key: r.try_get("private_pkcs8").map_err(backend)?,
        created_at: UnixMillis(r.try_get("created_at").map_err(backend)?),
        signs_from: UnixMillis(r.try_get("signs_from").map_err(backend)?),
        retired_at: r.try_get::<Option<i64>, _>("retired_at").map_err(backend)?.map(UnixMillis),
    })
}

#[async_trait]
impl KeyStore for PostgresStore {
    async fn signing_keys(&self) -> StoreResult<Vec<StoredSigningKey>> {
        let rows = sqlx::query(concat!("SELECT ", key_cols!(), " FROM signing_keys ORDER BY created_at, kid"))
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows.iter().map(key_from_row).collect()
    }

    async fn insert_signing_key(&self, k: &StoredSigningKey, actor: &str) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        sqlx::query(concat!("INSERT INTO signing_keys (", key_cols!(), ") VALUES ($1, $2, $3, $4, $5, $6, $7)"))
            .bind(&k.kid)
            .bind(k.alg.as_str())
            .bind(k.generation)
            .bind(&k.private_key)
            .bind(k.created_at.0)
            .bind(k.signs_from.0)
            .bind(k.retired_at.map(|t| t.0))
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        let detail =
            json!({"kid": k.kid, "alg": k.alg.as_str(), "generation": k.generation, "signs_from": k.signs_from});
        append_audit_in(&mut tx, &AuditEvent::new(kind::KEY_CREATED, actor, k.created_at, detail)).await?;
        tx.commit().await.map_err(backend)?;
        Ok(())
    }

    async fn retire_signing_key(
        &self,
        kid: &str,
        actor: &str,
        at: UnixMillis,
    ) -> StoreResult<Result<StoredSigningKey, RetireRefusal>> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let rows = sqlx::query(concat!(
            "SELECT ",
            key_cols!(),
            " FROM signing_keys WHERE alg = (SELECT alg FROM signing_keys WHERE kid = $1)
             ORDER BY created_at, kid FOR UPDATE"
        ))
        .bind(kid)
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;
        let keys = rows.iter().map(key_from_row).collect::<StoreResult<Vec<_>>>()?;
        let i = match check_retire(&keys, kid, at) {
            Ok(i) => i,
            Err(refusal) => return Ok(Err(refusal)),
        };
        sqlx::query("UPDATE signing_keys SET retired_at = $1, private_pkcs8 = ''::bytea WHERE kid = $2")
            .bind(at.0)
            .bind(kid)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        let k = &keys[i];
        let detail = json!({"kid": k.kid, "alg": k.alg.as_str(), "generation": k.generation});
        append_audit_in(&mut tx, &AuditEvent::new(kind::KEY_RETIRED, actor, at, detail)).await?;
        tx.commit().await.map_err(backend)?;
        Ok(Ok(StoredSigningKey { private_key: Vec::new(), retired_at: Some(at), ..keys[i].clone() }))
    }
}

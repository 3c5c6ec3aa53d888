//! Signing keys with their generation, start of signing and retirement (migration 0005).
//!
//! `(alg, generation)` is unique, so replicas that generate a first key at the same moment insert
//! one and the others get a conflict. A retirement locks its algorithm's rows (`FOR UPDATE` on
//! PostgreSQL; SQLite's writers are serialised anyway), so two retirements at once cannot leave
//! an algorithm without a published key.

use super::audit::append_audit_in;
use super::{Dialect, Read, Sql, SqlStore, commit};
use adieu_core::audit::{AuditEvent, AuditKind};
use adieu_core::keys::{RetireRefusal, StoredSigningKey, check_retire};
use adieu_core::store::{KeyStore, StoreError, StoreResult};
use adieu_core::time::UnixMillis;
use async_trait::async_trait;
use serde_json::json;

/// Named columns (never `*`): a running replica's cached statements survive added columns.
macro_rules! key_cols {
    () => {
        "kid, alg, generation, private_pkcs8, created_at, signs_from, retired_at"
    };
}

fn key(r: &impl Read) -> StoreResult<StoredSigningKey> {
    Ok(StoredSigningKey {
        kid: r.text("kid")?,
        alg: r.text("alg")?.parse().map_err(|e| StoreError::Backend(format!("{e}")))?,
        generation: r.i64("generation")?,
        private_key: r.bytes("private_pkcs8")?,
        created_at: r.ms("created_at")?,
        signs_from: r.ms("signs_from")?,
        retired_at: r.opt_ms("retired_at")?,
    })
}

#[async_trait]
impl<D: Dialect> KeyStore for SqlStore<D> {
    async fn signing_keys(&self) -> StoreResult<Vec<StoredSigningKey>> {
        let rows = Sql::new(concat!("SELECT ", key_cols!(), " FROM signing_keys ORDER BY created_at, kid"))
            .fetch_all::<D>(&mut *self.read().await?)
            .await?;
        rows.iter().map(key).collect()
    }

    async fn insert_signing_key(&self, k: &StoredSigningKey, actor: &str) -> StoreResult<()> {
        let mut tx = self.write().await?;
        Sql::new(concat!("INSERT INTO signing_keys (", key_cols!(), ") VALUES ($1, $2, $3, $4, $5, $6, $7)"))
            .bind(k.kid.as_str())
            .bind(k.alg.as_str())
            .bind(k.generation)
            .bind(k.private_key.as_slice())
            .bind(k.created_at)
            .bind(k.signs_from)
            .bind(k.retired_at)
            .execute::<D>(&mut *tx)
            .await?;
        let detail =
            json!({"kid": k.kid, "alg": k.alg.as_str(), "generation": k.generation, "signs_from": k.signs_from});
        append_audit_in::<D>(&mut *tx, &AuditEvent::new(AuditKind::KeyCreated, actor, k.created_at, detail)).await?;
        commit::<D>(tx).await
    }

    async fn retire_signing_key(
        &self,
        kid: &str,
        actor: &str,
        at: UnixMillis,
    ) -> StoreResult<Result<StoredSigningKey, RetireRefusal>> {
        let mut tx = self.write().await?;
        let sql = format!(
            "SELECT {} FROM signing_keys WHERE alg = (SELECT alg FROM signing_keys WHERE kid = $1)
             ORDER BY created_at, kid{}",
            key_cols!(),
            D::FOR_UPDATE
        );
        let rows = Sql::new(sql).bind(kid).fetch_all::<D>(&mut *tx).await?;
        let keys = rows.iter().map(key).collect::<StoreResult<Vec<_>>>()?;
        let i = match check_retire(&keys, kid, at) {
            Ok(i) => i,
            Err(refusal) => return Ok(Err(refusal)),
        };
        // The private key is erased: an empty byte string on both backends.
        Sql::new("UPDATE signing_keys SET retired_at = $1, private_pkcs8 = $2 WHERE kid = $3")
            .bind(at)
            .bind(Vec::<u8>::new())
            .bind(kid)
            .execute::<D>(&mut *tx)
            .await?;
        let k = &keys[i];
        let detail = json!({"kid": k.kid, "alg": k.alg.as_str(), "generation": k.generation});
        append_audit_in::<D>(&mut *tx, &AuditEvent::new(AuditKind::KeyRetired, actor, at, detail)).await?;
        commit::<D>(tx).await?;
        Ok(Ok(StoredSigningKey { private_key: Vec::new(), retired_at: Some(at), ..keys[i].clone() }))
    }
}

//! Signing keys on every backend: generations unique per algorithm (how replicas that start
//! together agree on one first key), retirement with its refusals, and the audit of both.

use super::T0;
#[cfg(feature = "postgres")]
use super::postgres;
use super::sqlite;
use adieu_core::audit::AuditFilter;
use adieu_core::keys::{RetireRefusal, StoredSigningKey};
use adieu_core::store::StoreError;
use adieu_core::time::UnixMillis;
use adieu_core::{Store, StoreResult};
use adieu_proto::SigningAlg;
use std::sync::Arc;

conformance!(
    signing_keys_round_trip_oldest_first_and_their_creation_is_audited,
    two_first_keys_of_one_algorithm_inserted_at_once_store_one,
    retiring_refuses_the_signer_and_the_last_key_and_erases_the_private_key,
    concurrent_retirements_never_leave_an_algorithm_without_a_key,
);

fn key(kid: &str, alg: SigningAlg, generation: i64, signs_from: i64) -> StoredSigningKey {
    StoredSigningKey {
        kid: kid.into(),
        alg,
        generation,
        private_key: vec![0x30, 1, 2, 3],
        created_at: UnixMillis(T0.0 + generation),
        signs_from: UnixMillis(signs_from),
        retired_at: None,
    }
}

async fn signing_keys_round_trip_oldest_first_and_their_creation_is_audited(s: Arc<dyn Store>) -> StoreResult<()> {
    let a = key("RS256-a", SigningAlg::RS256, 1, T0.0);
    let b = key("ES256-b", SigningAlg::ES256, 1, T0.0);
    let c = key("RS256-c", SigningAlg::RS256, 2, T0.0 + 600_000);
    for k in [&c, &a, &b] {
        s.insert_signing_key(k, "system").await?;
    }
    // Oldest first (a and b were created at the same moment: by kid), every field kept.
    assert_eq!(s.signing_keys().await?, vec![b, a.clone(), c.clone()]);
    // The kid is unique too.
    let same_kid = StoredSigningKey { generation: 3, ..a.clone() };
    assert!(matches!(s.insert_signing_key(&same_kid, "cli").await, Err(StoreError::Conflict(f)) if f == "kid"));
    let events = s.audit_events(&AuditFilter { kind: Some("key.".into()), ..Default::default() }).await?;
    assert_eq!(events.len(), 3, "one key.created each, none for the refused insert");
    let newest = &events[0];
    assert_eq!((newest.kind.as_str(), newest.actor.as_str()), ("key.created", "system"));
    assert_eq!(newest.detail["kid"], "ES256-b");
    assert!(!newest.detail.to_string().contains("private"), "the key itself is never audited");
    let rotated = events.iter().find(|e| e.detail["kid"] == "RS256-c").unwrap();
    assert_eq!(
        (rotated.detail["generation"].as_i64(), rotated.detail["signs_from"].as_i64()),
        (Some(2), Some(c.signs_from.0))
    );
    Ok(())
}

/// Proves: two writers inserting generation 1 of one algorithm at the same moment (two replicas
/// starting on an empty database) store exactly one key; the other gets `Conflict("generation")`.
async fn two_first_keys_of_one_algorithm_inserted_at_once_store_one(s: Arc<dyn Store>) -> StoreResult<()> {
    for alg in SigningAlg::ALL {
        let (x, y) = (key(&format!("{alg}-x"), alg, 1, T0.0), key(&format!("{alg}-y"), alg, 1, T0.0));
        let (rx, ry) = tokio::join!(s.insert_signing_key(&x, "system"), s.insert_signing_key(&y, "system"));
        let conflicts =
            [&rx, &ry].iter().filter(|r| matches!(r, Err(StoreError::Conflict(f)) if f == "generation")).count();
        assert_eq!((rx.is_ok() as u8 + ry.is_ok() as u8, conflicts), (1, 1), "{alg}: {rx:?} {ry:?}");
    }
    let keys = s.signing_keys().await?;
    assert_eq!(keys.len(), 3);
    assert_eq!(s.audit_events(&AuditFilter { kind: Some("key.created".into()), ..Default::default() }).await?.len(), 3);
    Ok(())
}

async fn retiring_refuses_the_signer_and_the_last_key_and_erases_the_private_key(s: Arc<dyn Store>) -> StoreResult<()> {
    let later = UnixMillis(T0.0 + 600_000);
    s.insert_signing_key(&key("RS256-1", SigningAlg::RS256, 1, T0.0), "system").await?;
    s.insert_signing_key(&key("ES256-1", SigningAlg::ES256, 1, T0.0), "system").await?;
    assert_eq!(s.retire_signing_key("nope", "cli", T0).await?, Err(RetireRefusal::NotFound("nope".into())));
    assert_eq!(s.retire_signing_key("RS256-1", "cli", T0).await?, Err(RetireRefusal::LastKey("RS256-1".into())));
    s.insert_signing_key(&key("RS256-2", SigningAlg::RS256, 2, later.0), "cli").await?;
    // Before `later` the old key signs; from `later` the new one does.
    assert_eq!(s.retire_signing_key("RS256-1", "cli", T0).await?, Err(RetireRefusal::CurrentSigner("RS256-1".into())));
    assert_eq!(
        s.retire_signing_key("RS256-2", "cli", later).await?,
        Err(RetireRefusal::CurrentSigner("RS256-2".into()))
    );
    let retired = s.retire_signing_key("RS256-1", "cli", later).await?.expect("retired");
    assert_eq!((retired.kid.as_str(), retired.retired_at), ("RS256-1", Some(later)));
    assert_eq!(
        s.retire_signing_key("RS256-1", "cli", later).await?,
        Err(RetireRefusal::AlreadyRetired("RS256-1".into()))
    );
    let keys = s.signing_keys().await?;
    let old = keys.iter().find(|k| k.kid == "RS256-1").unwrap();
    assert_eq!((old.retired_at, old.private_key.len()), (Some(later), 0), "the private key is erased");
    assert!(keys.iter().filter(|k| k.kid != "RS256-1").all(|k| k.retired_at.is_none() && !k.private_key.is_empty()));
    let events = s.audit_events(&AuditFilter { kind: Some("key.retired".into()), ..Default::default() }).await?;
    assert_eq!(events.len(), 1, "refusals change nothing and are not audited");
    assert_eq!((events[0].actor.as_str(), events[0].detail["kid"].as_str()), ("cli", Some("RS256-1")));
    Ok(())
}

/// Proves: two retirements racing, judged at different moments (a CLI whose clock is behind sees
/// the old key signing and the new one pending; one ahead sees the opposite), retire one key
/// only: the second is judged with the first one's result and refused.
async fn concurrent_retirements_never_leave_an_algorithm_without_a_key(s: Arc<dyn Store>) -> StoreResult<()> {
    let switch = T0.0 + 600_000;
    s.insert_signing_key(&key("EdDSA-1", SigningAlg::EdDSA, 1, T0.0), "system").await?;
    s.insert_signing_key(&key("EdDSA-2", SigningAlg::EdDSA, 2, switch), "cli").await?;
    let (before, after) = (UnixMillis(switch - 1), UnixMillis(switch + 1));
    let (r2, r1) =
        tokio::join!(s.retire_signing_key("EdDSA-2", "cli", before), s.retire_signing_key("EdDSA-1", "cli", after));
    assert_eq!([r1?.is_ok(), r2?.is_ok()].iter().filter(|ok| **ok).count(), 1);
    let live: Vec<_> = s.signing_keys().await?.into_iter().filter(|k| k.retired_at.is_none()).collect();
    assert_eq!(live.len(), 1, "{live:?}");
    Ok(())
}

/// The keys of a database from before migration 0005, as they were stored: (kid, alg, created_at).
const OLD_KEYS: [(&str, &str, i64); 4] = [
    ("RS256-b", "RS256", 2_000),
    ("RS256-a", "RS256", 1_000),
    ("ES256-c", "ES256", 1_000),
    ("RS256-z", "RS256", 1_000),
];

/// After migration 0005: per algorithm, generations in creation order (then kid), each signing from
/// its creation, none retired; so the newest key of each algorithm keeps signing, as before.
async fn assert_old_keys_migrated(s: &dyn Store) {
    let keys = s.signing_keys().await.unwrap();
    let got: Vec<(&str, i64, i64, bool)> =
        keys.iter().map(|k| (k.kid.as_str(), k.generation, k.signs_from.0, k.retired_at.is_none())).collect();
    assert_eq!(
        got,
        [
            ("ES256-c", 1, 1_000, true),
            ("RS256-a", 1, 1_000, true),
            ("RS256-z", 2, 1_000, true),
            ("RS256-b", 3, 2_000, true)
        ]
    );
    let rs: Vec<_> = keys.iter().filter(|k| k.alg == SigningAlg::RS256).cloned().collect();
    assert_eq!(
        adieu_core::keys::signer_index(&rs, SigningAlg::RS256, UnixMillis(3_000)).map(|i| rs[i].kid.as_str()),
        Some("RS256-b")
    );
}

#[tokio::test]
async fn keys_from_before_rotation_get_generations_in_creation_order_on_sqlite() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("old.db").display());
    let mut conn = sqlx::SqliteConnection::connect(&format!("{url}?mode=rwc")).await.unwrap();
    sqlx::raw_sql(
        "CREATE TABLE adieu_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    for m in &adieu_store::migrate::SQLITE[..4] {
        sqlx::raw_sql(m.sql).execute(&mut conn).await.unwrap();
        sqlx::query("INSERT INTO adieu_migrations VALUES (?, ?, 0)")
            .bind(m.version)
            .bind(m.name)
            .execute(&mut conn)
            .await
            .unwrap();
    }
    for (kid, alg, at) in OLD_KEYS {
        sqlx::query("INSERT INTO signing_keys (kid, alg, private_pkcs8, created_at) VALUES (?, ?, X'3000', ?)")
            .bind(kid)
            .bind(alg)
            .bind(at)
            .execute(&mut conn)
            .await
            .unwrap();
    }
    conn.close().await.unwrap();
    let store = adieu_store::SqliteStore::open(&url).await.unwrap();
    assert_old_keys_migrated(&store).await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn keys_from_before_rotation_get_generations_in_creation_order_on_postgres() {
    use sqlx::Connection;
    let Some(schema) = postgres::Schema::create().await else { return };
    let mut conn = sqlx::PgConnection::connect(&schema.url()).await.unwrap();
    sqlx::raw_sql(
        "CREATE TABLE adieu_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    for m in &adieu_store::migrate::POSTGRES[..4] {
        sqlx::raw_sql(m.sql).execute(&mut conn).await.unwrap();
        sqlx::query("INSERT INTO adieu_migrations VALUES ($1, $2, 0)")
            .bind(m.version)
            .bind(m.name)
            .execute(&mut conn)
            .await
            .unwrap();
    }
    for (kid, alg, at) in OLD_KEYS {
        sqlx::query("INSERT INTO signing_keys (kid, alg, private_pkcs8, created_at) VALUES ($1, $2, '\\x3000', $3)")
            .bind(kid)
            .bind(alg)
            .bind(at)
            .execute(&mut conn)
            .await
            .unwrap();
    }
    conn.close().await.unwrap();
    let store = schema.store("replica-1").await;
    assert_old_keys_migrated(&store).await;
    store.pool().close().await;
}

//! The storage conformance suite: every backend must pass the same tests. The `conformance!` macro
//! instantiates each test once per backend, on a fresh store: SQLite always (a temporary file),
//! PostgreSQL when `ADIEU_TEST_POSTGRES_URL` is set (a schema of its own per test, dropped at the
//! end; see `conformance/postgres.rs`, which also holds the tests of several replicas). CI sets
//! `ADIEU_REQUIRE_POSTGRES=1`, which turns a missing database into a failure instead of a skip.

use adieu_core::audit::{AuditEvent, AuditFilter, AuditKind};
use adieu_core::client::Client;
use adieu_core::grant::{AccessToken, AuthCode, RefreshToken};
use adieu_core::id::{ClientId, SessionId, Sid, UserId};
use adieu_core::initiator::Initiator;
use adieu_core::session::Session;
use adieu_core::store::{CodeRedemption, RefreshUse, StoreError};
use adieu_core::time::UnixMillis;
use adieu_core::user::User;
use adieu_core::{Store, StoreResult};
use adieu_store::SqliteStore;
use std::sync::Arc;

struct Fresh {
    store: Arc<dyn Store>,
    _dir: tempfile::TempDir,
}

async fn sqlite() -> Fresh {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    Fresh { store: Arc::new(SqliteStore::open(&url).await.unwrap()), _dir: dir }
}

#[cfg(feature = "postgres")]
#[path = "conformance/postgres.rs"]
mod postgres;

/// Without the `postgres` feature the PostgreSQL tests do not exist: say so where they are required.
#[cfg(not(feature = "postgres"))]
#[test]
fn postgres_backend_is_built_when_required() {
    assert_ne!(
        std::env::var("ADIEU_REQUIRE_POSTGRES").as_deref(),
        Ok("1"),
        "ADIEU_REQUIRE_POSTGRES=1 but adieu-store was built without its `postgres` feature"
    );
}

/// Runs `test` against every backend.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite_backend {
            $(#[tokio::test] async fn $name() { super::$name(super::sqlite().await.store).await.unwrap(); })*
        }
        #[cfg(feature = "postgres")]
        mod postgres_backend {
            $(#[tokio::test] async fn $name() {
                let Some(schema) = super::postgres::Schema::create().await else { return };
                let store = schema.store("replica-1").await;
                super::$name(std::sync::Arc::new(store.clone())).await.unwrap();
                store.pool().close().await;
            })*
        }
    };
}

conformance!(
    usernames_and_emails_are_unique_case_insensitively,
    users_are_found_by_username_or_email,
    participation_sid_is_stable_per_session_and_client,
    end_session_is_idempotent_and_revokes_only_session_bound_tokens,
    concurrent_code_redemption_has_exactly_one_winner,
    concurrent_refresh_rotation_has_exactly_one_winner,
    refresh_token_of_another_client_is_left_untouched,
    delete_user_ends_sessions_revokes_tokens_and_keeps_the_subject_on_sessions,
    purge_removes_only_expired_rows,
    clients_round_trip_with_their_logout_settings,
    ending_a_session_writes_deliveries_only_for_subscribed_clients_with_a_uri,
    claimed_deliveries_are_leased_and_expired_leases_are_claimable_again,
    attempts_are_recorded_and_failures_audited,
    removing_the_logout_uri_discards_pending_deliveries_and_is_audited,
    dead_deliveries_can_be_retried,
    pending_and_rejected_deliveries_can_be_retried,
    api_tokens_are_listed_and_revoked_by_id,
    claims_skip_excluded_clients_and_cap_each_clients_share,
    one_clients_backlog_never_hides_another_clients_due_deliveries,
    a_second_claim_pass_does_not_count_the_first_passs_choices_again,
    rate_limit_windows_count_hits_and_start_over_when_they_end,
    concurrent_rate_limit_hits_each_get_their_own_count,
    audit_log_filters_by_kind_prefix_client_and_time,
    users_are_listed_in_pages_with_a_filter,
    add_user_is_audited_with_its_actor,
    password_change_ends_every_session_and_revokes_every_token_in_one_call,
    email_change_ends_sessions_and_a_username_change_ends_none,
    a_taken_username_or_email_changes_nothing,
    deleted_account_deliveries_keep_the_sub,
    end_user_sessions_ends_only_that_users_open_sessions,
    expired_sessions_end_in_batches_as_session_expired,
    participations_of_sessions_are_read_in_one_call,
    session_devices_are_recorded_replaced_bounded_and_forgotten_when_the_session_ends,
    upstream_logins_are_taken_once_and_expire,
    upstream_users_are_created_with_their_link_in_one_transaction,
    upstream_sessions_are_found_by_sid_or_by_sub_signed_in_before,
    a_conflict_names_the_taken_field,
);

/// Signing keys (generations, retirement), with the same macro.
#[path = "conformance/keys.rs"]
mod keys;

/// The hand-off of freshly written deliveries to this process's worker, with the same macro.
#[path = "conformance/handoff.rs"]
mod handoff;

/// Consents and pending authorizations, with the same macro.
#[path = "conformance/consents.rs"]
mod consents;

/// Retention and revoked grants, with the same macro.
#[path = "conformance/retention.rs"]
mod retention;

const T0: UnixMillis = UnixMillis(1_700_000_000_000);

fn user(name: &str, email: Option<&str>) -> User {
    User {
        id: UserId::new(format!("id-{name}")),
        username: name.into(),
        email: email.map(Into::into),
        password_hash: "$argon2id$x".into(),
        created_at: T0,
        updated_at: T0,
    }
}

fn session(id: &str, user: &str) -> Session {
    Session {
        id: SessionId::new(id),
        user_id: UserId::new(user),
        auth_time: T0,
        created_at: T0,
        last_seen_at: T0,
        ended_at: None,
        end_reason: None,
    }
}

fn refresh(hash: &str, session: &str, client: &str, offline: bool) -> RefreshToken {
    RefreshToken {
        token_hash: hash.into(),
        grant_id: format!("g-{hash}"),
        client_id: ClientId::new(client),
        user_id: UserId::new("id-alice"),
        session_id: SessionId::new(session),
        sid: Sid::new("sid"),
        scope: "openid".into(),
        offline,
        auth_time: T0,
        created_at: T0,
        expires_at: UnixMillis(T0.0 + 1_000_000),
        rotated_at: None,
        revoked_at: None,
    }
}

fn access(hash: &str, session: &str, offline: bool) -> AccessToken {
    AccessToken {
        token_hash: hash.into(),
        grant_id: format!("g-{hash}"),
        client_id: ClientId::new("c"),
        user_id: UserId::new("id-alice"),
        session_id: SessionId::new(session),
        scope: "openid".into(),
        offline,
        created_at: T0,
        expires_at: UnixMillis(T0.0 + 1_000_000),
        revoked_at: None,
    }
}

fn code(hash: &str) -> AuthCode {
    AuthCode {
        code_hash: hash.into(),
        grant_id: "g".into(),
        client_id: ClientId::new("c"),
        redirect_uri: "https://rp/cb".into(),
        user_id: UserId::new("id-alice"),
        session_id: SessionId::new("s1"),
        sid: Sid::new("sid"),
        scope: "openid".into(),
        nonce: None,
        code_challenge: None,
        auth_time: T0,
        created_at: T0,
        expires_at: UnixMillis(T0.0 + 60_000),
        used_at: None,
    }
}

async fn usernames_and_emails_are_unique_case_insensitively(s: Arc<dyn Store>) -> StoreResult<()> {
    s.create_user(&user("alice", Some("alice@example.com"))).await?;
    let mut dup = user("ALICE", None);
    dup.id = UserId::new("other");
    assert!(matches!(s.create_user(&dup).await, Err(StoreError::Conflict(_))));
    let mut dup_mail = user("bob", Some("Alice@Example.com"));
    dup_mail.id = UserId::new("other2");
    assert!(matches!(s.create_user(&dup_mail).await, Err(StoreError::Conflict(_))));
    Ok(())
}

async fn users_are_found_by_username_or_email(s: Arc<dyn Store>) -> StoreResult<()> {
    s.create_user(&user("alice", Some("alice@example.com"))).await?;
    assert_eq!(s.user_by_login(" Alice ").await?.unwrap().username, "alice");
    assert_eq!(s.user_by_login("ALICE@example.com").await?.unwrap().username, "alice");
    assert!(s.user_by_login("nobody").await?.is_none());
    Ok(())
}

async fn participation_sid_is_stable_per_session_and_client(s: Arc<dyn Store>) -> StoreResult<()> {
    s.create_session(&session("s1", "id-alice"), "cookie1").await?;
    let (sess, c) = (SessionId::new("s1"), ClientId::new("c"));
    let p1 = s.ensure_participation(&sess, &c, &Sid::new("first"), T0).await?;
    let p2 = s.ensure_participation(&sess, &c, &Sid::new("second"), T0).await?;
    assert_eq!(p1.sid, Sid::new("first"));
    assert_eq!(p2.sid, p1.sid, "the same client in the same session keeps its sid");
    let other = s.ensure_participation(&sess, &ClientId::new("d"), &Sid::new("third"), T0).await?;
    assert_eq!(other.sid, Sid::new("third"));
    assert_eq!(s.participation_by_sid(&Sid::new("third")).await?.unwrap().client_id, ClientId::new("d"));
    Ok(())
}

async fn end_session_is_idempotent_and_revokes_only_session_bound_tokens(s: Arc<dyn Store>) -> StoreResult<()> {
    s.create_session(&session("s1", "id-alice"), "cookie1").await?;
    s.ensure_participation(&SessionId::new("s1"), &ClientId::new("c"), &Sid::new("sid-c"), T0).await?;
    s.insert_refresh_token(&refresh("rt-online", "s1", "c", false)).await?;
    s.insert_refresh_token(&refresh("rt-offline", "s1", "c", true)).await?;
    s.insert_access_token(&access("at-online", "s1", false)).await?;
    let at = UnixMillis(T0.0 + 5);
    let ended = s.end_session(&SessionId::new("s1"), Initiator::RpLogout, at).await?.expect("ended");
    assert_eq!(ended.participations.len(), 1);
    assert_eq!(ended.revoked_tokens, 2);
    assert_eq!(ended.session.end_reason, Some(Initiator::RpLogout));
    assert!(
        s.end_session(&SessionId::new("s1"), Initiator::SessionRevoked, at).await?.is_none(),
        "ending twice is a no-op"
    );
    assert_eq!(s.session_by_id(&SessionId::new("s1")).await?.unwrap().end_reason, Some(Initiator::RpLogout));
    assert!(matches!(s.use_refresh_token("rt-online", &ClientId::new("c"), at).await?, RefreshUse::Revoked(_)));
    assert!(matches!(s.use_refresh_token("rt-offline", &ClientId::new("c"), at).await?, RefreshUse::Rotated(_)));
    assert!(s.access_token("at-online").await?.unwrap().revoked_at.is_some());
    Ok(())
}

async fn concurrent_code_redemption_has_exactly_one_winner(s: Arc<dyn Store>) -> StoreResult<()> {
    s.insert_code(&code("code1")).await?;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.redeem_code("code1", T0).await })
        })
        .collect();
    let mut winners = 0;
    for t in tasks {
        match t.await.unwrap()? {
            CodeRedemption::Redeemed(_) => winners += 1,
            CodeRedemption::AlreadyUsed(_) => {}
            CodeRedemption::Unknown => panic!("code vanished"),
        }
    }
    assert_eq!(winners, 1);
    Ok(())
}

async fn concurrent_refresh_rotation_has_exactly_one_winner(s: Arc<dyn Store>) -> StoreResult<()> {
    s.insert_refresh_token(&refresh("rt", "s1", "c", false)).await?;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.use_refresh_token("rt", &ClientId::new("c"), T0).await })
        })
        .collect();
    let mut winners = 0;
    for t in tasks {
        if let RefreshUse::Rotated(_) = t.await.unwrap()? {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
    Ok(())
}

async fn refresh_token_of_another_client_is_left_untouched(s: Arc<dyn Store>) -> StoreResult<()> {
    s.insert_refresh_token(&refresh("rt", "s1", "c", false)).await?;
    assert_eq!(s.use_refresh_token("rt", &ClientId::new("intruder"), T0).await?, RefreshUse::WrongClient);
    assert!(matches!(s.use_refresh_token("rt", &ClientId::new("c"), T0).await?, RefreshUse::Rotated(_)));
    Ok(())
}

async fn delete_user_ends_sessions_revokes_tokens_and_keeps_the_subject_on_sessions(
    s: Arc<dyn Store>,
) -> StoreResult<()> {
    s.create_user(&user("alice", None)).await?;
    s.create_session(&session("s1", "id-alice"), "c1").await?;
    s.create_session(&session("s2", "id-alice"), "c2").await?;
    s.insert_refresh_token(&refresh("rt-offline", "s1", "c", true)).await?;
    let ended = s.delete_user(&UserId::new("id-alice"), "test", T0).await?.expect("user existed");
    assert_eq!(ended.len(), 2);
    assert!(ended.iter().all(|e| e.session.end_reason == Some(Initiator::AccountDeleted)));
    assert!(
        ended.iter().all(|e| e.session.user_id == UserId::new("id-alice")),
        "the subject survives for notifications"
    );
    assert!(s.user_by_id(&UserId::new("id-alice")).await?.is_none());
    assert!(
        matches!(s.use_refresh_token("rt-offline", &ClientId::new("c"), T0).await?, RefreshUse::Revoked(_)),
        "offline tokens go too"
    );
    assert!(s.delete_user(&UserId::new("id-alice"), "test", T0).await?.is_none());
    Ok(())
}

async fn purge_removes_only_expired_rows(s: Arc<dyn Store>) -> StoreResult<()> {
    s.insert_code(&code("old")).await?;
    let mut fresh = code("new");
    fresh.expires_at = UnixMillis(T0.0 + 10_000_000);
    s.insert_code(&fresh).await?;
    let n = s.purge_expired(UnixMillis(T0.0 + 60_000)).await?;
    assert_eq!(n, 1);
    assert!(matches!(s.redeem_code("old", T0).await?, CodeRedemption::Unknown));
    assert!(matches!(s.redeem_code("new", T0).await?, CodeRedemption::Redeemed(_)));
    Ok(())
}

async fn clients_round_trip_with_their_logout_settings(s: Arc<dyn Store>) -> StoreResult<()> {
    use adieu_core::client::TokenEndpointAuthMethod;
    use adieu_core::initiator::{InitiatorMode, InitiatorSubscription};
    let c = Client {
        id: ClientId::new("app"),
        name: "App".into(),
        secret_hash: Some("hash".into()),
        redirect_uris: vec!["https://a/cb".into(), "https://a/cb2".into()],
        post_logout_redirect_uris: vec!["https://a/bye".into()],
        backchannel_logout_uri: Some("https://a/bc?x=1".into()),
        backchannel_logout_session_required: true,
        backchannel_logout_initiators: InitiatorSubscription {
            mode: InitiatorMode::Custom,
            selected_initiators: vec![Initiator::SessionExpired],
        },
        token_endpoint_auth_method: TokenEndpointAuthMethod::ClientSecretPost,
        id_token_signed_response_alg: adieu_proto::SigningAlg::ES256,
        frontchannel_logout_uri: Some("https://a/fc?x=1".into()),
        frontchannel_logout_session_required: true,
        third_party: true,
        created_at: T0,
        updated_at: T0,
    };
    s.create_client(&c, "test").await?;
    assert_eq!(s.client_by_id(&c.id).await?.unwrap(), c);
    assert!(matches!(s.create_client(&c, "test").await, Err(StoreError::Conflict(_))));
    assert!(s.delete_client(&c.id, "test", T0).await?);
    assert!(!s.delete_client(&c.id, "test", T0).await?);
    Ok(())
}

#[tokio::test]
async fn sqlite_migrations_are_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let first = SqliteStore::open(&url).await.unwrap();
    assert_eq!(first.migrate().await.unwrap(), 0, "already applied by open");
    drop(first);
    let again = SqliteStore::open(&url).await.unwrap();
    assert_eq!(again.migrate().await.unwrap(), 0);
}

fn client_with(id: &str, uri: Option<&str>, sub: adieu_core::initiator::InitiatorSubscription) -> Client {
    Client {
        id: ClientId::new(id),
        name: id.into(),
        secret_hash: Some("h".into()),
        redirect_uris: vec![format!("https://{id}/cb")],
        post_logout_redirect_uris: vec![],
        backchannel_logout_uri: uri.map(Into::into),
        backchannel_logout_session_required: false,
        backchannel_logout_initiators: sub,
        token_endpoint_auth_method: adieu_core::client::TokenEndpointAuthMethod::ClientSecretBasic,
        id_token_signed_response_alg: adieu_proto::SigningAlg::RS256,
        frontchannel_logout_uri: None,
        frontchannel_logout_session_required: false,
        third_party: false,
        created_at: T0,
        updated_at: T0,
    }
}

/// A session `s1` of alice in which clients `a` (subscribed, default), `b` (no URI) and
/// `c` (subscribed to all initiators) participate.
async fn three_participants(s: &Arc<dyn Store>) -> StoreResult<()> {
    use adieu_core::initiator::{InitiatorMode, InitiatorSubscription};
    s.create_client(&client_with("a", Some("https://a/bc"), InitiatorSubscription::default()), "test").await?;
    s.create_client(&client_with("b", None, InitiatorSubscription::default()), "test").await?;
    let all = InitiatorSubscription { mode: InitiatorMode::All, selected_initiators: vec![] };
    s.create_client(&client_with("c", Some("https://c/bc?x=1"), all), "test").await?;
    s.create_session(&session("s1", "id-alice"), "cookie1").await?;
    for c in ["a", "b", "c"] {
        s.ensure_participation(&SessionId::new("s1"), &ClientId::new(c), &Sid::new(format!("sid-{c}")), T0).await?;
    }
    Ok(())
}

fn claim(now: UnixMillis) -> adieu_core::store::Claim<'static> {
    adieu_core::store::Claim {
        now,
        lease: std::time::Duration::from_secs(60),
        limit: 100,
        per_client_limit: 100,
        exclude_clients: &[],
    }
}

async fn ending_a_session_writes_deliveries_only_for_subscribed_clients_with_a_uri(
    s: Arc<dyn Store>,
) -> StoreResult<()> {
    three_participants(&s).await?;
    // session-expired: `a` has the default subscription (rp-logout, idp-logout), `c` has all.
    let ended = s.end_session(&SessionId::new("s1"), Initiator::SessionExpired, T0).await?.unwrap();
    let clients: Vec<&str> = ended.deliveries.iter().map(|d| d.client_id.as_str()).collect();
    assert_eq!(clients, vec!["c"]);
    let d = &ended.deliveries[0];
    assert_eq!((d.sub.as_str(), d.sid.as_str(), d.initiator), ("id-alice", "sid-c", Initiator::SessionExpired));
    assert_eq!(d.status, adieu_core::delivery::DeliveryStatus::Pending);

    s.create_session(&session("s2", "id-alice"), "cookie2").await?;
    for c in ["a", "b", "c"] {
        s.ensure_participation(&SessionId::new("s2"), &ClientId::new(c), &Sid::new(format!("sid2-{c}")), T0).await?;
    }
    let ended = s.end_session(&SessionId::new("s2"), Initiator::RpLogout, T0).await?.unwrap();
    let mut clients: Vec<&str> = ended.deliveries.iter().map(|d| d.client_id.as_str()).collect();
    clients.sort();
    assert_eq!(clients, vec!["a", "c"], "rp-logout reaches every subscribed client with a URI");
    let logged = s.audit_events(&AuditFilter { kind: Some("session.ended".into()), ..Default::default() }).await?;
    assert_eq!(logged.len(), 2);
    assert_eq!(logged[0].detail["initiator"], "rp-logout");
    Ok(())
}

async fn claimed_deliveries_are_leased_and_expired_leases_are_claimable_again(s: Arc<dyn Store>) -> StoreResult<()> {
    three_participants(&s).await?;
    s.end_session(&SessionId::new("s1"), Initiator::RpLogout, T0).await?;
    let first = s.claim_due(&claim(T0)).await?;
    assert_eq!(first.len(), 2);
    assert!(first.iter().all(|d| d.status == adieu_core::delivery::DeliveryStatus::Leased && d.attempts == 1));
    assert!(s.claim_due(&claim(T0)).await?.is_empty(), "leased deliveries are not claimed twice");
    // The worker died: after the lease, another claim takes them (at-least-once).
    let later = UnixMillis(T0.0 + 61_000);
    let again = s.claim_due(&claim(later)).await?;
    assert_eq!(again.len(), 2);
    assert!(again.iter().all(|d| d.attempts == 2));
    assert_eq!(s.release_leases().await?, 2);
    assert_eq!(s.queue_stats().await?.depth, 2);
    Ok(())
}

async fn attempts_are_recorded_and_failures_audited(s: Arc<dyn Store>) -> StoreResult<()> {
    use adieu_core::delivery::Verdict;
    use adieu_core::delivery::{Attempt, DeliveryStatus};
    three_participants(&s).await?;
    s.end_session(&SessionId::new("s1"), Initiator::RpLogout, T0).await?;
    let batch = s.claim_due(&claim(T0)).await?;
    let (a, c) = (&batch[0], &batch[1]);
    let attempt = |d: &adieu_core::delivery::Delivery, status: Option<u16>| Attempt {
        delivery_id: d.id.clone(),
        number: 0,
        at: T0,
        latency_ms: 12,
        http_status: status,
        error: None,
    };
    assert!(s.record_attempt(&attempt(a, Some(200)), Verdict::Delivered).await?);
    let retry_at = UnixMillis(T0.0 + 1000);
    assert!(
        s.record_attempt(&attempt(c, Some(503)), Verdict::Retry { at: retry_at, reason: "HTTP 503".into() }).await?
    );
    let (da, attempts) = s.delivery(&a.id).await?.unwrap();
    assert_eq!(da.status, DeliveryStatus::Delivered);
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].http_status, Some(200));
    let (dc, _) = s.delivery(&c.id).await?.unwrap();
    assert_eq!(
        (dc.status, dc.next_attempt_at, dc.last_error.as_deref()),
        (DeliveryStatus::Pending, retry_at, Some("HTTP 503"))
    );
    assert_eq!(s.next_due().await?, Some(retry_at));
    assert!(s.claim_due(&claim(T0)).await?.is_empty(), "not due before its time");
    let second = s.claim_due(&claim(retry_at)).await?;
    assert_eq!(second.len(), 1);
    assert!(s.record_attempt(&attempt(&second[0], None), Verdict::Dead { reason: "timed out".into() }).await?);
    let (dc, attempts) = s.delivery(&c.id).await?.unwrap();
    assert_eq!(dc.status, DeliveryStatus::Dead);
    assert_eq!(attempts.iter().map(|a| a.number).collect::<Vec<_>>(), vec![1, 2]);
    let failures = s.audit_events(&AuditFilter { kind: Some("delivery.".into()), ..Default::default() }).await?;
    let kinds: Vec<&str> = failures.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, vec!["delivery.dead", "delivery.attempt_failed"]);
    // A record for a delivery that is no longer leased changes nothing.
    assert!(!s.record_attempt(&attempt(a, Some(200)), Verdict::Delivered).await?);
    Ok(())
}

async fn removing_the_logout_uri_discards_pending_deliveries_and_is_audited(s: Arc<dyn Store>) -> StoreResult<()> {
    use adieu_core::delivery::DeliveryStatus;
    three_participants(&s).await?;
    let ended = s.end_session(&SessionId::new("s1"), Initiator::RpLogout, T0).await?.unwrap();
    let mut a = s.client_by_id(&ClientId::new("a")).await?.unwrap();
    a.backchannel_logout_uri = Some("https://a/new-bc".into());
    s.update_client(&a, "admin-api", T0).await?;
    a.backchannel_logout_uri = None;
    let old = s.update_client(&a, "admin-api", T0).await?.unwrap();
    assert_eq!(old.backchannel_logout_uri.as_deref(), Some("https://a/new-bc"));
    let da = ended.deliveries.iter().find(|d| d.client_id.as_str() == "a").unwrap();
    assert_eq!(s.delivery(&da.id).await?.unwrap().0.status, DeliveryStatus::Discarded);
    let dc = ended.deliveries.iter().find(|d| d.client_id.as_str() == "c").unwrap();
    assert_eq!(s.delivery(&dc.id).await?.unwrap().0.status, DeliveryStatus::Pending, "other clients are untouched");
    let log = s.audit_events(&AuditFilter { client_id: Some("a".into()), ..Default::default() }).await?;
    let kinds: Vec<&str> = log.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        vec![
            "delivery.discarded",
            "backchannel.unsubscribed",
            "client.updated",
            "backchannel.changed",
            "client.updated",
            "backchannel.subscribed",
            "client.created"
        ]
    );
    let changed = log.iter().find(|e| e.kind == "backchannel.changed").unwrap();
    assert_eq!(
        (changed.detail["old"].as_str(), changed.detail["new"].as_str()),
        (Some("https://a/bc"), Some("https://a/new-bc"))
    );
    assert_eq!(changed.actor, "admin-api");
    Ok(())
}

async fn dead_deliveries_can_be_retried(s: Arc<dyn Store>) -> StoreResult<()> {
    use adieu_core::delivery::Verdict;
    use adieu_core::delivery::{Attempt, DeliveryStatus};
    three_participants(&s).await?;
    s.end_session(&SessionId::new("s1"), Initiator::RpLogout, T0).await?;
    let d = s.claim_due(&claim(T0)).await?.remove(0);
    assert_eq!(s.retry_delivery(&d.id, "admin-api", T0).await?, None, "a leased delivery is being sent");
    let a =
        Attempt { delivery_id: d.id.clone(), number: 0, at: T0, latency_ms: 1, http_status: Some(404), error: None };
    s.record_attempt(&a, Verdict::Dead { reason: "HTTP 404".into() }).await?;
    let later = UnixMillis(T0.0 + 5000);
    assert_eq!(s.retry_delivery(&d.id, "admin-api", later).await?, Some(DeliveryStatus::Dead));
    let (d2, _) = s.delivery(&d.id).await?.unwrap();
    assert_eq!(
        (d2.status, d2.attempts, d2.round_started_at, d2.finished_at),
        (DeliveryStatus::Pending, 0, later, None)
    );
    let retried = s.audit_events(&AuditFilter { kind: Some("delivery.retried".into()), ..Default::default() }).await?;
    assert_eq!((retried[0].detail["from"].as_str(), retried[0].actor.as_str()), (Some("dead"), "admin-api"));
    assert_eq!(s.retry_delivery("no-such-delivery", "admin-api", later).await?, None);
    Ok(())
}

/// A pending delivery waiting for its backoff is brought forward (its round and attempt count
/// kept); a rejected one starts a new round; a delivered one cannot be retried.
async fn pending_and_rejected_deliveries_can_be_retried(s: Arc<dyn Store>) -> StoreResult<()> {
    use adieu_core::delivery::{Attempt, DeliveryStatus, Verdict};
    three_participants(&s).await?;
    s.create_session(&session("s2", "id-alice"), "cookie2").await?;
    s.ensure_participation(&SessionId::new("s2"), &ClientId::new("a"), &Sid::new("sid2-a"), T0).await?;
    s.end_session(&SessionId::new("s1"), Initiator::RpLogout, T0).await?;
    s.end_session(&SessionId::new("s2"), Initiator::RpLogout, T0).await?;
    let batch = s.claim_due(&claim(T0)).await?;
    assert_eq!(batch.len(), 3);
    let attempt = |id: &str| Attempt {
        delivery_id: id.into(),
        number: 0,
        at: T0,
        latency_ms: 1,
        http_status: Some(503),
        error: None,
    };
    let far = UnixMillis(T0.0 + 3_600_000);
    s.record_attempt(&attempt(&batch[0].id), Verdict::Retry { at: far, reason: "HTTP 503".into() }).await?;
    s.record_attempt(&attempt(&batch[1].id), Verdict::Rejected).await?;
    s.record_attempt(&attempt(&batch[2].id), Verdict::Delivered).await?;
    let now = UnixMillis(T0.0 + 10);
    assert_eq!(s.retry_delivery(&batch[0].id, "cli", now).await?, Some(DeliveryStatus::Pending));
    let (p, _) = s.delivery(&batch[0].id).await?.unwrap();
    assert_eq!((p.status, p.next_attempt_at, p.attempts, p.round_started_at), (DeliveryStatus::Pending, now, 1, T0));
    assert_eq!(s.retry_delivery(&batch[1].id, "cli", now).await?, Some(DeliveryStatus::Rejected));
    let (r, _) = s.delivery(&batch[1].id).await?.unwrap();
    assert_eq!((r.status, r.attempts, r.round_started_at, r.finished_at), (DeliveryStatus::Pending, 0, now, None));
    assert_eq!(s.retry_delivery(&batch[2].id, "cli", now).await?, None, "delivered is done");
    let due = s.claim_due(&claim(now)).await?;
    assert_eq!(due.len(), 2, "both retried deliveries are due at once");
    Ok(())
}

/// API tokens are listed by an id that is a prefix of their hash (never the token), and revoking
/// one deletes it and is audited.
async fn api_tokens_are_listed_and_revoked_by_id(s: Arc<dyn Store>) -> StoreResult<()> {
    use adieu_core::store::{ApiToken, ApiTokenKind};
    s.insert_api_token("hash-one-0123456789", ApiTokenKind::Admin, "ops", "cli", T0).await?;
    s.insert_api_token("hash-two-0123456789", ApiTokenKind::Registration, "", "cli", UnixMillis(T0.0 + 1)).await?;
    let list = s.api_tokens().await?;
    assert_eq!(list.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(), vec!["hash-one-012", "hash-two-012"]);
    assert_eq!((list[1].kind, list[0].label.as_str()), (ApiTokenKind::Registration, "ops"));
    assert!(!s.revoke_api_token("hash-one", "cli", T0).await?, "a shorter prefix names nothing");
    assert!(!s.revoke_api_token("hash-xxx-012", "cli", T0).await?);
    assert!(s.revoke_api_token(&ApiToken::id_of("hash-one-0123456789"), "cli", T0).await?);
    assert!(!s.api_token_exists("hash-one-0123456789", ApiTokenKind::Admin).await?);
    assert!(s.api_token_exists("hash-two-0123456789", ApiTokenKind::Registration).await?);
    let log = s.audit_events(&AuditFilter { kind: Some("api_token.".into()), ..Default::default() }).await?;
    assert_eq!(
        log.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
        vec!["api_token.revoked", "api_token.created", "api_token.created"]
    );
    assert_eq!((log[0].detail["id"].as_str(), log[0].detail["label"].as_str()), (Some("hash-one-012"), Some("ops")));
    Ok(())
}

async fn claims_skip_excluded_clients_and_cap_each_clients_share(s: Arc<dyn Store>) -> StoreResult<()> {
    three_participants(&s).await?;
    for i in 0..5 {
        let id = format!("sx{i}");
        s.create_session(&session(&id, "id-alice"), &format!("ck{i}")).await?;
        for c in ["a", "c"] {
            s.ensure_participation(&SessionId::new(id.clone()), &ClientId::new(c), &Sid::new(format!("{id}-{c}")), T0)
                .await?;
        }
        s.end_session(&SessionId::new(id), Initiator::RpLogout, T0).await?;
    }
    let exclude = [ClientId::new("a")];
    let c = adieu_core::store::Claim { exclude_clients: &exclude, per_client_limit: 3, ..claim(T0) };
    let batch = s.claim_due(&c).await?;
    assert_eq!(batch.len(), 3);
    assert!(batch.iter().all(|d| d.client_id.as_str() == "c"));
    Ok(())
}

async fn audit_log_filters_by_kind_prefix_client_and_time(s: Arc<dyn Store>) -> StoreResult<()> {
    for (i, k) in [AuditKind::KeyCreated, AuditKind::KeyRetired, AuditKind::UserCreated].into_iter().enumerate() {
        let e = AuditEvent::new(k, "test", UnixMillis(T0.0 + i as i64), serde_json::json!({ "i": i }))
            .client(if i == 2 { "other" } else { "a" });
        s.append_audit(&e).await?;
    }
    let all = s.audit_events(&AuditFilter::default()).await?;
    assert_eq!(
        all.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
        vec!["user.created", "key.retired", "key.created"]
    );
    assert_eq!(s.audit_events(&AuditFilter { kind: Some("key.".into()), ..Default::default() }).await?.len(), 2);
    assert_eq!(s.audit_events(&AuditFilter { kind: Some("key.created".into()), ..Default::default() }).await?.len(), 1);
    assert_eq!(s.audit_events(&AuditFilter { client_id: Some("other".into()), ..Default::default() }).await?.len(), 1);
    let window =
        AuditFilter { since: Some(UnixMillis(T0.0 + 1)), until: Some(UnixMillis(T0.0 + 2)), ..Default::default() };
    assert_eq!(s.audit_events(&window).await?[0].kind, "key.retired");
    assert_eq!(s.audit_events(&AuditFilter { limit: Some(1), ..Default::default() }).await?.len(), 1);
    Ok(())
}

/// A dead application with a large backlog (capped or excluded) must not hide another
/// application's due delivery behind it (no head-of-line blocking).
async fn one_clients_backlog_never_hides_another_clients_due_deliveries(s: Arc<dyn Store>) -> StoreResult<()> {
    three_participants(&s).await?;
    // 300 sessions with only `a` (a backlog), then one with `c`.
    for i in 0..300 {
        let id = format!("bk{i}");
        s.create_session(&session(&id, "id-alice"), &format!("bk-ck{i}")).await?;
        s.ensure_participation(&SessionId::new(id.clone()), &ClientId::new("a"), &Sid::new(format!("{id}-a")), T0)
            .await?;
        s.end_session(&SessionId::new(id), Initiator::RpLogout, T0).await?;
    }
    s.create_session(&session("late", "id-alice"), "late-ck").await?;
    s.ensure_participation(&SessionId::new("late"), &ClientId::new("c"), &Sid::new("late-c"), T0).await?;
    s.end_session(&SessionId::new("late"), Initiator::RpLogout, UnixMillis(T0.0 + 1)).await?;
    let now = UnixMillis(T0.0 + 10);
    // `a` capped at 2 per claim, window of 64 candidates all from `a`: `c` must still be found.
    let capped = adieu_core::store::Claim { limit: 16, per_client_limit: 2, ..claim(now) };
    let batch = s.claim_due(&capped).await?;
    assert!(batch.iter().any(|d| d.client_id.as_str() == "c"), "c was hidden behind a's backlog");
    assert_eq!(batch.iter().filter(|d| d.client_id.as_str() == "a").count(), 2);
    // `a` excluded (its host saturated): the rest is still claimable.
    s.release_leases().await?;
    let exclude = [ClientId::new("a")];
    let excluded = adieu_core::store::Claim { limit: 16, exclude_clients: &exclude, ..claim(now) };
    let batch = s.claim_due(&excluded).await?;
    assert_eq!(batch.iter().map(|d| d.client_id.as_str()).collect::<Vec<_>>(), vec!["c"]);
    Ok(())
}

/// One session of alice with `client` (created with a URI and every initiator if new), ended at `at`:
/// one delivery due at `at`.
async fn one_delivery_for(s: &Arc<dyn Store>, client: &str, name: &str, at: UnixMillis) -> StoreResult<()> {
    use adieu_core::initiator::{InitiatorMode, InitiatorSubscription};
    if s.client_by_id(&ClientId::new(client)).await?.is_none() {
        let all = InitiatorSubscription { mode: InitiatorMode::All, selected_initiators: vec![] };
        s.create_client(&client_with(client, Some(&format!("https://{client}/bc")), all), "test").await?;
    }
    s.create_session(&session(name, "id-alice"), &format!("cookie-{name}")).await?;
    s.ensure_participation(&SessionId::new(name), &ClientId::new(client), &Sid::new(format!("sid-{name}")), T0).await?;
    s.end_session(&SessionId::new(name), Initiator::RpLogout, at).await?.expect("ended");
    Ok(())
}

/// Regression (a claim's second pass): when the first look at the queue is filled by one client's
/// backlog, the claim looks again without that client. That second look sees the deliveries the
/// first one already chose (they are not leased until the claim commits); it must not count them
/// again against their client's share or the batch size, or a batch comes out smaller than the
/// due work allows (here 9 instead of 10).
async fn a_second_claim_pass_does_not_count_the_first_passs_choices_again(s: Arc<dyn Store>) -> StoreResult<()> {
    // Oldest first: 2 of `a`, 62 of `busy` (together the 64-row window of a 10-delivery claim),
    // then 5 each of `c` and `d`.
    let mut t = T0.0;
    let mut next = || {
        t += 1;
        UnixMillis(t)
    };
    for i in 0..2 {
        one_delivery_for(&s, "a", &format!("a{i}"), next()).await?;
    }
    for i in 0..62 {
        one_delivery_for(&s, "busy", &format!("busy{i}"), next()).await?;
    }
    for client in ["c", "d"] {
        for i in 0..5 {
            one_delivery_for(&s, client, &format!("{client}{i}"), next()).await?;
        }
    }
    let c = adieu_core::store::Claim { limit: 10, per_client_limit: 3, ..claim(UnixMillis(T0.0 + 1_000)) };
    let batch = s.claim_due(&c).await?;
    let mut per_client = std::collections::BTreeMap::new();
    for d in &batch {
        *per_client.entry(d.client_id.as_str().to_owned()).or_insert(0) += 1;
    }
    assert_eq!(batch.len(), 10, "a full batch: {per_client:?}");
    assert_eq!(per_client.get("a"), Some(&2), "{per_client:?}");
    assert_eq!(per_client.get("busy"), Some(&3), "{per_client:?}");
    assert!(per_client.values().all(|n| *n <= 3), "{per_client:?}");
    let distinct: std::collections::HashSet<&str> = batch.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(distinct.len(), 10);
    Ok(())
}

/// Rate-limit windows: hits count within a window that starts at the first hit; a count can be
/// read without counting; a hit at or after the window's end starts a new one; keys are apart;
/// clearing forgets the key; the purge deletes ended windows only.
async fn rate_limit_windows_count_hits_and_start_over_when_they_end(s: Arc<dyn Store>) -> StoreResult<()> {
    use adieu_core::store::RateCount;
    let window = std::time::Duration::from_secs(60);
    let at = |ms: i64| UnixMillis(T0.0 + ms);
    assert_eq!(s.rate_limit_count("k", at(0)).await?, 0);
    for n in 1..=3 {
        let hit = s.rate_limit_hit("k", window, at(i64::from(n))).await?;
        assert_eq!(hit, RateCount { count: n, window_ends: at(60_001) }, "the window started at the first hit");
    }
    assert_eq!(s.rate_limit_count("k", at(60_000)).await?, 3);
    assert_eq!(s.rate_limit_count("other", at(10)).await?, 0, "keys are apart");
    assert_eq!(s.rate_limit_count("k", at(60_001)).await?, 0, "the window has ended");
    assert_eq!(s.rate_limit_hit("k", window, at(60_001)).await?, RateCount { count: 1, window_ends: at(120_001) });
    s.rate_limit_clear("k").await?;
    assert_eq!(s.rate_limit_count("k", at(60_002)).await?, 0);
    assert_eq!(s.rate_limit_hit("k", window, at(60_002)).await?.count, 1, "a cleared key starts over");
    s.rate_limit_hit("short", std::time::Duration::from_secs(1), at(0)).await?;
    assert!(s.purge_expired(at(1_000)).await? >= 1);
    assert_eq!(s.rate_limit_count("k", at(60_003)).await?, 1, "a window that has not ended survives the purge");
    assert_eq!(s.rate_limit_hit("short", window, at(1_000)).await?.count, 1, "purged");
    Ok(())
}

/// Hits on one key at the same moment, from many tasks, each get their own count: none is lost
/// and none counted twice (on PostgreSQL the suite in `conformance/postgres.rs` does the same
/// from two replicas).
async fn concurrent_rate_limit_hits_each_get_their_own_count(s: Arc<dyn Store>) -> StoreResult<()> {
    const N: u32 = 40;
    let window = std::time::Duration::from_secs(60);
    let mut tasks = Vec::new();
    for _ in 0..N {
        let s = s.clone();
        tasks.push(tokio::spawn(async move { s.rate_limit_hit("addr:1", window, T0).await }));
    }
    let mut counts = Vec::new();
    for t in tasks {
        counts.push(t.await.expect("task")?.count);
    }
    counts.sort_unstable();
    assert_eq!(counts, (1..=N).collect::<Vec<_>>());
    assert_eq!(s.rate_limit_count("addr:1", T0).await?, N);
    Ok(())
}

fn kinds(events: &[AuditEvent]) -> Vec<&str> {
    events.iter().map(|e| e.kind.as_str()).collect()
}

async fn users_are_listed_in_pages_with_a_filter(s: Arc<dyn Store>) -> StoreResult<()> {
    use adieu_core::user::UserQuery;
    for (name, email) in [("carol", None), ("alice", Some("alice@example.com")), ("bob", Some("bob@corp.example"))] {
        s.create_user(&user(name, email)).await?;
    }
    let names = |v: Vec<User>| v.into_iter().map(|u| u.username).collect::<Vec<_>>();
    let first = s.list_users(&UserQuery { limit: Some(2), ..Default::default() }).await?;
    assert_eq!(names(first), ["alice", "bob"]);
    let next = s.list_users(&UserQuery { after: Some("bob".into()), limit: Some(2), ..Default::default() }).await?;
    assert_eq!(names(next), ["carol"]);
    let corp = s.list_users(&UserQuery { contains: Some("CORP".into()), ..Default::default() }).await?;
    assert_eq!(names(corp), ["bob"], "the filter matches the email, case-insensitively");
    let by_name = s.list_users(&UserQuery { contains: Some("ar".into()), ..Default::default() }).await?;
    assert_eq!(names(by_name), ["carol"]);
    let wild = s.list_users(&UserQuery { contains: Some("%".into()), ..Default::default() }).await?;
    assert!(wild.is_empty(), "no wildcards in the filter");
    Ok(())
}

async fn add_user_is_audited_with_its_actor(s: Arc<dyn Store>) -> StoreResult<()> {
    s.add_user(&user("Alice", Some("Alice@Example.com")), "admin-api").await?;
    let stored = s.user_by_id(&UserId::new("id-Alice")).await?.unwrap();
    assert_eq!((stored.username.as_str(), stored.email.as_deref()), ("alice", Some("alice@example.com")));
    let log = s.audit_events(&AuditFilter { kind: Some("user.".into()), ..Default::default() }).await?;
    assert_eq!(kinds(&log), ["user.created"]);
    assert_eq!((log[0].actor.as_str(), log[0].user_id.as_deref()), ("admin-api", Some("id-Alice")));
    Ok(())
}

/// A session `name` of alice in which client `a` (subscribed to every initiator) participates.
async fn alice_session_with_a(s: &Arc<dyn Store>, name: &str) -> StoreResult<()> {
    use adieu_core::initiator::{InitiatorMode, InitiatorSubscription};
    if s.client_by_id(&ClientId::new("a")).await?.is_none() {
        let all = InitiatorSubscription { mode: InitiatorMode::All, selected_initiators: vec![] };
        s.create_client(&client_with("a", Some("https://a/bc"), all), "test").await?;
    }
    s.create_session(&session(name, "id-alice"), &format!("cookie-{name}")).await?;
    s.ensure_participation(&SessionId::new(name), &ClientId::new("a"), &Sid::new(format!("sid-{name}")), T0).await?;
    Ok(())
}

async fn password_change_ends_every_session_and_revokes_every_token_in_one_call(s: Arc<dyn Store>) -> StoreResult<()> {
    use adieu_core::user::UserChanges;
    s.create_user(&user("alice", None)).await?;
    alice_session_with_a(&s, "s1").await?;
    alice_session_with_a(&s, "s2").await?;
    s.insert_refresh_token(&refresh("rt-offline", "s1", "c", true)).await?;
    s.insert_refresh_token(&refresh("rt-online", "s2", "c", false)).await?;
    let at = UnixMillis(T0.0 + 10);
    let changes = UserChanges { password_hash: Some("$argon2id$new".into()), ..Default::default() };
    let up = s.update_user(&UserId::new("id-alice"), &changes, "cli", at).await?.expect("user exists");
    assert_eq!(up.initiator, Some(Initiator::PasswordChanged));
    assert_eq!(up.ended.len(), 2);
    assert!(
        up.ended.iter().all(|e| e.deliveries.len() == 1 && e.deliveries[0].initiator == Initiator::PasswordChanged)
    );
    assert_eq!(up.user.password_hash, "$argon2id$new");
    assert_eq!(s.user_by_id(&UserId::new("id-alice")).await?.unwrap().password_hash, "$argon2id$new");
    assert!(
        matches!(s.use_refresh_token("rt-offline", &ClientId::new("c"), at).await?, RefreshUse::Revoked(_)),
        "offline_access refresh tokens are revoked by a password change"
    );
    assert!(matches!(s.use_refresh_token("rt-online", &ClientId::new("c"), at).await?, RefreshUse::Revoked(_)));
    let log = s.audit_events(&AuditFilter::default()).await?;
    let user_updated = log.iter().find(|e| e.kind == "user.updated").unwrap();
    assert_eq!(user_updated.actor, "cli");
    assert_eq!(user_updated.detail["initiator"], "password-changed");
    assert!(!user_updated.detail.to_string().contains("argon2"), "no hash in the audit log");
    let ended: Vec<_> = log.iter().filter(|e| e.kind == "session.ended").collect();
    assert_eq!(ended.len(), 2);
    assert!(ended.iter().all(|e| e.actor == "cli" && e.detail["initiator"] == "password-changed"));
    assert!(s.update_user(&UserId::new("nobody"), &changes, "cli", at).await?.is_none());
    Ok(())
}

async fn email_change_ends_sessions_and_a_username_change_ends_none(s: Arc<dyn Store>) -> StoreResult<()> {
    use adieu_core::user::UserChanges;
    s.create_user(&user("alice", Some("alice@example.com"))).await?;
    alice_session_with_a(&s, "s1").await?;
    s.insert_refresh_token(&refresh("rt-offline", "s1", "c", true)).await?;
    let id = UserId::new("id-alice");
    let rename = UserChanges { username: Some("Alicia".into()), ..Default::default() };
    let up = s.update_user(&id, &rename, "admin-api", T0).await?.unwrap();
    assert_eq!((up.initiator, up.ended.len(), up.user.username.as_str()), (None, 0, "alicia"));
    let same = UserChanges { email: Some(Some("ALICE@example.com".into())), ..Default::default() };
    assert_eq!(s.update_user(&id, &same, "admin-api", T0).await?.unwrap().ended.len(), 0, "the same email");
    let changed = UserChanges { email: Some(Some("new@example.com".into())), ..Default::default() };
    let up = s.update_user(&id, &changed, "admin-api", T0).await?.unwrap();
    assert_eq!(up.initiator, Some(Initiator::EmailIdentifierChanged));
    assert_eq!(up.ended.len(), 1);
    assert_eq!(up.ended[0].deliveries[0].initiator, Initiator::EmailIdentifierChanged);
    assert_eq!(s.user_by_login("new@example.com").await?.unwrap().id, id);
    assert!(
        matches!(s.use_refresh_token("rt-offline", &ClientId::new("c"), T0).await?, RefreshUse::Rotated(_)),
        "an email change ends sessions, not offline grants"
    );
    Ok(())
}

async fn a_taken_username_or_email_changes_nothing(s: Arc<dyn Store>) -> StoreResult<()> {
    use adieu_core::user::UserChanges;
    s.create_user(&user("alice", Some("alice@example.com"))).await?;
    s.create_user(&user("bob", Some("bob@example.com"))).await?;
    alice_session_with_a(&s, "s1").await?;
    let id = UserId::new("id-alice");
    let taken = UserChanges { email: Some(Some("bob@example.com".into())), ..Default::default() };
    assert!(matches!(s.update_user(&id, &taken, "t", T0).await, Err(StoreError::Conflict(_))));
    let taken = UserChanges { username: Some("bob".into()), ..Default::default() };
    assert!(matches!(s.update_user(&id, &taken, "t", T0).await, Err(StoreError::Conflict(_))));
    assert_eq!(s.user_by_id(&id).await?.unwrap().email.as_deref(), Some("alice@example.com"));
    assert!(s.session_by_id(&SessionId::new("s1")).await?.unwrap().ended_at.is_none(), "nothing ended");
    Ok(())
}

async fn deleted_account_deliveries_keep_the_sub(s: Arc<dyn Store>) -> StoreResult<()> {
    s.create_user(&user("alice", None)).await?;
    alice_session_with_a(&s, "s1").await?;
    s.insert_code(&code("code-of-alice")).await?;
    let ended = s.delete_user(&UserId::new("id-alice"), "admin-api", T0).await?.unwrap();
    assert_eq!(ended[0].deliveries[0].initiator, Initiator::AccountDeleted);
    assert!(s.user_by_id(&UserId::new("id-alice")).await?.is_none());
    // Read back after the row is gone: the queued delivery still names alice.
    let queued = s.deliveries(&adieu_core::store::DeliveryFilter::default()).await?;
    assert_eq!(queued.len(), 1);
    assert_eq!((queued[0].sub.as_str(), queued[0].sid.as_str()), ("id-alice", "sid-s1"));
    assert!(matches!(s.redeem_code("code-of-alice", T0).await?, CodeRedemption::Unknown), "codes go");
    let log = s.audit_events(&AuditFilter::default()).await?;
    assert_eq!(kinds(&log)[..2], ["user.deleted", "session.ended"]);
    assert!(log[..2].iter().all(|e| e.actor == "admin-api"));
    Ok(())
}

async fn end_user_sessions_ends_only_that_users_open_sessions(s: Arc<dyn Store>) -> StoreResult<()> {
    alice_session_with_a(&s, "s1").await?;
    alice_session_with_a(&s, "s2").await?;
    s.create_session(&session("bob-1", "id-bob"), "cookie-bob").await?;
    s.end_session(&SessionId::new("s2"), Initiator::RpLogout, T0).await?;
    let ended = s.end_user_sessions(&UserId::new("id-alice"), Initiator::SessionRevoked, "admin-api", T0).await?;
    assert_eq!(ended.iter().map(|e| e.session.id.as_str()).collect::<Vec<_>>(), ["s1"]);
    assert_eq!(ended[0].deliveries[0].initiator, Initiator::SessionRevoked);
    assert!(s.session_by_id(&SessionId::new("bob-1")).await?.unwrap().ended_at.is_none());
    assert_eq!(s.session_by_id(&SessionId::new("s2")).await?.unwrap().end_reason, Some(Initiator::RpLogout));
    assert!(s.end_user_sessions(&UserId::new("id-alice"), Initiator::SessionRevoked, "t", T0).await?.is_empty());
    Ok(())
}

async fn expired_sessions_end_in_batches_as_session_expired(s: Arc<dyn Store>) -> StoreResult<()> {
    use adieu_core::session::SessionLifetime;
    use std::time::Duration;
    let life = SessionLifetime { idle: Duration::from_secs(60), absolute: Duration::from_secs(600) };
    // idle-1/idle-2: last used at T0; busy: used at T0+500s but created at T0; fresh: created late.
    for name in ["idle-1", "idle-2"] {
        alice_session_with_a(&s, name).await?;
    }
    let mut busy = session("busy", "id-alice");
    busy.last_seen_at = UnixMillis(T0.0 + 500_000);
    s.create_session(&busy, "cookie-busy").await?;
    let mut fresh = session("fresh", "id-alice");
    fresh.created_at = UnixMillis(T0.0 + 590_000);
    fresh.last_seen_at = fresh.created_at;
    s.create_session(&fresh, "cookie-fresh").await?;

    // Just before the idle lifetime: nothing.
    assert!(s.end_expired_sessions(life, UnixMillis(T0.0 + 59_999), 10).await?.is_empty());
    // At T0+60s the two idle ones are due; a batch of 1 takes one at a time.
    let now = UnixMillis(T0.0 + 60_000);
    let first = s.end_expired_sessions(life, now, 1).await?;
    let second = s.end_expired_sessions(life, now, 1).await?;
    assert_eq!((first.len(), second.len()), (1, 1));
    assert!(s.end_expired_sessions(life, now, 1).await?.is_empty());
    assert_eq!(first[0].deliveries[0].initiator, Initiator::SessionExpired);
    assert_eq!(first[0].session.end_reason, Some(Initiator::SessionExpired));
    // At T0+600s `busy` passes its absolute lifetime although it was used 100 s ago; `fresh` does not.
    let ended = s.end_expired_sessions(life, UnixMillis(T0.0 + 600_000), 10).await?;
    assert_eq!(ended.iter().map(|e| e.session.id.as_str()).collect::<Vec<_>>(), ["busy"]);
    let log = s.audit_events(&AuditFilter { kind: Some("session.ended".into()), ..Default::default() }).await?;
    assert!(log.iter().all(|e| e.actor == "system" && e.detail["initiator"] == "session-expired"));
    assert_eq!(log.len(), 3);
    Ok(())
}

async fn participations_of_sessions_are_read_in_one_call(s: Arc<dyn Store>) -> StoreResult<()> {
    three_participants(&s).await?;
    alice_session_with_a(&s, "s9").await?;
    let got = s.participations_of_sessions(&[SessionId::new("s1"), SessionId::new("s9")]).await?;
    let pairs: Vec<(&str, &str)> = got.iter().map(|p| (p.session_id.as_str(), p.client_id.as_str())).collect();
    assert_eq!(pairs, [("s1", "a"), ("s1", "b"), ("s1", "c"), ("s9", "a")]);
    assert!(s.participations_of_sessions(&[]).await?.is_empty());
    Ok(())
}

/// Proves: a session's device (address as text, IPv4 and IPv6, user agent) round-trips; a second
/// record (a re-authentication) replaces the first; a user agent at the bound comes back whole, in
/// characters; devices are read for several sessions in one call, ordered by session; nothing is
/// recorded for an unknown or ended session; ending a session (one by one, or by deleting the
/// account) forgets its device.
async fn session_devices_are_recorded_replaced_bounded_and_forgotten_when_the_session_ends(
    s: Arc<dyn Store>,
) -> StoreResult<()> {
    use adieu_core::session::{SessionDevice, USER_AGENT_MAX_CHARS};
    let ip = |a: &str| Some(a.parse::<std::net::IpAddr>().unwrap());
    let (s1, s2, s3) = (SessionId::new("s1"), SessionId::new("s2"), SessionId::new("s3"));
    s.create_user(&user("bob", None)).await?;
    s.create_session(&session("s1", "id-alice"), "cookie-1").await?;
    s.create_session(&session("s2", "id-alice"), "cookie-2").await?;
    s.create_session(&session("s3", "id-bob"), "cookie-3").await?;
    let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
    let v4 = SessionDevice::new(ip("203.0.113.7"), Some(firefox), T0);
    let v6 = SessionDevice::new(ip("2001:db8::7"), None, UnixMillis(T0.0 + 1));
    s.record_session_device(&s2, &v6).await?;
    s.record_session_device(&s1, &v4).await?;
    let got = s.session_devices(&[s3.clone(), s2.clone(), s1.clone()]).await?;
    assert_eq!(got, [(s1.clone(), v4.clone()), (s2.clone(), v6.clone())], "ordered by session; s3 has none");
    assert!(s.session_devices(&[]).await?.is_empty());

    // Signing in again in the same session replaces what was recorded.
    let chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/131.0.0.0 Safari/537.36";
    let again = SessionDevice::new(ip("198.51.100.1"), Some(chrome), UnixMillis(T0.0 + 60_000));
    s.record_session_device(&s1, &again).await?;
    assert_eq!(s.session_devices(std::slice::from_ref(&s1)).await?, [(s1.clone(), again)]);

    // The bound is in characters: 512 two-byte characters are kept whole, the rest was cut.
    let long = "\u{fc}".repeat(USER_AGENT_MAX_CHARS + 50);
    let bounded = SessionDevice::new(None, Some(&long), T0);
    s.record_session_device(&s3, &bounded).await?;
    let got = s.session_devices(std::slice::from_ref(&s3)).await?;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1.user_agent(), Some(&*"\u{fc}".repeat(USER_AGENT_MAX_CHARS)));
    assert_eq!(got[0].1.address(), None);
    assert_eq!(got[0].1, bounded);

    // Nothing for a session that does not exist.
    let nope = SessionId::new("nope");
    s.record_session_device(&nope, &v4).await?;
    assert!(s.session_devices(std::slice::from_ref(&nope)).await?.is_empty());

    // Ending a session forgets its device, and an ended session gets none again.
    s.end_session(&s1, Initiator::SessionRevoked, T0).await?.expect("s1 was open");
    assert!(s.session_devices(std::slice::from_ref(&s1)).await?.is_empty());
    s.record_session_device(&s1, &v4).await?;
    assert!(s.session_devices(std::slice::from_ref(&s1)).await?.is_empty(), "an ended session records nothing");
    // So does deleting the account (its sessions end); alice's other session keeps its own.
    s.delete_user(&UserId::new("id-bob"), "test", T0).await?.expect("bob exists");
    assert!(s.session_devices(std::slice::from_ref(&s3)).await?.is_empty());
    assert_eq!(s.session_devices(std::slice::from_ref(&s2)).await?, [(s2, v6)]);
    Ok(())
}

// --- Upstream providers (idp-logout) ---------------------------------------------------------------

fn pending_upstream(state_hash: &str, expires_at: UnixMillis) -> adieu_core::upstream::PendingUpstreamLogin {
    adieu_core::upstream::PendingUpstreamLogin {
        state_hash: state_hash.into(),
        upstream_id: "corp".into(),
        nonce: "n".into(),
        code_verifier: "v".repeat(43),
        request_id: Some("req".into()),
        created_at: T0,
        expires_at,
    }
}

async fn upstream_logins_are_taken_once_and_expire(s: Arc<dyn Store>) -> StoreResult<()> {
    let later = UnixMillis(T0.0 + 600_000);
    s.put_upstream_login(&pending_upstream("h1", later)).await?;
    let taken = s.take_upstream_login("h1", T0).await?.expect("the pending sign-in");
    assert_eq!(taken, pending_upstream("h1", later));
    assert!(s.take_upstream_login("h1", T0).await?.is_none(), "single use");
    // An expired one is not handed out (and is gone).
    s.put_upstream_login(&pending_upstream("h2", later)).await?;
    assert!(s.take_upstream_login("h2", later).await?.is_none());
    // Purge removes expired ones only.
    s.put_upstream_login(&pending_upstream("h3", UnixMillis(T0.0 + 1))).await?;
    s.put_upstream_login(&pending_upstream("h4", later)).await?;
    assert_eq!(s.purge_expired(UnixMillis(T0.0 + 10)).await?, 1);
    assert!(s.take_upstream_login("h4", T0).await?.is_some());
    Ok(())
}

async fn upstream_users_are_created_with_their_link_in_one_transaction(s: Arc<dyn Store>) -> StoreResult<()> {
    use adieu_core::upstream::{NO_PASSWORD, UpstreamIdentity};
    let id = |sub: &str| UpstreamIdentity { issuer: "https://up".into(), sub: sub.into(), upstream_id: "corp".into() };
    let mut carol = user("carol", Some("carol@up.example"));
    carol.password_hash = NO_PASSWORD.into();
    s.create_upstream_user(&carol, &id("u1"), "system").await?;
    assert_eq!(s.user_by_upstream("https://up", "u1").await?.map(|u| u.username), Some("carol".into()));
    assert!(s.user_by_upstream("https://other", "u1").await?.is_none(), "keyed by issuer and sub");
    let log = s.audit_events(&AuditFilter { kind: Some("user.created".into()), ..Default::default() }).await?;
    assert_eq!(log[0].detail["upstream"], "corp");
    // The same upstream account again: refused, nothing stored.
    let mut again = user("carol2", None);
    again.id = UserId::new("id-carol2");
    assert!(
        matches!(s.create_upstream_user(&again, &id("u1"), "system").await, Err(StoreError::Conflict(c)) if c == "upstream_identity")
    );
    assert!(s.user_by_id(&again.id).await?.is_none());
    // A taken username: refused, and the link is not stored either.
    let mut taken = user("carol", None);
    taken.id = UserId::new("id-carol-b");
    assert!(
        matches!(s.create_upstream_user(&taken, &id("u2"), "system").await, Err(StoreError::Conflict(c)) if c == "username")
    );
    assert!(s.user_by_upstream("https://up", "u2").await?.is_none());
    // The link goes with the account.
    s.delete_user(&carol.id, "test", T0).await?;
    assert!(s.user_by_upstream("https://up", "u1").await?.is_none());
    Ok(())
}

async fn upstream_sessions_are_found_by_sid_or_by_sub_signed_in_before(s: Arc<dyn Store>) -> StoreResult<()> {
    use adieu_core::upstream::{UpstreamSessionQuery, UpstreamSignIn};
    let up = |sub: &str, sid: Option<&str>, at: i64| UpstreamSignIn {
        issuer: "https://up".into(),
        sub: sub.into(),
        sid: sid.map(Into::into),
        at: UnixMillis(at),
    };
    s.create_upstream_session(&session("s1", "id-alice"), "c1", &up("u1", Some("sidA"), 1_000)).await?;
    s.create_upstream_session(&session("s2", "id-alice"), "c2", &up("u1", Some("sidB"), 2_000)).await?;
    s.create_upstream_session(&session("s3", "id-alice"), "c3", &up("u1", None, 5_000)).await?;
    s.create_upstream_session(&session("s4", "id-bob"), "c4", &up("u2", Some("sidA"), 1_000)).await?;
    s.create_session(&session("s5", "id-alice"), "c5").await?;
    let q_sid = |sid: &str, sub: Option<&str>| UpstreamSessionQuery::Session {
        issuer: "https://up".into(),
        sid: sid.into(),
        sub: sub.map(Into::into),
    };
    let ids = |v: Vec<SessionId>| v.into_iter().map(|i| i.as_str().to_owned()).collect::<Vec<_>>();
    // BC-RP-11: by sid (here two accounts share it only because the test made them so).
    assert_eq!(ids(s.upstream_sessions(&q_sid("sidA", None)).await?), ["s1", "s4"]);
    // BC-RP-10: with sub, both must match.
    assert_eq!(ids(s.upstream_sessions(&q_sid("sidA", Some("u1"))).await?), ["s1"]);
    assert!(s.upstream_sessions(&q_sid("sidA", Some("u9"))).await?.is_empty());
    // BC-LT-01 + BC-SEC-06: all of a sub's sessions signed in upstream before the token.
    let q_sub = |before: i64| UpstreamSessionQuery::Subject {
        issuer: "https://up".into(),
        sub: "u1".into(),
        signed_in_before: UnixMillis(before),
    };
    assert_eq!(ids(s.upstream_sessions(&q_sub(3_000)).await?), ["s1", "s2"]);
    assert_eq!(ids(s.upstream_sessions(&q_sub(9_000)).await?), ["s1", "s2", "s3"]);
    // Another issuer names nothing; ended sessions are not found.
    let other = UpstreamSessionQuery::Subject {
        issuer: "https://other".into(),
        sub: "u1".into(),
        signed_in_before: UnixMillis(9_000),
    };
    assert!(s.upstream_sessions(&other).await?.is_empty());
    s.end_session(&SessionId::new("s1"), Initiator::IdpLogout, T0).await?;
    assert_eq!(ids(s.upstream_sessions(&q_sub(9_000)).await?), ["s2", "s3"]);
    // Re-authenticating through the upstream replaces what the session remembers.
    s.reauthenticate_upstream_session(&SessionId::new("s2"), "c2b", &up("u1", Some("sidC"), 7_000)).await?;
    assert!(s.upstream_sessions(&q_sid("sidB", None)).await?.is_empty());
    assert_eq!(ids(s.upstream_sessions(&q_sid("sidC", None)).await?), ["s2"]);
    assert_eq!(ids(s.upstream_sessions(&q_sub(6_000)).await?), ["s3"]);
    assert_eq!(s.session_by_cookie("c2b").await?.map(|x| x.auth_time), Some(UnixMillis(7_000)));
    Ok(())
}

async fn a_conflict_names_the_taken_field(s: Arc<dyn Store>) -> StoreResult<()> {
    s.create_user(&user("alice", Some("alice@example.com"))).await?;
    let mut same_name = user("alice", None);
    same_name.id = UserId::new("other");
    assert_eq!(s.create_user(&same_name).await.unwrap_err().to_string(), "already exists: username");
    let mut same_email = user("bob", Some("alice@example.com"));
    same_email.id = UserId::new("other");
    assert_eq!(s.create_user(&same_email).await.unwrap_err().to_string(), "already exists: email");
    Ok(())
}

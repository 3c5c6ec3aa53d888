//! The storage conformance suite: every backend must pass the same tests. Each test takes a fresh
//! store from `backends()`; SQLite always runs.

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

/// Runs `test` against every backend.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite_backend {
            $(#[tokio::test] async fn $name() { super::$name(super::sqlite().await.store).await.unwrap(); })*
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
);

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
    let ended = s.delete_user(&UserId::new("id-alice"), T0).await?.expect("user existed");
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
    assert!(s.delete_user(&UserId::new("id-alice"), T0).await?.is_none());
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
        created_at: T0,
        updated_at: T0,
    };
    s.create_client(&c).await?;
    assert_eq!(s.client_by_id(&c.id).await?.unwrap(), c);
    assert!(matches!(s.create_client(&c).await, Err(StoreError::Conflict(_))));
    assert!(s.delete_client(&c.id).await?);
    assert!(!s.delete_client(&c.id).await?);
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

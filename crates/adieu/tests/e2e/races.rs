//! Limits and token rules under concurrency, against the real `adieu serve` on SQLite and on
//! PostgreSQL (issue 11 items 3 and 6):
//! - 200 wrong-password sign-ins for one account released at once reach the password check at
//!   most `login.max_failures_per_account` times (counted by `adieu_password_checks_total`), and
//!   the correct password sent while they are in flight is refused;
//! - a code redeemed twice at once, and a refresh token used twice at once, leave no token of
//!   their grant usable, whichever request wins (60 trials each);
//! - a failed redemption with another client's credentials or a wrong `redirect_uri` does not
//!   spend the code.

use crate::hostile::{Op, PASSWORD, REDIRECT, VERIFIER};
use crate::postgres::Database;
use serde_json::Value;

/// The `adieu_password_checks_total` counter.
async fn password_checks(op: &Op) -> u64 {
    let text = op.http.get(format!("{}/metrics", op.base)).send().await.unwrap().text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("adieu_password_checks_total "))
        .and_then(|v| v.trim().parse().ok())
        .expect("adieu_password_checks_total in /metrics")
}

async fn sign_in_status(op: &Op, user: &str, password: &str) -> u16 {
    match op.sign_in(user, password).await {
        Ok(_) => 200,
        Err(status) => status,
    }
}

async fn concurrent_wrong_passwords(op: Op, label: &str) {
    let before = password_checks(&op).await;
    let op = std::sync::Arc::new(op);
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let op = op.clone();
            tokio::spawn(async move { sign_in_status(&op, "bob", &format!("wrong password {i}")).await })
        })
        .collect();
    // The correct password, sent once the budget is spent, while the wrong ones are still being
    // answered.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while password_checks(&op).await - before < 5 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    let in_flight = tasks.iter().filter(|t| !t.is_finished()).count();
    let correct = sign_in_status(&op, "bob", PASSWORD).await;
    let mut statuses = std::collections::BTreeMap::new();
    for t in tasks {
        *statuses.entry(t.await.unwrap()).or_insert(0) += 1;
    }
    let checks = password_checks(&op).await - before;
    println!(
        "{label}: 200 concurrent wrong passwords: {statuses:?}, {checks} password checks; \
         correct one sent with {in_flight} in flight: {correct}"
    );
    assert!(checks <= 5, "{label}: {checks} password checks ran for a limit of 5");
    assert_eq!(correct, 429, "{label}: the correct password got through the exhausted limit");
    assert_eq!(statuses.get(&401).copied().unwrap_or(0) as u64, checks, "{label}: every check is a 401");
}

/// Proves (SQLite): concurrent wrong passwords cannot outrun the per-account limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sign_ins_reserve_the_account_budget_sqlite() {
    concurrent_wrong_passwords(Op::start(None, &[]).await, "sqlite").await;
}

/// Proves (PostgreSQL): the same with the counters in PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sign_ins_reserve_the_account_budget_postgres() {
    let Some(db) = Database::create().await else { return };
    concurrent_wrong_passwords(Op::start(Some(db), &[]).await, "postgres").await;
}

async fn refresh(op: &Op, token: &str) -> (u16, Value) {
    let res = op
        .http
        .post(format!("{}/token", op.base))
        .basic_auth("conf", Some(&op.conf_secret))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", token)])
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.json().await.unwrap_or(Value::Null))
}

async fn userinfo(op: &Op, access: &str) -> u16 {
    op.http.get(format!("{}/userinfo", op.base)).bearer_auth(access).send().await.unwrap().status().as_u16()
}

/// Every token a winner got is dead: its refresh token refreshes nothing, its access token opens
/// nothing.
async fn assert_dead(op: &Op, label: &str, winners: &[Value]) {
    for w in winners {
        let rt = w["refresh_token"].as_str().unwrap();
        let (status, body) = refresh(op, rt).await;
        assert_eq!(status, 400, "{label}: a refresh token of the raced grant still works: {body}");
        let at = w["access_token"].as_str().unwrap();
        assert_eq!(userinfo(op, at).await, 401, "{label}: an access token of the raced grant still works");
    }
}

async fn token_races(op: Op, label: &str) {
    let op = std::sync::Arc::new(op);
    let cookie = op.sign_in("alice", PASSWORD).await.unwrap();
    let mut both_refused = 0;
    for trial in 0..60 {
        // A code redeemed twice at once.
        let code = op.code(&cookie, "conf").await;
        let (a, b) = tokio::join!(op.exchange(&code), op.exchange(&code));
        let winners: Vec<Value> = [a, b].into_iter().filter(|(s, _)| *s == 200).map(|(_, v)| v).collect();
        assert!(winners.len() <= 1, "{label} trial {trial}: the code was redeemed twice");
        if winners.is_empty() {
            both_refused += 1;
        }
        assert_dead(&op, &format!("{label} code reuse, trial {trial}"), &winners).await;

        // A refresh token used twice at once.
        let (status, tokens) = op.exchange(&op.code(&cookie, "conf").await).await;
        assert_eq!(status, 200, "{tokens}");
        let rt = tokens["refresh_token"].as_str().unwrap().to_owned();
        let (a, b) = tokio::join!(refresh(&op, &rt), refresh(&op, &rt));
        let winners: Vec<Value> = [a, b].into_iter().filter(|(s, _)| *s == 200).map(|(_, v)| v).collect();
        assert!(winners.len() <= 1, "{label} trial {trial}: the refresh token was rotated twice");
        assert_dead(&op, &format!("{label} refresh replay, trial {trial}"), &winners).await;
        let first_at = tokens["access_token"].as_str().unwrap();
        assert_eq!(userinfo(&op, first_at).await, 401, "{label}: the replayed grant's first access token lives");
    }
    println!(
        "{label}: 60 code-reuse and 60 refresh-replay races: no token survived ({both_refused} races refused both)"
    );
}

/// Proves (SQLite): reuse and replay detection is atomic with issuance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reuse_and_replay_leave_no_token_alive_sqlite() {
    token_races(Op::start(None, &[]).await, "sqlite").await;
}

/// Proves (PostgreSQL): the same with concurrent transactions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reuse_and_replay_leave_no_token_alive_postgres() {
    let Some(db) = Database::create().await else { return };
    token_races(Op::start(Some(db), &[]).await, "postgres").await;
}

/// Proves: a redemption by the wrong client, or with the wrong `redirect_uri`, leaves the code
/// for its owner (RFC 6749 §4.1.3 checks come before the code is spent).
#[tokio::test]
async fn a_failed_redemption_by_another_client_or_redirect_uri_does_not_spend_the_code() {
    let op = Op::start(None, &[]).await;
    let cookie = op.sign_in("alice", PASSWORD).await.unwrap();
    let code = op.code(&cookie, "conf").await;
    let other = op
        .http
        .post(format!("{}/token", op.base))
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", "pub"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 400);
    let wrong_redirect = op
        .http
        .post(format!("{}/token", op.base))
        .basic_auth("conf", Some(&op.conf_secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:9/other"),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_redirect.status(), 400);
    let (status, body) = op.exchange(&code).await;
    assert_eq!(status, 200, "the owner's redemption after the failed ones: {body}");
}

//! Operating commands: deliveries, the audit log, API tokens.

use crate::config::Config;
use crate::out::{self, Fields, opt_time, say, time};
use adieu_core::audit::{Actor, AuditEvent, AuditFilter};
use adieu_core::delivery::{Attempt, Delivery, DeliveryStatus};
use adieu_core::id::{ClientId, SessionId};
use adieu_core::store::{ApiTokenKind, DeliveryFilter, Store};
use adieu_core::{Clock, SystemClock, UnixMillis};
use adieu_server::crypto::{hash_secret, random_secret};
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::Duration;

/// `adieu deliveries …`
#[derive(Debug, Subcommand)]
pub enum DeliveriesCmd {
    /// List deliveries, newest first, with when each is next attempted.
    List {
        /// pending, leased, delivered, rejected, dead or discarded.
        #[arg(long)]
        status: Option<String>,
        /// Only this client.
        #[arg(long)]
        client: Option<String>,
        /// Only this OP session.
        #[arg(long)]
        session: Option<String>,
        /// At most this many (default 100).
        #[arg(long)]
        limit: Option<u32>,
    },
    /// Show one delivery with every attempt.
    Show {
        /// The delivery id.
        id: String,
    },
    /// Send a delivery again: a pending one now (instead of after its backoff), a dead or
    /// rejected one in a new round of attempts. A running server picks it up within a second.
    Retry {
        /// The delivery id.
        id: String,
    },
}

/// `adieu admin-token …`
#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Create a bearer token; it is printed once and stored only as a hash.
    Create {
        /// `admin` (management API, default), `registration` (initial access token for /register) or
        /// `global-token-revocation` (POST /global-token-revocation only).
        #[arg(long, default_value = "admin")]
        kind: String,
        /// A label to recognise it by.
        #[arg(long, default_value = "")]
        label: String,
    },
    /// List the tokens (id, kind, label, created); the tokens themselves are never shown again.
    List,
    /// Revoke a token by the id `admin-token list` shows: requests bearing it are refused at once.
    Revoke {
        /// The token's id (12 characters).
        id: String,
    },
}

/// Options of `adieu logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Event type, exact or a prefix ending in "." (e.g. delivery.).
    #[arg(long = "type")]
    kind: Option<String>,
    /// Only this client.
    #[arg(long)]
    client: Option<String>,
    /// Only events at or after this time: RFC 3339 (2026-12-03T06:00:00Z) or Unix milliseconds.
    #[arg(long, value_parser = parse_time)]
    since: Option<UnixMillis>,
    /// At most this many (default 100; with --follow, 10 before the new ones).
    #[arg(long)]
    limit: Option<u32>,
    /// Keep printing new events as they are written, oldest first (Ctrl-C to stop).
    #[arg(long, short = 'f')]
    follow: bool,
}

/// A time given on the command line: RFC 3339, or Unix milliseconds.
fn parse_time(s: &str) -> Result<UnixMillis, String> {
    match s.trim().parse::<i64>() {
        Ok(ms) => Ok(UnixMillis(ms)),
        Err(_) => UnixMillis::parse_rfc3339(s),
    }
}

const DELIVERY_HEADER: &[&str] =
    &["id", "status", "client", "initiator", "attempts", "next_attempt", "created", "last_error"];

/// A delivery as listed; `next_attempt` only while pending.
fn delivery_row(d: &Delivery) -> Fields {
    let next = (d.status == DeliveryStatus::Pending).then_some(d.next_attempt_at);
    vec![
        ("id", json!(d.id)),
        ("status", json!(d.status.as_str())),
        ("client", json!(d.client_id.as_str())),
        ("initiator", json!(d.initiator.as_str())),
        ("attempts", json!(d.attempts)),
        ("next_attempt", opt_time(next)),
        ("created", time(d.created_at)),
        ("last_error", json!(d.last_error)),
    ]
}

fn attempt_row(a: &Attempt) -> Fields {
    vec![
        ("number", json!(a.number)),
        ("at", time(a.at)),
        ("latency_ms", json!(a.latency_ms)),
        ("http_status", json!(a.http_status)),
        ("error", json!(a.error)),
    ]
}

/// Prints one delivery and its attempts.
fn show_delivery(d: &Delivery, attempts: &[Attempt]) -> anyhow::Result<()> {
    let mut fields = delivery_row(d);
    fields.extend([
        ("session", json!(d.session_id.as_str())),
        ("sub", json!(d.sub.as_str())),
        ("sid", json!(d.sid.as_str())),
        ("lease_until", opt_time(d.lease_until)),
        ("round_started", time(d.round_started_at)),
        ("finished", opt_time(d.finished_at)),
    ]);
    if out::json() {
        let list: Vec<Value> = attempts.iter().map(|a| Value::Object(to_map(attempt_row(a)))).collect();
        fields.push(("attempt_log", Value::Array(list)));
        return Ok(out::record(&fields)?);
    }
    out::record(&fields)?;
    say!("attempt_log:");
    for a in attempts {
        let outcome = match (a.http_status, &a.error) {
            (Some(s), _) => format!("HTTP {s}"),
            (None, Some(e)) => e.clone(),
            (None, None) => "-".into(),
        };
        say!("  #{} at {} ({} ms): {outcome}", a.number, a.at.to_rfc3339(), a.latency_ms);
    }
    Ok(())
}

fn to_map(fields: Fields) -> serde_json::Map<String, Value> {
    fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// Runs a deliveries command.
pub async fn deliveries(config: &Config, cmd: DeliveriesCmd) -> anyhow::Result<()> {
    let store = crate::store::open(config).await?;
    match cmd {
        DeliveriesCmd::List { status, client, session, limit } => {
            let filter = DeliveryFilter {
                status: status.map(|s| s.parse::<DeliveryStatus>()).transpose().map_err(anyhow::Error::msg)?,
                client_id: client.map(ClientId::new),
                session_id: session.map(SessionId::new),
                limit,
            };
            let rows: Vec<Fields> = store.deliveries(&filter).await?.iter().map(delivery_row).collect();
            out::list(DELIVERY_HEADER, &rows)?;
        }
        DeliveriesCmd::Show { id } => {
            let (d, attempts) = store.delivery(&id).await?.with_context(|| format!("no delivery {id:?}"))?;
            show_delivery(&d, &attempts)?;
        }
        DeliveriesCmd::Retry { id } => retry(store.as_ref(), &id).await?,
    }
    Ok(())
}

async fn retry(store: &dyn Store, id: &str) -> anyhow::Result<()> {
    let Some(from) = store.retry_delivery(id, &Actor::Cli.name(), SystemClock.now()).await? else {
        match store.delivery(id).await? {
            None => bail!("no delivery {id:?}"),
            Some((d, _)) => {
                bail!("delivery {id:?} is {}; only pending, dead and rejected deliveries can be retried", d.status)
            }
        }
    };
    let what = if from == DeliveryStatus::Pending { "is due now" } else { "starts a new round of attempts" };
    out::done(
        format_args!("delivery {id} (was {from}) {what}"),
        &vec![("id", json!(id)), ("was", json!(from.as_str())), ("status", json!("pending"))],
    )?;
    Ok(())
}

/// An audit event as `adieu logs` prints it: one JSON line, its time in RFC 3339.
fn event_line(e: &AuditEvent) -> anyhow::Result<String> {
    let mut v = serde_json::to_value(e)?;
    v["at"] = time(e.at);
    Ok(v.to_string())
}

/// Runs `adieu logs`.
pub async fn logs(config: &Config, args: LogsArgs) -> anyhow::Result<()> {
    let store = crate::store::open(config).await?;
    let filter = AuditFilter {
        kind: args.kind,
        client_id: args.client,
        since: args.since,
        until: None,
        limit: args.limit.or(args.follow.then_some(10)),
    };
    let first = store.audit_events(&filter).await?;
    if !args.follow {
        for e in &first {
            say!("{}", event_line(e)?);
        }
        return Ok(());
    }
    follow(store.as_ref(), filter, first).await
}

/// `adieu logs --follow`: the last events oldest first, then new ones as they come. Events are
/// read again from a few seconds before the newest seen, so one whose transaction committed
/// after a later one's (PostgreSQL replicas) is still printed, once.
async fn follow(store: &dyn Store, mut filter: AuditFilter, first: Vec<AuditEvent>) -> anyhow::Result<()> {
    const OVERLAP_MS: i64 = 10_000;
    // Ids printed, with their times: those older than the overlap are forgotten.
    let mut seen: HashMap<i64, UnixMillis> = HashMap::new();
    let mut newest = filter.since.unwrap_or(UnixMillis(0));
    // The first read is the last `limit` events; older ones the overlap brings back were left
    // out on purpose.
    let floor = first.iter().map(|e| (e.at, e.id)).min();
    let mut batch = first;
    filter.limit = Some(1000);
    loop {
        batch.sort_by_key(|e| (e.at, e.id));
        for e in batch.iter().filter(|e| floor.is_none_or(|f| (e.at, e.id) >= f)) {
            if seen.insert(e.id, e.at).is_none() {
                say!("{}", event_line(e)?);
            }
            newest = newest.max(e.at);
        }
        seen.retain(|_, at| at.0 >= newest.0 - 2 * OVERLAP_MS);
        filter.since = Some(UnixMillis(newest.0 - OVERLAP_MS));
        tokio::time::sleep(Duration::from_millis(500)).await;
        batch = store.audit_events(&filter).await?;
    }
}

/// Runs an admin-token command.
pub async fn token(config: &Config, cmd: TokenCmd) -> anyhow::Result<()> {
    let store = crate::store::open(config).await?;
    let actor = Actor::Cli.name();
    match cmd {
        TokenCmd::Create { kind, label } => {
            let kind: ApiTokenKind = kind.parse().map_err(anyhow::Error::msg)?;
            let token = random_secret();
            let hash = hash_secret(&token);
            store.insert_api_token(&hash, kind, &label, &actor, SystemClock.now()).await?;
            let id = adieu_core::store::ApiToken::id_of(&hash);
            out::done(&token, &vec![("id", json!(id)), ("kind", json!(kind.as_str())), ("token", json!(token))])?;
            eprintln!("This {} token (id {id}) is shown only this once; adieu keeps only a hash of it.", kind.as_str());
        }
        TokenCmd::List => {
            let rows: Vec<Fields> = store
                .api_tokens()
                .await?
                .into_iter()
                .map(|t| {
                    vec![
                        ("id", json!(t.id)),
                        ("kind", json!(t.kind.as_str())),
                        ("label", json!(t.label)),
                        ("created", time(t.created_at)),
                    ]
                })
                .collect();
            out::list(&["id", "kind", "label", "created"], &rows)?;
        }
        TokenCmd::Revoke { id } => {
            if !store.revoke_api_token(id.trim(), &actor, SystemClock.now()).await? {
                bail!("no API token with id {id:?} (see `adieu admin-token list`)");
            }
            out::done(format_args!("API token {id} revoked"), &vec![("id", json!(id)), ("revoked", json!(true))])?;
        }
    }
    Ok(())
}

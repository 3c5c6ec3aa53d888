//! Operating commands: deliveries, the audit log, API tokens.

use crate::config::Config;
use adieu_core::audit::Actor;
use adieu_core::audit::AuditFilter;
use adieu_core::delivery::DeliveryStatus;
use adieu_core::id::{ClientId, SessionId};
use adieu_core::store::{ApiTokenKind, DeliveryFilter};
use adieu_core::{Clock, SystemClock, UnixMillis};
use adieu_server::crypto::{hash_secret, random_secret};
use anyhow::{Context, bail};
use clap::Subcommand;

/// `adieu deliveries …`
#[derive(Debug, Subcommand)]
pub enum DeliveriesCmd {
    /// List deliveries, newest first.
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
    /// Put a dead delivery back in the queue (a running server picks it up within a second).
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
        /// `admin` (management API, default) or `registration` (initial access token for /register).
        #[arg(long, default_value = "admin")]
        kind: String,
        /// A label to recognise it by.
        #[arg(long, default_value = "")]
        label: String,
    },
}

fn ts(t: UnixMillis) -> String {
    format!("{}.{:03}", t.0.div_euclid(1000), t.0.rem_euclid(1000))
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
            println!("id\tstatus\tclient\tinitiator\tattempts\tcreated\tlast_error");
            for d in store.deliveries(&filter).await? {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    d.id,
                    d.status,
                    d.client_id,
                    d.initiator,
                    d.attempts,
                    ts(d.created_at),
                    d.last_error.as_deref().unwrap_or("-")
                );
            }
        }
        DeliveriesCmd::Show { id } => {
            let (d, attempts) = store.delivery(&id).await?.with_context(|| format!("no delivery {id:?}"))?;
            println!("{}", serde_json::to_string_pretty(&d)?);
            println!("attempts:");
            for a in attempts {
                let outcome = match (a.http_status, &a.error) {
                    (Some(s), _) => format!("HTTP {s}"),
                    (None, Some(e)) => e.clone(),
                    (None, None) => "-".into(),
                };
                println!("  #{} at {} ({} ms): {outcome}", a.number, ts(a.at), a.latency_ms);
            }
        }
        DeliveriesCmd::Retry { id } => {
            if !store.retry_dead(&id, &Actor::Cli.name(), SystemClock.now()).await? {
                bail!("delivery {id:?} does not exist or is not dead");
            }
            println!("delivery {id} is queued again");
        }
    }
    Ok(())
}

/// Runs `adieu logs`.
pub async fn logs(
    config: &Config,
    kind: Option<String>,
    client: Option<String>,
    since: Option<i64>,
    limit: Option<u32>,
) -> anyhow::Result<()> {
    let store = crate::store::open(config).await?;
    let filter = AuditFilter { kind, client_id: client, since: since.map(UnixMillis), until: None, limit };
    for e in store.audit_events(&filter).await? {
        println!("{}", serde_json::to_string(&e)?);
    }
    Ok(())
}

/// Runs an admin-token command.
pub async fn token(config: &Config, cmd: TokenCmd) -> anyhow::Result<()> {
    let store = crate::store::open(config).await?;
    match cmd {
        TokenCmd::Create { kind, label } => {
            let kind = match kind.as_str() {
                "admin" => ApiTokenKind::Admin,
                "registration" => ApiTokenKind::Registration,
                other => bail!("unknown token kind {other:?} (admin or registration)"),
            };
            let token = random_secret();
            store.insert_api_token(&hash_secret(&token), kind, &label, SystemClock.now()).await?;
            println!("{token}");
            eprintln!("This {} token is shown only this once; adieu keeps only a hash of it.", kind.as_str());
        }
    }
    Ok(())
}

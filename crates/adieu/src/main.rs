//! The `adieu` binary: `serve`, `migrate`, and the admin commands (`user`, `session`, `client`,
//! `deliveries`, `logs`, `admin-token`, `keys`).
//!
//! - [`config`]: configuration layers (defaults, TOML file, `ADIEU_…` environment).
//! - [`store`]: the one place that chooses a storage backend.
//! - [`serve`]: the provider with graceful shutdown.
//! - [`demo`]: the provider with a demo user and two demo applications, in one command.
//! - [`admin`]: user and client administration on the same database.
//! - [`ops`]: deliveries, the audit log, API tokens.
//! - [`keys`]: signing keys (list, rotate, retire) and the key-encryption key.

mod admin;
mod config;
#[cfg(feature = "demo")]
mod demo;
mod keys;
mod ops;
mod serve;
mod store;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// adieu: an OpenID Provider whose logout works.
#[derive(Debug, Parser)]
#[command(name = "adieu", version, about)]
struct Cli {
    /// Configuration file (TOML). Environment variables `ADIEU_…` override it.
    #[arg(long, global = true, env = "ADIEU_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the provider (default: http://127.0.0.1:8080, SQLite in ./adieu-data/).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Run a provider with a demo user and two demo applications (temporary database).
    #[cfg(feature = "demo")]
    Demo(demo::DemoArgs),
    /// Manage users and their sessions.
    #[command(subcommand)]
    User(admin::UserCmd),
    /// Manage OP sessions.
    #[command(subcommand)]
    Session(admin::SessionCmd),
    /// Manage clients (applications).
    #[command(subcommand)]
    Client(admin::ClientCmd),
    /// Inspect and retry back-channel logout deliveries.
    #[command(subcommand)]
    Deliveries(ops::DeliveriesCmd),
    /// Read the audit log (JSON lines, newest first).
    Logs {
        /// Event type, exact or a prefix ending in "." (e.g. delivery.).
        #[arg(long = "type")]
        kind: Option<String>,
        /// Only this client.
        #[arg(long)]
        client: Option<String>,
        /// Only events at or after this Unix time in milliseconds.
        #[arg(long)]
        since: Option<i64>,
        /// At most this many (default 100).
        #[arg(long)]
        limit: Option<u32>,
    },
    /// Create bearer tokens for the management API and dynamic registration.
    #[command(subcommand, name = "admin-token")]
    AdminToken(ops::TokenCmd),
    /// List, rotate and retire signing keys; make a key-encryption key.
    #[command(subcommand)]
    Keys(keys::KeysCmd),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("ADIEU_LOG").unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new(match cli.command {
                Command::Serve => "info",
                _ => "warn",
            })
        }))
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = config::Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Serve => serve::run(config).await,
        #[cfg(feature = "demo")]
        Command::Demo(args) => demo::run(args).await,
        Command::Migrate => {
            let _ = store::open(&config).await?;
            println!("migrations applied to {}", store::redacted(&config.database_url));
            Ok(())
        }
        Command::User(cmd) => admin::user(&config, cmd).await,
        Command::Session(cmd) => admin::session(&config, cmd).await,
        Command::Client(cmd) => admin::client(&config, cmd).await,
        Command::Deliveries(cmd) => ops::deliveries(&config, cmd).await,
        Command::Logs { kind, client, since, limit } => ops::logs(&config, kind, client, since, limit).await,
        Command::AdminToken(cmd) => ops::token(&config, cmd).await,
        Command::Keys(cmd) => keys::run(&config, cmd).await,
    }
}

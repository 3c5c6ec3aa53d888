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
mod out;
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
    /// Print lists and records as JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the provider (default: http://127.0.0.1:8080, SQLite in ./adieu-data/).
    Serve {
        /// Address to listen on, instead of the `listen` setting (e.g. 0.0.0.0:8080).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
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
    /// Read the audit log (JSON lines, newest first; with --follow, oldest first and then new ones).
    Logs(ops::LogsArgs),
    /// Create, list and revoke bearer tokens for the management API and dynamic registration.
    #[command(subcommand, name = "admin-token")]
    AdminToken(ops::TokenCmd),
    /// List, rotate and retire signing keys; make a key-encryption key.
    #[command(subcommand)]
    Keys(keys::KeysCmd),
}

/// The command line's definition, as parsed (also for completions and the man page).
fn command() -> clap::Command {
    // The demo's hidden `config` (see `demo::DemoArgs`) stands in for the global one.
    <Cli as clap::CommandFactory>::command()
}

fn main() -> ExitCode {
    let cli = match <Cli as clap::FromArgMatches>::from_arg_matches(&command().get_matches()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    out::set_json(cli.json);
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("ADIEU_LOG").unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new(match cli.command {
                Command::Serve { .. } => "info",
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
        // `adieu logs | head`: the reader has all it wanted.
        Err(e) if out::is_closed_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    #[cfg(feature = "demo")]
    if let Command::Demo(args) = cli.command {
        anyhow::ensure!(cli.config.is_none(), "adieu demo does not read a configuration file (--config, ADIEU_CONFIG)");
        return demo::run(args).await;
    }
    let mut config = config::Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Serve { listen } => {
            if let Some(addr) = listen {
                config.listen = addr;
            }
            serve::run(config).await
        }
        #[cfg(feature = "demo")]
        Command::Demo(_) => unreachable!("handled above"),
        Command::Migrate => {
            let _ = store::open(&config).await?;
            out::say!("migrations applied to {}", store::redacted(&config.database_url));
            Ok(())
        }
        Command::User(cmd) => admin::user(&config, cmd).await,
        Command::Session(cmd) => admin::session(&config, cmd).await,
        Command::Client(cmd) => admin::client(&config, cmd).await,
        Command::Deliveries(cmd) => ops::deliveries(&config, cmd).await,
        Command::Logs(args) => ops::logs(&config, args).await,
        Command::AdminToken(cmd) => ops::token(&config, cmd).await,
        Command::Keys(cmd) => keys::run(&config, cmd).await,
    }
}

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
mod check_rp;
mod config;
#[cfg(feature = "demo")]
mod demo;
mod keys;
mod ops;
mod out;
mod serve;
mod store;

/// The allocator (feature `mimalloc`, on by default): see `Cargo.toml`.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Test a client's back-channel logout endpoint: a valid token for a session it does not have
    /// (expects 200), tokens invalid in each way the spec names (expects 400), and malformed
    /// requests; reports what it answered, what is required and what to fix. Exits 1 if any failed.
    #[command(name = "check-rp")]
    CheckRp {
        /// The client id.
        client_id: String,
    },
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
    /// Print a shell completion script (bash, zsh, fish, elvish or powershell), generated from
    /// this command line's definition: e.g. `adieu completions bash > /etc/bash_completion.d/adieu`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), generated from this command line's definition:
    /// `adieu man > adieu.1 && man ./adieu.1`; with --out-dir, write it and one page per
    /// command (adieu-serve.1, adieu-deliveries-retry.1, …) there.
    Man {
        /// Write every page into this directory instead of printing the main one.
        #[arg(long)]
        out_dir: Option<PathBuf>,
    },
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
    // The demo has no configuration; every other command reads it before logging starts.
    #[cfg(feature = "demo")]
    let is_demo = matches!(cli.command, Command::Demo(_));
    #[cfg(not(feature = "demo"))]
    let is_demo = false;
    let config = if is_demo { Ok(config::Config::default()) } else { config::Config::load(cli.config.as_deref()) };
    let format = config.as_ref().map_or(config::LogFormat::Text, |c| c.log_format);
    init_logging(format, matches!(cli.command, Command::Serve { .. }));
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match config {
        Ok(config) => runtime.block_on(run(cli, config)),
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // `adieu logs | head`: the reader has all it wanted.
        Err(e) if out::is_closed_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to standard error at `ADIEU_LOG` (default: `info` for serve, `warn` otherwise), as text
/// (coloured only on a terminal) or JSON lines.
fn init_logging(format: config::LogFormat, serving: bool) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("ADIEU_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(if serving { "info" } else { "warn" }));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        config::LogFormat::Json => builder.json().with_ansi(false).init(),
        config::LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
    }
}

async fn run(cli: Cli, config: config::Config) -> anyhow::Result<()> {
    #[cfg(feature = "demo")]
    if let Command::Demo(args) = cli.command {
        anyhow::ensure!(cli.config.is_none(), "adieu demo does not read a configuration file (--config, ADIEU_CONFIG)");
        return demo::run(args).await;
    }
    let mut config = config;
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
        Command::CheckRp { client_id } => check_rp::run(&config, &client_id).await,
        Command::Deliveries(cmd) => ops::deliveries(&config, cmd).await,
        Command::Logs(args) => ops::logs(&config, args).await,
        Command::AdminToken(cmd) => ops::token(&config, cmd).await,
        Command::Keys(cmd) => keys::run(&config, cmd).await,
        Command::Completions { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut command(), "adieu", &mut out);
            out::line(String::from_utf8_lossy(&out).trim_end())?;
            Ok(())
        }
        Command::Man { out_dir: Some(dir) } => {
            std::fs::create_dir_all(&dir)?;
            clap_mangen::generate_to(command(), &dir)?;
            out::say!("manual pages written to {}", dir.display());
            Ok(())
        }
        Command::Man { out_dir: None } => {
            let mut out = Vec::new();
            clap_mangen::Man::new(command()).render(&mut out)?;
            out::line(String::from_utf8_lossy(&out).trim_end())?;
            Ok(())
        }
    }
}

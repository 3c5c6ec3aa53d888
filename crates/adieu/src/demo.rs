//! `adieu demo`: the whole loop in one command. A provider on a temporary SQLite database with a
//! demo user, and two demo applications (App A and App B) registered with back-channel logout,
//! each on its own port. Sign in to both, sign out of one, and watch the other sign out too.

use crate::config::Config;
use crate::out::say;
use adieu_core::client::TokenEndpointAuthMethod;
use adieu_core::id::UserId;
use adieu_core::initiator::{InitiatorMode, InitiatorSubscription};
use adieu_core::user::User;
use adieu_core::{Clock, SystemClock};
use adieu_server::client_metadata::{ClientRegistration, UriPolicy, register};
use adieu_server::password::Passwords;
use anyhow::Context;
use clap::Args;
use std::net::SocketAddr;
use std::time::Duration;

/// Options of `adieu demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Port of the provider.
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Port of App A.
    #[arg(long, default_value_t = 9001)]
    pub app_a_port: u16,
    /// Port of App B.
    #[arg(long, default_value_t = 9002)]
    pub app_b_port: u16,
    /// Not offered: the demo runs on a temporary database with its own settings. This hidden
    /// option takes the place of the global `--config` and refuses any value.
    #[arg(long, hide = true, value_parser = no_config)]
    config: Option<std::path::PathBuf>,
}

fn no_config(_: &str) -> Result<std::path::PathBuf, String> {
    Err("adieu demo does not read a configuration file".into())
}

/// The demo user's name and password.
pub const DEMO_USER: (&str, &str) = ("demo", "demo-password");

/// Binds a demo port, or says which option moves it.
async fn bind(port: u16, what: &str, option: &str) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| format!("cannot listen on 127.0.0.1:{port} for {what}: choose another port with {option}"))
}

/// Runs the demo until Ctrl-C. Every port is bound first, so a taken one fails at once.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let provider_listener = bind(args.port, "the provider", "--port").await?;
    let a = bind(args.app_a_port, "App A", "--app-a-port").await?;
    let b = bind(args.app_b_port, "App B", "--app-b-port").await?;
    let mut app_listeners = vec![a, b];
    let dir = tempfile::tempdir()?;
    let config = Config {
        listen: SocketAddr::from(([127, 0, 0, 1], args.port)),
        database_url: format!("sqlite://{}", dir.path().join("adieu.db").display()),
        ..Config::default()
    };
    let settings = config.settings()?;
    let store = crate::store::open(&config).await?;
    let now = SystemClock.now();
    let hash = Passwords::new(1).hash(DEMO_USER.1).await?;
    store
        .create_user(&User {
            id: UserId::new(adieu_server::crypto::random_id()),
            username: DEMO_USER.0.into(),
            email: Some("demo@example.com".into()),
            password_hash: hash,
            created_at: now,
            updated_at: now,
        })
        .await?;
    let policy = UriPolicy::for_settings(&settings);
    let mut apps = Vec::new();
    for (id, name, port) in [("app-a", "App A", args.app_a_port), ("app-b", "App B", args.app_b_port)] {
        let base = format!("http://127.0.0.1:{port}");
        let reg = ClientRegistration {
            client_id: Some(id.into()),
            name: name.into(),
            redirect_uris: vec![format!("{base}/callback")],
            post_logout_redirect_uris: vec![format!("{base}/")],
            backchannel_logout_uri: Some(format!("{base}/backchannel-logout")),
            backchannel_logout_session_required: true,
            token_endpoint_auth_method: TokenEndpointAuthMethod::ClientSecretBasic,
            // Told of every ending, so "sign out everywhere" and an admin's revoke show too.
            backchannel_logout_initiators: InitiatorSubscription {
                mode: InitiatorMode::All,
                selected_initiators: vec![],
            },
            ..Default::default()
        };
        let (client, secret) = register(store.as_ref(), reg, &policy, now, "demo").await?;
        apps.push((client.id.to_string(), name, base, port, secret.context("confidential client")?));
    }
    drop(store);

    let issuer = settings.issuer_str();
    let start_apps = async {
        let health = format!("{issuer}/healthz");
        let mut up = false;
        for _ in 0..100 {
            if reqwest::get(&health).await.is_ok_and(|r| r.status().is_success()) {
                up = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::ensure!(up, "the provider did not start on {issuer}");
        let mut tasks = Vec::new();
        for (client_id, name, base, _port, secret) in apps {
            let listener = app_listeners.remove(0);
            let cfg = demo_rp::DemoConfig {
                issuer: issuer.clone(),
                client_id,
                client_secret: secret,
                base_url: base,
                name: name.into(),
            };
            tasks.push(tokio::spawn(demo_rp::serve(cfg, listener, async {
                let _ = tokio::signal::ctrl_c().await;
            })));
        }
        say!("");
        say!("adieu demo is running (data in {}, deleted on exit).", dir.path().display());
        say!("  provider: {issuer}   user: {} / password: {}", DEMO_USER.0, DEMO_USER.1);
        say!("  App A:    http://127.0.0.1:{}", args.app_a_port);
        say!("  App B:    http://127.0.0.1:{}", args.app_b_port);
        say!("Sign in to App A and to App B, then sign out of App A: App B's page shows you signed out.");
        say!("Press Ctrl-C to stop.");
        for t in tasks {
            t.await??;
        }
        Ok::<(), anyhow::Error>(())
    };
    // The provider runs on this task (its future is not `Send`); both stop on Ctrl-C, and
    // either failing stops the other.
    tokio::select! {
        provider = crate::serve::run_on(config, provider_listener) => provider,
        apps = start_apps => apps,
    }
}

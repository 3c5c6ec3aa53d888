//! `demo-rp`: run the demo application against any OpenID Provider.
//!
//! ```text
//! demo-rp --issuer http://127.0.0.1:8080 --client-id app-a --client-secret … \
//!         --base-url http://127.0.0.1:9001 --listen 127.0.0.1:9001
//! ```

use clap::Parser;

#[derive(Debug, Parser)]
#[command(name = "demo-rp", about = "A demo application signed out over the back channel")]
struct Args {
    /// The provider's issuer.
    #[arg(long, env = "DEMO_ISSUER")]
    issuer: String,
    /// This application's client id.
    #[arg(long, env = "DEMO_CLIENT_ID")]
    client_id: String,
    /// This application's client secret (client_secret_basic).
    #[arg(long, env = "DEMO_CLIENT_SECRET")]
    client_secret: String,
    /// Where this application is reached, e.g. http://127.0.0.1:9001.
    #[arg(long, env = "DEMO_BASE_URL")]
    base_url: String,
    /// Address to listen on.
    #[arg(long, env = "DEMO_LISTEN", default_value = "127.0.0.1:9001")]
    listen: std::net::SocketAddr,
    /// Name shown on the pages.
    #[arg(long, env = "DEMO_NAME", default_value = "Demo app")]
    name: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::new("info")).init();
    let a = Args::parse();
    let config = demo_rp::DemoConfig {
        issuer: a.issuer,
        client_id: a.client_id,
        client_secret: a.client_secret,
        base_url: a.base_url,
        name: a.name,
    };
    let listener = tokio::net::TcpListener::bind(a.listen).await?;
    println!("{} listening on http://{}", config.name, listener.local_addr()?);
    demo_rp::serve(config, listener, std::future::pending()).await
}

//! Configuration: defaults, then an optional TOML file (`--config`), then `ADIEU_…` environment
//! variables (nested keys with `__`, e.g. `ADIEU_SESSION__IDLE_TIMEOUT_SECS=3600`).

use adieu_server::Settings;
use adieu_server::http_server::HttpSettings;
use adieu_server::settings::{
    DeliverySettings, KeySettings, LoginSettings, Secret, SessionSettings, TokenSettings, UpstreamSettings,
};
use anyhow::Context;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use url::Url;

/// The whole configuration of `adieu`. Unknown keys are errors (a typo must not be ignored).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on (default `127.0.0.1:8080`).
    pub listen: SocketAddr,
    /// Issuer URL (default `http://{listen}`). Not loopback ⇒ must be https.
    pub issuer: Option<Url>,
    /// Database URL (default `sqlite://./adieu-data/adieu.db`; `postgres://…` for PostgreSQL).
    pub database_url: String,
    /// PostgreSQL pool size and replica name (`[database]`).
    pub database: DatabaseSettings,
    /// OP session lifetimes.
    pub session: SessionSettings,
    /// Token lifetimes.
    pub tokens: TokenSettings,
    /// Sign-in attempt limits.
    pub login: LoginSettings,
    /// Back-channel logout delivery.
    pub delivery: DeliverySettings,
    /// Management API bearer token (`ADIEU_ADMIN_TOKEN`), at least 32 characters.
    pub admin_token: Option<Secret>,
    /// Initial access token for dynamic registration (`ADIEU_REGISTRATION_TOKEN`), at least 32 characters.
    pub registration_token: Option<Secret>,
    /// Upstream OpenID Providers (`[[upstreams]]`); their secrets may come from the environment
    /// (`client_secret_env`).
    pub upstreams: Vec<UpstreamSettings>,
    /// Key-encryption key for signing keys at rest (`ADIEU_KEY_ENCRYPTION_KEY`): base64 of 32 bytes.
    pub key_encryption_key: Option<Secret>,
    /// Signing-key rotation (`[keys]`).
    pub keys: KeySettings,
    /// The HTTP listener: connection limits, timeouts, trusted reverse proxies (`[http]`).
    pub http: HttpSettings,
    /// How long finished deliveries and audit events are kept (`[retention]`).
    pub retention: adieu_server::retention::RetentionSettings,
    /// How the pages look (`[pages]`): product name, logo, accent colour, template overrides.
    pub pages: adieu_server::pages::PagesSettings,
    /// `text` (default: human-readable, coloured only on a terminal) or `json` (one object per line).
    pub log_format: LogFormat,
}

/// How log lines are written to standard error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line (`timestamp`, `level`, `target`, `fields`).
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            issuer: None,
            database_url: "sqlite://./adieu-data/adieu.db".into(),
            database: DatabaseSettings::default(),
            session: SessionSettings::default(),
            tokens: TokenSettings::default(),
            login: LoginSettings::default(),
            delivery: DeliverySettings::default(),
            admin_token: None,
            registration_token: None,
            upstreams: Vec::new(),
            key_encryption_key: None,
            keys: KeySettings::default(),
            http: HttpSettings::default(),
            retention: adieu_server::retention::RetentionSettings::default(),
            pages: adieu_server::pages::PagesSettings::default(),
            log_format: LogFormat::Text,
        }
    }
}

const TOP_LEVEL: [&str; 17] = [
    "log_format",
    "pages",
    "listen",
    "issuer",
    "database_url",
    "database",
    "session",
    "tokens",
    "login",
    "delivery",
    "admin_token",
    "registration_token",
    "upstreams",
    "key_encryption_key",
    "keys",
    "http",
    "retention",
];

impl Config {
    /// Loads the layers. Environment variables that are not configuration keys (such as
    /// `ADIEU_TEST_POSTGRES_URL`) are left alone.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Config> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(f) = file {
            anyhow::ensure!(f.exists(), "configuration file {} does not exist", f.display());
            fig = fig.merge(Toml::file(f));
        }
        let env = Env::prefixed("ADIEU_")
            .filter(|k| {
                let top = k.as_str().split("__").next().unwrap_or("").to_ascii_lowercase();
                TOP_LEVEL.contains(&top.as_str())
            })
            .split("__");
        fig.merge(env).extract().context("invalid configuration")
    }

    /// The HTTP application's settings.
    pub fn settings(&self) -> anyhow::Result<Settings> {
        let issuer = match &self.issuer {
            Some(i) => i.clone(),
            None => Url::parse(&format!("http://{}", self.listen)).context("cannot derive an issuer from listen")?,
        };
        let s = Settings {
            issuer,
            session: self.session.clone(),
            tokens: self.tokens.clone(),
            login: self.login.clone(),
            delivery: self.delivery.clone(),
            admin_token: self.admin_token.clone(),
            registration_token: self.registration_token.clone(),
            upstreams: self.upstreams.iter().map(resolve_upstream_secret).collect::<anyhow::Result<_>>()?,
            key_encryption_key: self.key_encryption_key.clone(),
            keys: self.keys.clone(),
            http: self.http.clone(),
            retention: self.retention.clone(),
            pages: self.pages.clone(),
        };
        s.validate()?;
        Ok(s)
    }

    /// For a SQLite URL, the file's directory (created before opening).
    pub fn sqlite_dir(&self) -> Option<PathBuf> {
        let path = self.database_url.strip_prefix("sqlite://").or_else(|| self.database_url.strip_prefix("sqlite:"))?;
        let path = path.split('?').next().unwrap_or(path);
        Path::new(path).parent().map(Path::to_path_buf).filter(|p| !p.as_os_str().is_empty())
    }
}

/// An upstream with `client_secret_env` gets its secret from that environment variable (which
/// must be set and not empty); giving both `client_secret` and `client_secret_env` is an error.
fn resolve_upstream_secret(u: &UpstreamSettings) -> anyhow::Result<UpstreamSettings> {
    let mut u = u.clone();
    if let Some(var) = u.client_secret_env.take() {
        anyhow::ensure!(
            u.client_secret.is_none(),
            "upstreams: {:?} has both client_secret and client_secret_env; give one",
            u.id
        );
        let v = std::env::var(&var).ok().filter(|v| !v.is_empty());
        let v = v.with_context(|| format!("upstreams: {:?}: the environment variable {var} is not set", u.id))?;
        u.client_secret = Some(Secret(v));
    }
    Ok(u)
}

/// `[database]`: the PostgreSQL connection pool and this replica's name. SQLite ignores both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// Connections in this process's pool (default 10, at least 1).
    pub max_connections: u32,
    /// This replica's name as the owner of delivery leases. A stable name, unique per replica,
    /// lets a restarted replica resume its in-flight deliveries at once; by default a random name
    /// is drawn at every start, and those deliveries wait for their leases to expire.
    pub replica_id: Option<String>,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        DatabaseSettings { max_connections: 10, replica_id: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `adieu.example.toml` loads with the real loader (every key known, every type right) and
    /// changes nothing: each value in it is the default.
    #[test]
    fn the_example_configuration_file_is_valid_and_all_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../adieu.example.toml");
        let loaded = Config::load(Some(&path)).unwrap();
        let as_json = |c: &Config| serde_json::to_value(c).unwrap();
        assert_eq!(as_json(&loaded), as_json(&Config::default()));
        loaded.settings().unwrap();
    }

    /// Every top-level key of [`Config`] is listed in `TOP_LEVEL` (so its environment variables
    /// are read) and appears in the example file.
    #[test]
    fn every_top_level_key_is_read_from_the_environment_and_shown_in_the_example() {
        let example = include_str!("../../../adieu.example.toml");
        let keys = serde_json::to_value(Config::default()).unwrap();
        for key in keys.as_object().unwrap().keys() {
            assert!(TOP_LEVEL.contains(&key.as_str()), "{key} is not in TOP_LEVEL");
            assert!(example.contains(key.as_str()), "{key} is not in adieu.example.toml");
        }
    }
}

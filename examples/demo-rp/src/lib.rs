//! The demo application: sign in with the authorization code flow and PKCE, a profile page, a
//! sign-out button that uses RP-Initiated Logout, and the back-channel logout endpoint from
//! `adieu-rp`, which deletes the application session (eager ending).
//!
//! Sessions live in memory; the session cookie `demo_session_{client_id}` holds a random id. Pages refresh
//! every few seconds so a back-channel logout shows without a click.

use adieu_rp::axum::BackchannelLogout;
use adieu_rp::discovery::{HttpJwks, Provider};
use adieu_rp::index::{IndexError, LoginRecord, MemorySessionIndex, SessionEnder, SessionIndex};
use adieu_rp::keys::KeyCache;
use adieu_rp::verifier::LogoutVerifier;
use adieu_rp::verify::VerificationPolicy;
use anyhow::Context;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// How the demo application is configured.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// The provider's issuer.
    pub issuer: String,
    /// This application's client id.
    pub client_id: String,
    /// Its secret (client_secret_basic).
    pub client_secret: String,
    /// Where it is reached (redirect URIs derive from it).
    pub base_url: String,
    /// The name on its pages.
    pub name: String,
}

#[derive(Debug, Clone)]
struct AppSession {
    username: String,
    sub: String,
    email: Option<String>,
    id_token: String,
}

/// Application sessions; ending one deletes it (eager back-channel logout).
#[derive(Debug, Default)]
struct Sessions(Mutex<HashMap<String, AppSession>>);

#[async_trait::async_trait]
impl SessionEnder for Sessions {
    async fn end_sessions(&self, ids: &[String]) -> Result<(), IndexError> {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        for id in ids {
            m.remove(id);
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
struct PendingLogin {
    verifier: String,
    nonce: String,
    started: std::time::Instant,
}

/// A sign-in not finished within this is forgotten.
const PENDING_LOGIN_TTL: std::time::Duration = std::time::Duration::from_secs(600);
/// At most this many sign-ins wait at once; the oldest goes first.
const MAX_PENDING_LOGINS: usize = 1000;

/// Adds a pending sign-in, forgetting expired ones and, past the bound, the oldest.
fn remember_pending(pending: &mut HashMap<String, PendingLogin>, state: String, login: PendingLogin) {
    pending.retain(|_, p| p.started.elapsed() < PENDING_LOGIN_TTL);
    while pending.len() >= MAX_PENDING_LOGINS {
        let Some(oldest) = pending.iter().min_by_key(|(_, p)| p.started).map(|(k, _)| k.clone()) else { break };
        pending.remove(&oldest);
    }
    pending.insert(state, login);
}

#[derive(Debug, Clone)]
struct Demo {
    cfg: Arc<DemoConfig>,
    provider: Arc<Provider>,
    keys: Arc<KeyCache>,
    http: reqwest::Client,
    sessions: Arc<Sessions>,
    index: Arc<MemorySessionIndex>,
    pending: Arc<Mutex<HashMap<String, PendingLogin>>>,
    /// Cookie names carry the client id: browsers share cookies across ports of one host, so two
    /// demo apps on 127.0.0.1 would otherwise overwrite each other's session.
    session_cookie: Arc<str>,
    login_cookie: Arc<str>,
}

fn random() -> String {
    use aws_lc_rs::rand::{SecureRandom, SystemRandom};
    let mut b = [0u8; 32];
    // Invariant: the OS random source is available.
    SystemRandom::new().fill(&mut b).expect("system random");
    B64.encode(b)
}

fn page(cfg: &DemoConfig, body: &str) -> Html<String> {
    let esc = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
    Html(format!(
        "<!doctype html><html><head><meta charset=utf-8><meta http-equiv=refresh content=3><title>{name}</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:3rem auto}}h1{{font-size:1.4rem}}\
         .who{{background:#eef6ee;padding:.8rem;border-radius:8px}}.out{{background:#f6eeee;padding:.8rem;border-radius:8px}}\
         button,a.button{{padding:.5rem .9rem;border-radius:6px;border:0;background:#2454d6;color:#fff;text-decoration:none}}</style>\
         </head><body><h1>{name}</h1>{body}</body></html>",
        name = esc(&cfg.name)
    ))
}

/// Builds the application (discovers the provider first).
pub async fn app(cfg: DemoConfig) -> anyhow::Result<Router> {
    adieu_rp::install_crypto();
    let provider = Provider::discover(&cfg.issuer).await.context("discovering the provider")?;
    let keys = Arc::new(KeyCache::new(Arc::new(HttpJwks::new(&provider.jwks_uri)?)));
    let policy = VerificationPolicy::new(&provider.issuer, &cfg.client_id);
    let verifier = Arc::new(
        LogoutVerifier::new(policy, KeyCache::new(Arc::new(HttpJwks::new(&provider.jwks_uri)?)))
            .with_replay_cache(Arc::new(adieu_rp::replay::MemoryReplayCache::default())),
    );
    let sessions = Arc::new(Sessions::default());
    let index = Arc::new(MemorySessionIndex::default());
    let backchannel = BackchannelLogout::new(verifier, index.clone(), sessions.clone());
    let suffix: String = cfg.client_id.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    let demo = Demo {
        session_cookie: format!("demo_session_{suffix}").into(),
        login_cookie: format!("demo_login_{suffix}").into(),
        cfg: Arc::new(cfg),
        provider: Arc::new(provider),
        keys,
        http: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?,
        sessions,
        index,
        pending: Arc::default(),
    };
    Ok(Router::new()
        .route("/", get(home))
        .route("/login", get(login))
        .route("/callback", get(callback))
        .route("/logout", post(logout))
        .route("/backchannel-logout", backchannel.method_router())
        .with_state(demo))
}

/// Serves the application on `listener` until `shutdown` completes.
pub async fn serve(
    cfg: DemoConfig,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let app = app(cfg).await?;
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await?;
    Ok(())
}

fn current(demo: &Demo, jar: &CookieJar) -> Option<AppSession> {
    let id = jar.get(&demo.session_cookie)?.value().to_owned();
    demo.sessions.0.lock().unwrap_or_else(|p| p.into_inner()).get(&id).cloned()
}

async fn home(State(demo): State<Demo>, jar: CookieJar) -> Response {
    let body = match current(&demo, &jar) {
        Some(s) => format!(
            "<p class=who>You are signed in as <strong id=user>{}</strong><br><small>sub {} {}</small></p>\
             <form method=post action=/logout><button type=submit>Sign out</button></form>",
            s.username.replace('<', "&lt;"),
            s.sub.replace('<', "&lt;"),
            s.email.as_deref().unwrap_or("").replace('<', "&lt;")
        ),
        None => "<p class=out id=signed-out>You are signed out.</p><p><a class=button href=/login>Sign in</a></p>"
            .to_owned(),
    };
    page(&demo.cfg, &body).into_response()
}

async fn login(State(demo): State<Demo>, jar: CookieJar) -> Response {
    let Some(authz) = demo.provider.authorization_endpoint.clone() else {
        return (StatusCode::BAD_GATEWAY, "the provider has no authorization endpoint").into_response();
    };
    let (state, nonce, verifier) = (random(), random(), random());
    let challenge = B64.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes()));
    remember_pending(
        &mut demo.pending.lock().unwrap_or_else(|p| p.into_inner()),
        state.clone(),
        PendingLogin { verifier, nonce: nonce.clone(), started: std::time::Instant::now() },
    );
    let mut url = match url::Url::parse(&authz) {
        Ok(u) => u,
        Err(_) => return (StatusCode::BAD_GATEWAY, "invalid authorization endpoint").into_response(),
    };
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &demo.cfg.client_id)
        .append_pair("redirect_uri", &format!("{}/callback", demo.cfg.base_url))
        .append_pair("scope", "openid profile email")
        .append_pair("state", &state)
        .append_pair("nonce", &nonce)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let cookie = Cookie::build((demo.login_cookie.to_string(), state))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .build();
    (jar.add(cookie), Redirect::to(url.as_str())).into_response()
}

#[derive(Debug, Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct TokenResponse {
    access_token: String,
    id_token: String,
}

async fn callback(State(demo): State<Demo>, jar: CookieJar, Query(q): Query<CallbackQuery>) -> Response {
    match finish_login(&demo, &jar, q).await {
        Ok(session_id) => {
            let cookie = Cookie::build((demo.session_cookie.to_string(), session_id))
                .path("/")
                .http_only(true)
                .same_site(SameSite::Lax)
                .build();
            (jar.remove(Cookie::from(demo.login_cookie.to_string())).add(cookie), Redirect::to("/")).into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "sign-in failed");
            (
                StatusCode::BAD_REQUEST,
                page(
                    &demo.cfg,
                    &format!(
                        "<p class=out>Sign-in failed: {}</p><p><a href=/>Back</a></p>",
                        e.to_string().replace('<', "&lt;")
                    ),
                ),
            )
                .into_response()
        }
    }
}

async fn finish_login(demo: &Demo, jar: &CookieJar, q: CallbackQuery) -> anyhow::Result<String> {
    if let Some(e) = q.error {
        anyhow::bail!("the provider answered {e}");
    }
    let state = q.state.context("no state")?;
    anyhow::ensure!(
        jar.get(&demo.login_cookie).map(|c| c.value()) == Some(state.as_str()),
        "state does not match this browser"
    );
    let pending = demo
        .pending
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&state)
        .filter(|p| p.started.elapsed() < PENDING_LOGIN_TTL)
        .context("unknown or expired sign-in")?;
    let token_endpoint = demo.provider.token_endpoint.clone().context("no token endpoint")?;
    let res = demo
        .http
        .post(token_endpoint)
        .basic_auth(&demo.cfg.client_id, Some(&demo.cfg.client_secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", q.code.as_deref().context("no code")?),
            ("redirect_uri", &format!("{}/callback", demo.cfg.base_url)),
            ("code_verifier", &pending.verifier),
        ])
        .send()
        .await?;
    anyhow::ensure!(res.status().is_success(), "token endpoint answered {}", res.status());
    let tokens: TokenResponse = res.json().await?;
    let claims = verify_id_token(demo, &tokens.id_token, &pending.nonce).await?;
    let mut username = claims["sub"].as_str().unwrap_or_default().to_owned();
    let mut email = None;
    if let Some(ui) = &demo.provider.userinfo_endpoint {
        let info: serde_json::Value = demo.http.get(ui).bearer_auth(&tokens.access_token).send().await?.json().await?;
        if let Some(u) = info["preferred_username"].as_str() {
            username = u.to_owned();
        }
        email = info["email"].as_str().map(str::to_owned);
    }
    let session_id = random();
    let sub = claims["sub"].as_str().context("no sub")?.to_owned();
    demo.index
        .record(LoginRecord {
            issuer: demo.provider.issuer.clone(),
            sub: sub.clone(),
            sid: claims["sid"].as_str().map(str::to_owned),
            session_id: session_id.clone(),
            created_at: claims["iat"].as_i64().unwrap_or(0),
        })
        .await?;
    demo.sessions
        .0
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(session_id.clone(), AppSession { username, sub, email, id_token: tokens.id_token });
    Ok(session_id)
}

/// ID token validation (Core §3.1.3.7): signature with the provider's keys (RS256, the default),
/// `iss`, `aud`, `exp`, `nonce`; a logout token is refused (no `nonce`, `typ`).
async fn verify_id_token(demo: &Demo, token: &str, nonce: &str) -> anyhow::Result<serde_json::Value> {
    let header = jsonwebtoken::decode_header(token)?;
    anyhow::ensure!(header.alg == jsonwebtoken::Algorithm::RS256, "unexpected ID token algorithm");
    let kid = header.kid.context("no kid")?;
    let mut keys = demo.keys.current().await?;
    if keys.find(&kid).is_none() {
        keys = demo.keys.refresh().await?;
    }
    let jwk = keys.find(&kid).context("unknown key")?;
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    v.set_issuer(&[&demo.provider.issuer]);
    v.set_audience(&[&demo.cfg.client_id]);
    let data = jsonwebtoken::decode::<serde_json::Value>(token, &jsonwebtoken::DecodingKey::from_jwk(jwk)?, &v)?;
    anyhow::ensure!(data.claims["nonce"].as_str() == Some(nonce), "nonce mismatch");
    Ok(data.claims)
}

async fn logout(State(demo): State<Demo>, jar: CookieJar) -> Response {
    let session = jar.get(&demo.session_cookie).map(|c| c.value().to_owned());
    let ended = session.and_then(|id| {
        let s = demo.sessions.0.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
        s.map(|s| (id, s))
    });
    let jar = jar.remove(Cookie::build((demo.session_cookie.to_string(), "")).path("/").build());
    let Some((id, s)) = ended else { return (jar, Redirect::to("/")).into_response() };
    let _ = demo.index.forget(&[id]).await;
    // RP-Initiated Logout: the provider ends its session and notifies the other applications.
    match &demo.provider.end_session_endpoint {
        Some(end) => {
            let mut url = match url::Url::parse(end) {
                Ok(u) => u,
                Err(_) => return (jar, Redirect::to("/")).into_response(),
            };
            url.query_pairs_mut()
                .append_pair("id_token_hint", &s.id_token)
                .append_pair("post_logout_redirect_uri", &format!("{}/", demo.cfg.base_url))
                .append_pair("state", &random());
            (jar, Redirect::to(url.as_str())).into_response()
        }
        None => (jar, Redirect::to("/")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login() -> PendingLogin {
        PendingLogin { verifier: "v".into(), nonce: "n".into(), started: std::time::Instant::now() }
    }

    #[test]
    fn pending_sign_ins_are_bounded_and_the_oldest_goes_first() {
        let mut m = HashMap::new();
        for i in 0..MAX_PENDING_LOGINS + 10 {
            remember_pending(&mut m, format!("s{i}"), login());
        }
        assert_eq!(m.len(), MAX_PENDING_LOGINS);
        assert!(!m.contains_key("s0") && m.contains_key(&format!("s{}", MAX_PENDING_LOGINS + 9)));
    }

    #[test]
    fn expired_pending_sign_ins_are_forgotten() {
        let mut m = HashMap::new();
        let old = std::time::Instant::now().checked_sub(PENDING_LOGIN_TTL + std::time::Duration::from_secs(1));
        if let Some(started) = old {
            m.insert("old".to_owned(), PendingLogin { started, ..login() });
            remember_pending(&mut m, "new".into(), login());
            assert!(!m.contains_key("old") && m.contains_key("new"));
        }
    }
}

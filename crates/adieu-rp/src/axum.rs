//! The back-channel logout endpoint for axum (BCL §2.5–2.8), and an extractor.
//!
//! [`BackchannelLogout::method_router`] answers:
//! - `200` with `Cache-Control: no-store` when the token is valid and the sessions it names are
//!   ended — also when it names no known session (BC-RP-14, BC-RESP-01/04);
//! - `400` with `{"error":"invalid_request","error_description":…}` for any invalid request or
//!   token (BC-RP-12, BC-RESP-02/03); the description never echoes the token or key material;
//! - `405` for other methods, `415` for a body that is not `application/x-www-form-urlencoded`,
//!   `413` above the body limit (64 KiB by default);
//! - `503` when the application's own session store fails, so a provider that retries
//!   (adieu does) tries again later. This is a deliberate choice: BCL would answer 400, which
//!   providers treat as final.
//!
//! Unknown form parameters are ignored (BC-SEND-02). The route needs no cookies and no CSRF
//! token: the signed logout token is its only authentication (BC-RP-15).

use crate::index::{SessionEnder, SessionIndex};
use crate::verifier::{LogoutVerifier, VerifyFailure};
use crate::verify::VerifiedLogoutToken;
use axum::body::{Body, Bytes};
use axum::extract::{FromRef, FromRequest, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, post};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Default largest request body.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

use crate::wall_clock_secs as now;

/// Why a back-channel request was refused, as an HTTP answer.
///
/// ```
/// use axum::response::IntoResponse;
/// let r = adieu_rp::axum::LogoutRejection::UnsupportedMediaType.into_response();
/// assert_eq!(r.status(), 415);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LogoutRejection {
    /// `415`: not `application/x-www-form-urlencoded`.
    UnsupportedMediaType,
    /// `413`: the body is larger than the limit.
    TooLarge,
    /// `400`: no (or more than one) `logout_token`, or an invalid token. The text is safe to send.
    Invalid(String),
    /// `503`: the application could not end the sessions.
    Unavailable,
}

impl IntoResponse for LogoutRejection {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            LogoutRejection::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, error_body("the body must be application/x-www-form-urlencoded"))
            }
            LogoutRejection::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, error_body("the request body is too large")),
            LogoutRejection::Invalid(why) => (StatusCode::BAD_REQUEST, error_body(&why)),
            LogoutRejection::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                serde_json::json!({"error": "temporarily_unavailable", "error_description": "the logout could not be completed now; try again later"}).to_string(),
            ),
        };
        let mut res = (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
        res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if status == StatusCode::SERVICE_UNAVAILABLE {
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        res
    }
}

fn error_body(description: &str) -> String {
    serde_json::json!({"error": "invalid_request", "error_description": description}).to_string()
}

/// Reads a back-channel logout request (an `application/x-www-form-urlencoded` body of at most
/// `limit` bytes) and returns its single `logout_token`; other parameters are ignored
/// (BC-SEND-02). For endpoints that end sessions their own way but answer like
/// [`BackchannelLogout`].
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let req = axum::http::Request::post("/bc")
///     .header("content-type", "application/x-www-form-urlencoded")
///     .body(axum::body::Body::from("logout_token=abc&other=1"))
///     .unwrap();
/// assert_eq!(adieu_rp::axum::read_logout_token(req, 1024).await.unwrap(), "abc");
/// # });
/// ```
pub async fn read_logout_token(req: Request, limit: usize) -> Result<String, LogoutRejection> {
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"));
    if !is_form {
        return Err(LogoutRejection::UnsupportedMediaType);
    }
    let body: Bytes = axum::body::to_bytes(req.into_body(), limit).await.map_err(|e| {
        // An exceeded limit is a length-limit error somewhere in the chain; anything else is a broken request.
        let mut cur: Option<&dyn std::error::Error> = Some(&e);
        let mut too_large = false;
        while let Some(c) = cur {
            too_large |= c.to_string().contains("length limit");
            cur = c.source();
        }
        if too_large {
            LogoutRejection::TooLarge
        } else {
            LogoutRejection::Invalid("the request body could not be read".into())
        }
    })?;
    logout_token_of(&body)
}

/// The single `logout_token` of an `application/x-www-form-urlencoded` body.
///
/// A logout token is base64url and dots, so a body without `%` or `+` needs no decoding: it is
/// split in place (the common case, and a measurable share of the endpoint's CPU otherwise).
/// Anything else goes through the full form decoder. Both give the same answer for every body
/// (a property test checks it).
fn logout_token_of(body: &[u8]) -> Result<String, LogoutRejection> {
    use std::borrow::Cow;
    let (mut in_place, mut decoded);
    let pairs: &mut dyn Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> =
        match std::str::from_utf8(body).ok().filter(|_| !body.iter().any(|b| matches!(b, b'%' | b'+'))) {
            Some(text) => {
                in_place = text
                    .split('&')
                    .filter(|p| !p.is_empty())
                    .map(|p| p.split_once('=').unwrap_or((p, "")))
                    .map(|(k, v)| (Cow::Borrowed(k), Cow::Borrowed(v)));
                &mut in_place
            }
            None => {
                decoded = url::form_urlencoded::parse(body);
                &mut decoded
            }
        };
    let mut token: Option<Cow<'_, str>> = None;
    for (k, v) in pairs {
        if k == "logout_token" {
            if token.is_some() {
                return Err(LogoutRejection::Invalid("logout_token is repeated".into()));
            }
            token = Some(v);
        }
    }
    token
        .filter(|t| !t.is_empty())
        .map(Cow::into_owned)
        .ok_or_else(|| LogoutRejection::Invalid("logout_token is missing".into()))
}

fn rejection(e: &VerifyFailure) -> LogoutRejection {
    match e {
        VerifyFailure::Invalid(e) => LogoutRejection::Invalid(e.to_string()),
        // Internal detail (URLs, store errors) stays in the logs.
        _ => LogoutRejection::Unavailable,
    }
}

/// An extractor for applications that end sessions themselves: a verified logout token.
///
/// ```
/// use adieu_rp::axum::VerifiedLogout;
/// use adieu_rp::verifier::LogoutVerifier;
/// use axum::{extract::FromRef, routing::post, Router};
/// use std::sync::Arc;
///
/// #[derive(Clone)]
/// struct App { verifier: Arc<LogoutVerifier> }
/// impl FromRef<App> for Arc<LogoutVerifier> {
///     fn from_ref(app: &App) -> Self { app.verifier.clone() }
/// }
///
/// async fn logout(VerifiedLogout(token): VerifiedLogout) -> ([(&'static str, &'static str); 1], &'static str) {
///     println!("end sessions of {:?}", token.subject());
///     // BC-RESP-04; and call `LogoutVerifier::logout_succeeded` once the sessions are ended.
///     ([("cache-control", "no-store")], "")
/// }
/// let _router: Router<App> = Router::new().route("/backchannel-logout", post(logout));
/// ```
#[derive(Debug, Clone)]
pub struct VerifiedLogout(pub VerifiedLogoutToken);

impl<S> FromRequest<S> for VerifiedLogout
where
    S: Send + Sync,
    Arc<LogoutVerifier>: FromRef<S>,
{
    type Rejection = LogoutRejection;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let verifier = Arc::<LogoutVerifier>::from_ref(state);
        let raw = read_logout_token(req, DEFAULT_BODY_LIMIT).await?;
        let token = verifier.verify(&raw, now()).await.map_err(|e| rejection(&e))?;
        Ok(VerifiedLogout(token))
    }
}

/// Counters of the endpoint.
#[derive(Debug, Default)]
pub struct LogoutStats {
    verified: AtomicU64,
    sessions_ended: AtomicU64,
    rejected: Mutex<BTreeMap<&'static str, u64>>,
}

impl LogoutStats {
    /// Valid tokens.
    ///
    /// ```
    /// assert_eq!(adieu_rp::axum::LogoutStats::default().verified(), 0);
    /// ```
    pub fn verified(&self) -> u64 {
        self.verified.load(Ordering::Relaxed)
    }
    /// Application sessions ended.
    ///
    /// ```
    /// assert_eq!(adieu_rp::axum::LogoutStats::default().sessions_ended(), 0);
    /// ```
    pub fn sessions_ended(&self) -> u64 {
        self.sessions_ended.load(Ordering::Relaxed)
    }
    /// Refused requests by reason (`expired`, `bad_signature`, `unsupported_media_type`, …).
    ///
    /// ```
    /// assert!(adieu_rp::axum::LogoutStats::default().rejected().is_empty());
    /// ```
    pub fn rejected(&self) -> BTreeMap<&'static str, u64> {
        self.rejected.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
    fn reject(&self, reason: &'static str) {
        *self.rejected.lock().unwrap_or_else(|p| p.into_inner()).entry(reason).or_default() += 1;
    }
}

/// The back-channel logout endpoint: verify, find the sessions, end them, answer.
///
/// ```
/// use adieu_rp::axum::BackchannelLogout;
/// use adieu_rp::index::{LogoutMarkers, MemorySessionIndex};
/// use adieu_rp::keys::{KeyCache, StaticJwks};
/// use adieu_rp::verifier::LogoutVerifier;
/// use adieu_rp::verify::VerificationPolicy;
/// use std::sync::Arc;
///
/// let verifier = LogoutVerifier::new(
///     VerificationPolicy::new("https://op.example.com", "my-client"),
///     KeyCache::new(Arc::new(StaticJwks(jsonwebtoken::jwk::JwkSet { keys: vec![] }))),
/// );
/// let endpoint = BackchannelLogout::new(
///     Arc::new(verifier),
///     Arc::new(MemorySessionIndex::default()),
///     Arc::new(LogoutMarkers::default()),
/// );
/// let app: axum::Router = axum::Router::new().route("/backchannel-logout", endpoint.method_router());
/// # let _ = app;
/// ```
#[derive(Debug, Clone)]
pub struct BackchannelLogout {
    verifier: Arc<LogoutVerifier>,
    index: Arc<dyn SessionIndex>,
    ender: Arc<dyn SessionEnder>,
    body_limit: usize,
    stats: Arc<LogoutStats>,
}

impl BackchannelLogout {
    /// An endpoint that ends sessions found in `index` with `ender`.
    ///
    /// ```
    /// # use adieu_rp::{axum::BackchannelLogout, index::*, keys::*, verifier::LogoutVerifier, verify::VerificationPolicy};
    /// # use std::sync::Arc;
    /// # let verifier = Arc::new(LogoutVerifier::new(VerificationPolicy::new("https://op", "c"), KeyCache::new(Arc::new(StaticJwks(jsonwebtoken::jwk::JwkSet { keys: vec![] })))));
    /// let endpoint = BackchannelLogout::new(verifier, Arc::new(MemorySessionIndex::default()), Arc::new(LogoutMarkers::default()));
    /// # let _ = endpoint;
    /// ```
    pub fn new(verifier: Arc<LogoutVerifier>, index: Arc<dyn SessionIndex>, ender: Arc<dyn SessionEnder>) -> Self {
        BackchannelLogout { verifier, index, ender, body_limit: DEFAULT_BODY_LIMIT, stats: Arc::default() }
    }

    /// Changes the body limit (default 64 KiB).
    ///
    /// ```
    /// # use adieu_rp::{axum::BackchannelLogout, index::*, keys::*, verifier::LogoutVerifier, verify::VerificationPolicy};
    /// # use std::sync::Arc;
    /// # let verifier = Arc::new(LogoutVerifier::new(VerificationPolicy::new("https://op", "c"), KeyCache::new(Arc::new(StaticJwks(jsonwebtoken::jwk::JwkSet { keys: vec![] })))));
    /// # let endpoint = BackchannelLogout::new(verifier, Arc::new(MemorySessionIndex::default()), Arc::new(LogoutMarkers::default()));
    /// let endpoint = endpoint.body_limit(16 * 1024);
    /// # let _ = endpoint;
    /// ```
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// The endpoint's counters.
    ///
    /// ```
    /// # use adieu_rp::{axum::BackchannelLogout, index::*, keys::*, verifier::LogoutVerifier, verify::VerificationPolicy};
    /// # use std::sync::Arc;
    /// # let verifier = Arc::new(LogoutVerifier::new(VerificationPolicy::new("https://op", "c"), KeyCache::new(Arc::new(StaticJwks(jsonwebtoken::jwk::JwkSet { keys: vec![] })))));
    /// # let endpoint = BackchannelLogout::new(verifier, Arc::new(MemorySessionIndex::default()), Arc::new(LogoutMarkers::default()));
    /// assert_eq!(endpoint.stats().verified(), 0);
    /// ```
    pub fn stats(&self) -> Arc<LogoutStats> {
        self.stats.clone()
    }

    /// The route: `POST` handled, any other method answered `405` with `Allow: POST`.
    ///
    /// ```
    /// # use adieu_rp::{axum::BackchannelLogout, index::*, keys::*, verifier::LogoutVerifier, verify::VerificationPolicy};
    /// # use std::sync::Arc;
    /// # let verifier = Arc::new(LogoutVerifier::new(VerificationPolicy::new("https://op", "c"), KeyCache::new(Arc::new(StaticJwks(jsonwebtoken::jwk::JwkSet { keys: vec![] })))));
    /// # let endpoint = BackchannelLogout::new(verifier, Arc::new(MemorySessionIndex::default()), Arc::new(LogoutMarkers::default()));
    /// let app: axum::Router = axum::Router::new().route("/bc", endpoint.method_router());
    /// # let _ = app;
    /// ```
    pub fn method_router<S: Clone + Send + Sync + 'static>(self) -> MethodRouter<S> {
        post(move |req: Request| {
            let this = self.clone();
            async move { this.handle(req).await }
        })
    }

    /// Handles one request (what [`BackchannelLogout::method_router`] calls).
    ///
    /// ```
    /// # use adieu_rp::{axum::BackchannelLogout, index::*, keys::*, verifier::LogoutVerifier, verify::VerificationPolicy};
    /// # use std::sync::Arc;
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # let verifier = Arc::new(LogoutVerifier::new(VerificationPolicy::new("https://op", "c"), KeyCache::new(Arc::new(StaticJwks(jsonwebtoken::jwk::JwkSet { keys: vec![] })))));
    /// # let endpoint = BackchannelLogout::new(verifier, Arc::new(MemorySessionIndex::default()), Arc::new(LogoutMarkers::default()));
    /// let req = axum::http::Request::post("/bc").body(axum::body::Body::empty()).unwrap();
    /// assert_eq!(endpoint.handle(req).await.status(), 415);
    /// # });
    /// ```
    pub async fn handle(&self, req: axum::http::Request<Body>) -> Response {
        use tracing::Instrument;
        self.handle_inner(req).instrument(tracing::info_span!("backchannel_logout")).await
    }

    async fn handle_inner(&self, req: axum::http::Request<Body>) -> Response {
        let raw = match read_logout_token(req, self.body_limit).await {
            Ok(t) => t,
            Err(r) => {
                self.stats.reject(match &r {
                    LogoutRejection::UnsupportedMediaType => "unsupported_media_type",
                    LogoutRejection::TooLarge => "too_large",
                    _ => "missing_logout_token",
                });
                return r.into_response();
            }
        };
        let now = now();
        let token = match self.verifier.verify(&raw, now).await {
            Ok(t) => t,
            Err(e) => {
                let reason = match &e {
                    VerifyFailure::Invalid(e) => e.reason(),
                    VerifyFailure::Keys(_) => "keys_unavailable",
                    VerifyFailure::Replay(_) => "replay_cache_unavailable",
                };
                tracing::info!(reason, error = %e, "logout token refused");
                self.stats.reject(reason);
                return rejection(&e).into_response();
            }
        };
        self.stats.verified.fetch_add(1, Ordering::Relaxed);
        let sessions = match self.index.sessions_to_end(&token).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "looking up sessions failed");
                self.stats.reject("session_store_unavailable");
                return LogoutRejection::Unavailable.into_response();
            }
        };
        if let Err(e) = self.ender.end_sessions(&sessions).await {
            tracing::error!(error = %e, "ending sessions failed");
            self.stats.reject("session_store_unavailable");
            return LogoutRejection::Unavailable.into_response();
        }
        if let Err(e) = self.index.forget(&sessions).await {
            tracing::warn!(error = %e, "forgetting ended sessions failed");
        }
        if let Err(e) = self.verifier.logout_succeeded(&token, now).await {
            tracing::warn!(error = %e, "recording the jti failed");
        }
        self.stats.sessions_ended.fetch_add(sessions.len() as u64, Ordering::Relaxed);
        tracing::info!(sessions = sessions.len(), "back-channel logout");
        ([(header::CACHE_CONTROL, "no-store")], StatusCode::OK).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::{LoginRecord, LogoutMarkers, MemorySessionIndex};
    use crate::keys::{KeyCache, StaticJwks};
    use crate::replay::MemoryReplayCache;
    use crate::testing::{AUD, ISS, TestKey, claims, set};
    use crate::verify::VerificationPolicy;
    use axum::Router;
    use serde_json::{Value, json};
    use tower::ServiceExt;

    struct Rig {
        app: Router,
        key: TestKey,
        markers: Arc<LogoutMarkers>,
        stats: Arc<LogoutStats>,
    }

    async fn rig() -> Rig {
        crate::install_crypto();
        let key = TestKey::ec("k1");
        let policy = VerificationPolicy::new(ISS, AUD).with_algorithms(&[jsonwebtoken::Algorithm::ES256]).unwrap();
        let verifier = LogoutVerifier::new(policy, KeyCache::new(Arc::new(StaticJwks(set(&[&key])))))
            .with_replay_cache(Arc::new(MemoryReplayCache::default()));
        let index = Arc::new(MemorySessionIndex::default());
        index
            .record(LoginRecord {
                issuer: ISS.into(),
                sub: "user-1".into(),
                sid: Some("sid-1".into()),
                session_id: "app-s1".into(),
                created_at: now() - 10,
            })
            .await
            .unwrap();
        let markers = Arc::new(LogoutMarkers::default());
        let endpoint = BackchannelLogout::new(Arc::new(verifier), index, markers.clone());
        let stats = endpoint.stats();
        Rig { app: Router::new().route("/bc", endpoint.method_router()), key, markers, stats }
    }

    fn token(key: &TestKey, edit: impl FnOnce(&mut Value)) -> String {
        let mut c = claims();
        c["iat"] = json!(now());
        c["exp"] = json!(now() + 120);
        c["jti"] = json!(format!("jti-{}", now()));
        edit(&mut c);
        key.sign("ES256", json!({"typ": "logout+jwt"}), &c)
    }

    async fn post(app: &Router, body: String, content_type: &str) -> (u16, Option<String>, String) {
        let req = axum::http::Request::post("/bc").header("content-type", content_type).body(Body::from(body)).unwrap();
        let res = app.clone().oneshot(req).await.unwrap();
        let status = res.status().as_u16();
        let cc = res.headers().get("cache-control").map(|v| v.to_str().unwrap().to_owned());
        let body = String::from_utf8(axum::body::to_bytes(res.into_body(), 1 << 20).await.unwrap().to_vec()).unwrap();
        (status, cc, body)
    }

    fn form(token: &str) -> String {
        url::form_urlencoded::Serializer::new(String::new()).append_pair("logout_token", token).finish()
    }

    /// BC-RESP-01/04, BC-RP-14: a valid token ends the named session; 200 with `no-store`.
    #[tokio::test]
    async fn bc_resp_01_valid_token_ends_the_session_and_answers_200_no_store() {
        let r = rig().await;
        let (status, cc, body) = post(&r.app, form(&token(&r.key, |_| {})), "application/x-www-form-urlencoded").await;
        assert_eq!((status, cc.as_deref(), body.as_str()), (200, Some("no-store"), ""));
        assert!(r.markers.is_logged_out("app-s1"));
        assert_eq!((r.stats.verified(), r.stats.sessions_ended()), (1, 1));
    }

    /// BC-RP-14: a valid token for an unknown session is a success.
    #[tokio::test]
    async fn bc_rp_14_unknown_session_is_still_200() {
        let r = rig().await;
        let t = token(&r.key, |c| c["sid"] = json!("nobody-knows"));
        assert_eq!(post(&r.app, form(&t), "application/x-www-form-urlencoded").await.0, 200);
        assert!(!r.markers.is_logged_out("app-s1"));
    }

    /// BC-RESP-02/03: invalid tokens get 400 with a JSON error that does not echo the token.
    #[tokio::test]
    async fn bc_resp_02_invalid_token_is_400_json_without_the_token() {
        let r = rig().await;
        let t = token(&r.key, |c| c["exp"] = json!(now() - 3600));
        let (status, cc, body) = post(&r.app, form(&t), "application/x-www-form-urlencoded").await;
        assert_eq!((status, cc.as_deref()), (400, Some("no-store")));
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["error"], "invalid_request");
        assert!(!body.contains(&t[..20]), "the token is not echoed");
        assert_eq!(r.stats.rejected().get("expired"), Some(&1));
        assert!(!r.markers.is_logged_out("app-s1"));
    }

    /// BC-SEND-02: extra parameters are ignored; a charset parameter on the media type is fine.
    #[tokio::test]
    async fn extra_form_parameters_are_ignored() {
        let r = rig().await;
        let body = format!("ignored_parameter=x&{}", form(&token(&r.key, |_| {})));
        assert_eq!(post(&r.app, body, "application/x-www-form-urlencoded; charset=UTF-8").await.0, 200);
    }

    #[tokio::test]
    async fn missing_or_repeated_logout_token_is_400() {
        let r = rig().await;
        assert_eq!(post(&r.app, "other=1".into(), "application/x-www-form-urlencoded").await.0, 400);
        let t = token(&r.key, |_| {});
        assert_eq!(
            post(&r.app, format!("{}&{}", form(&t), form(&t)), "application/x-www-form-urlencoded").await.0,
            400
        );
    }

    #[tokio::test]
    async fn wrong_content_type_is_415_and_oversized_body_is_413() {
        let r = rig().await;
        let t = token(&r.key, |_| {});
        assert_eq!(post(&r.app, json!({"logout_token": t}).to_string(), "application/json").await.0, 415);
        assert_eq!(
            post(&r.app, format!("logout_token={}", "a".repeat(70 * 1024)), "application/x-www-form-urlencoded")
                .await
                .0,
            413
        );
    }

    #[tokio::test]
    async fn other_methods_are_405() {
        let r = rig().await;
        let res = r.app.clone().oneshot(axum::http::Request::get("/bc").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(res.status(), 405);
        assert_eq!(res.headers().get("allow").unwrap(), "POST");
    }

    /// Key fetch failures are temporary: 503 with `Retry-After`, so a provider that retries
    /// (adieu does) tries again instead of treating the logout as refused.
    #[tokio::test]
    async fn keys_unavailable_is_503_with_retry_after_and_no_internal_detail() {
        #[derive(Debug)]
        struct Down;
        #[async_trait::async_trait]
        impl crate::keys::JwksSource for Down {
            async fn fetch(&self) -> Result<jsonwebtoken::jwk::JwkSet, crate::keys::KeyFetchError> {
                Err(crate::keys::KeyFetchError::new("connect to https://op.internal:8443/jwks refused"))
            }
        }
        crate::install_crypto();
        let key = TestKey::ec("k1");
        let policy = VerificationPolicy::new(ISS, AUD).with_algorithms(&[jsonwebtoken::Algorithm::ES256]).unwrap();
        let verifier = LogoutVerifier::new(policy, KeyCache::new(Arc::new(Down)));
        let endpoint = BackchannelLogout::new(
            Arc::new(verifier),
            Arc::new(MemorySessionIndex::default()),
            Arc::new(LogoutMarkers::default()),
        );
        let app: Router = Router::new().route("/bc", endpoint.method_router());
        let req = axum::http::Request::post("/bc")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(form(&token(&key, |_| {}))))
            .unwrap();
        let res = app.oneshot(req).await.unwrap();
        assert_eq!(res.status(), 503);
        assert_eq!(res.headers().get("retry-after").unwrap(), "5");
        let body = axum::body::to_bytes(res.into_body(), 1 << 16).await.unwrap();
        assert!(!String::from_utf8_lossy(&body).contains("op.internal"), "internal detail stays in the logs");
    }

    /// BC-RP-08 + compatibility mode: a token without `exp` stays refused as a replay for as long
    /// as it would be accepted (its maximum age plus leeway).
    #[tokio::test]
    async fn replay_window_follows_the_policy() {
        crate::install_crypto();
        let key = TestKey::ec("k1");
        let policy = VerificationPolicy::new(ISS, AUD)
            .with_algorithms(&[jsonwebtoken::Algorithm::ES256])
            .unwrap()
            .allow_missing_exp(std::time::Duration::from_secs(3600));
        let verifier = LogoutVerifier::new(policy, KeyCache::new(Arc::new(StaticJwks(set(&[&key])))))
            .with_replay_cache(Arc::new(MemoryReplayCache::default()));
        let t = token(&key, |c| {
            c.as_object_mut().unwrap().remove("exp");
        });
        let now = now();
        let v = verifier.verify(&t, now).await.unwrap();
        verifier.logout_succeeded(&v, now).await.unwrap();
        for later in [now + 900, now + 3600] {
            assert_eq!(
                verifier.verify(&t, later).await,
                Err(crate::verifier::VerifyFailure::Invalid(crate::verify::LogoutTokenError::Replayed)),
                "at +{}",
                later - now
            );
        }
    }

    /// BC-RP-08: after a successful logout the same token is a replay; a provider's retry of a
    /// *failed* logout is not (the jti is recorded only on success).
    #[tokio::test]
    async fn bc_rp_08_replay_is_refused_after_success_only() {
        let r = rig().await;
        let t = token(&r.key, |_| {});
        assert_eq!(post(&r.app, form(&t), "application/x-www-form-urlencoded").await.0, 200);
        let (status, _, body) = post(&r.app, form(&t), "application/x-www-form-urlencoded").await;
        assert_eq!(status, 400);
        assert!(body.contains("already used"), "{body}");
    }
}

#[cfg(test)]
mod properties {
    //! No input makes the verifier or the endpoint panic or answer anything but a client error.

    use super::*;
    use crate::index::{LogoutMarkers, MemorySessionIndex};
    use crate::keys::{KeyCache, StaticJwks};
    use crate::testing::{AUD, ISS, TestKey, set};
    use crate::verify::{VerificationPolicy, verify};
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use proptest::prelude::*;
    use tower::ServiceExt;

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::Bool),
            any::<i64>().prop_map(|n| serde_json::json!(n)),
            any::<f64>().prop_map(|f| serde_json::json!(f)),
            ".{0,20}".prop_map(serde_json::Value::String),
            prop_oneof![
                Just("none"),
                Just("RS256"),
                Just("ES256"),
                Just("HS256"),
                Just("logout+jwt"),
                Just(ISS),
                Just(AUD)
            ]
            .prop_map(|s| serde_json::Value::String(s.into())),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("alg".to_owned()),
                        Just("typ".to_owned()),
                        Just("kid".to_owned()),
                        Just("crit".to_owned()),
                        Just("iss".to_owned()),
                        Just("aud".to_owned()),
                        Just("iat".to_owned()),
                        Just("exp".to_owned()),
                        Just("sub".to_owned()),
                        Just("sid".to_owned()),
                        Just("events".to_owned()),
                        Just("nonce".to_owned()),
                        Just("jti".to_owned()),
                        ".{0,8}"
                    ],
                    inner,
                    0..8
                )
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// Arbitrary text never panics the verifier.
        #[test]
        fn verify_never_panics_on_arbitrary_text(raw in ".{0,400}") {
            crate::install_crypto();
            let keys = jsonwebtoken::jwk::JwkSet { keys: vec![] };
            let _ = verify(&raw, &keys, &VerificationPolicy::new(ISS, AUD), 1_800_000_000);
        }

        /// Structured but arbitrary headers, claims and signatures never panic and never pass.
        #[test]
        fn arbitrary_jws_shapes_are_refused(header in json_value(), claims in json_value(), sig in prop::collection::vec(any::<u8>(), 0..300)) {
            crate::install_crypto();
            let key = TestKey::ec("k1");
            let raw = format!("{}.{}.{}", B64.encode(header.to_string()), B64.encode(claims.to_string()), B64.encode(sig));
            let policy = VerificationPolicy::new(ISS, AUD).with_algorithms(&[jsonwebtoken::Algorithm::ES256]).unwrap();
            prop_assert!(verify(&raw, &set(&[&key]), &policy, 1_800_000_000).is_err());
        }

        /// The in-place split for bodies without `%` or `+` finds the same token (or the same
        /// refusal) as the full form decoder, for any body.
        #[test]
        fn the_form_fast_path_agrees_with_the_form_decoder(
            parts in prop::collection::vec(
                prop_oneof![
                    Just("logout_token".to_owned()),
                    Just("logout_token=".to_owned()),
                    "logout_token=[A-Za-z0-9._~%+=-]{0,40}",
                    "[a-z_%+=.]{0,12}",
                    "[a-z_]{1,12}=[^&]{0,20}",
                ],
                0..5,
            ),
            separators in prop::collection::vec(prop_oneof![Just("&"), Just("&&"), Just("")], 5),
        ) {
            let mut body = String::new();
            for (i, p) in parts.iter().enumerate() {
                body.push_str(p);
                body.push_str(separators[i]);
            }
            let mut decoded = None;
            let mut repeated = false;
            for (k, v) in url::form_urlencoded::parse(body.as_bytes()) {
                if k == "logout_token" {
                    repeated |= decoded.is_some();
                    decoded = Some(v.into_owned());
                }
            }
            let expected = if repeated {
                Err(LogoutRejection::Invalid("logout_token is repeated".into()))
            } else {
                decoded.filter(|t| !t.is_empty()).ok_or(LogoutRejection::Invalid("logout_token is missing".into()))
            };
            prop_assert_eq!(super::logout_token_of(body.as_bytes()), expected, "body {:?}", body);
        }

        /// Arbitrary bodies and content types get 400, 413 or 415 from the endpoint — never a panic, never 200 or 5xx.
        #[test]
        fn the_endpoint_answers_arbitrary_requests_with_client_errors(
            body in prop::collection::vec(any::<u8>(), 0..2048),
            ct in prop_oneof![Just("application/x-www-form-urlencoded"), Just("application/json"), Just("text/plain"), Just("")],
            prefix in prop_oneof![Just(""), Just("logout_token="), Just("logout_token=a.b.c&logout_token=")],
        ) {
            crate::install_crypto();
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let status = rt.block_on(async {
                let key = TestKey::ec("k1");
                let policy = VerificationPolicy::new(ISS, AUD).with_algorithms(&[jsonwebtoken::Algorithm::ES256]).unwrap();
                let verifier = LogoutVerifier::new(policy, KeyCache::new(Arc::new(StaticJwks(set(&[&key])))));
                let endpoint = BackchannelLogout::new(Arc::new(verifier), Arc::new(MemorySessionIndex::default()), Arc::new(LogoutMarkers::default()));
                let app: axum::Router = axum::Router::new().route("/bc", endpoint.method_router());
                let mut full = prefix.as_bytes().to_vec();
                full.extend_from_slice(&body);
                let mut req = axum::http::Request::post("/bc");
                if !ct.is_empty() {
                    req = req.header("content-type", ct);
                }
                app.oneshot(req.body(Body::from(full)).unwrap()).await.unwrap().status().as_u16()
            });
            prop_assert!(matches!(status, 400 | 413 | 415), "status {}", status);
        }
    }
}

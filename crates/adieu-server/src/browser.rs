//! The browser side of the provider: the session cookie, CSRF protection of forms, and the client
//! address used for attempt limiting.
//!
//! Cookies are `HttpOnly`, `SameSite=Lax`, `Path=/`; under an `https` issuer they are `Secure` and
//! carry the `__Host-` prefix. The session cookie holds a 256-bit random value of which only a hash
//! is stored; it is unrelated to any `sid`.
//!
//! CSRF: every form carries a token that must equal a random `csrf` cookie (compared in constant
//! time), and a request whose `Origin` is present must come from the issuer's origin; a
//! `Sec-Fetch-Site: cross-site` request is refused.

use crate::AppState;
use crate::crypto::{constant_time_eq, hash_secret, random_secret};
use adieu_core::Session;
use adieu_core::store::StoreResult;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Names and flags of the provider's cookies.
#[derive(Debug, Clone)]
pub struct CookieNames {
    /// The OP session cookie.
    pub session: String,
    /// The CSRF double-submit cookie.
    pub csrf: String,
    /// Whether cookies are `Secure`.
    pub secure: bool,
}

impl CookieNames {
    /// `__Host-` names and `Secure` under https; plain names under the http development profile.
    pub fn for_scheme(https: bool) -> Self {
        let prefix = if https { "__Host-" } else { "" };
        CookieNames { session: format!("{prefix}adieu_session"), csrf: format!("{prefix}adieu_csrf"), secure: https }
    }

    fn build(&self, name: &str, value: String) -> Cookie<'static> {
        Cookie::build((name.to_owned(), value))
            .path("/")
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(self.secure)
            .build()
    }

    /// A new session cookie (a browser-session cookie: the server enforces lifetimes).
    pub fn session_cookie(&self, value: String) -> Cookie<'static> {
        self.build(&self.session, value)
    }

    /// A cookie that removes the session cookie.
    pub fn session_removal(&self) -> Cookie<'static> {
        let mut c = self.build(&self.session, String::new());
        c.make_removal();
        c
    }
}

/// The signed-in session of this browser, if its cookie names an active session.
pub async fn current_session(state: &AppState, jar: &CookieJar) -> StoreResult<Option<Session>> {
    let Some(cookie) = jar.get(&state.cookies.session) else { return Ok(None) };
    let value = cookie.value();
    if value.is_empty() || value.len() > 128 {
        return Ok(None);
    }
    let session = state.store.session_by_cookie(&hash_secret(value)).await?;
    let now = state.clock.now();
    Ok(session.filter(|s| s.is_active(now, state.lifetime)))
}

/// The CSRF token of this browser, creating the cookie if it has none.
pub fn csrf_token(state: &AppState, jar: CookieJar) -> (CookieJar, String) {
    if let Some(c) = jar.get(&state.cookies.csrf)
        && c.value().len() == 43
    {
        let v = c.value().to_owned();
        return (jar, v);
    }
    let token = random_secret();
    let jar = jar.add(state.cookies.build(&state.cookies.csrf, token.clone()));
    (jar, token)
}

/// Why a form submission was refused as cross-site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CsrfRejected;

/// Checks a submitted form: token equals the cookie, and the request is not cross-site.
pub fn check_csrf(state: &AppState, jar: &CookieJar, headers: &HeaderMap, submitted: &str) -> Result<(), CsrfRejected> {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && site.eq_ignore_ascii_case("cross-site")
    {
        return Err(CsrfRejected);
    }
    if let Some(origin) = headers.get(axum::http::header::ORIGIN) {
        // A browser sends `Origin: null` for a form post from a page with a strict referrer policy
        // (or a privacy setting); it is ours only if the browser also says the request is same-origin.
        let same_origin_fetch = headers
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|s| s.eq_ignore_ascii_case("same-origin"));
        let ok = origin.to_str().is_ok_and(|o| o == &*state.issuer_origin || (o == "null" && same_origin_fetch));
        if !ok {
            return Err(CsrfRejected);
        }
    }
    let cookie = jar.get(&state.cookies.csrf).map(|c| c.value()).unwrap_or("");
    if cookie.is_empty() || !constant_time_eq(cookie, submitted) {
        return Err(CsrfRejected);
    }
    Ok(())
}

/// The peer address of the request (`0.0.0.0` when served without connection info, e.g. in
/// `oneshot` tests). Forwarded headers are not trusted.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = Infallible;
    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let ip =
            parts.extensions.get::<ConnectInfo<SocketAddr>>().map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
        Ok(ClientAddr(ip))
    }
}

/// A fresh session cookie value and its stored hash.
pub fn new_cookie_value() -> (String, String) {
    let v = random_secret();
    let h = hash_secret(&v);
    (v, h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_issuer_gives_host_prefixed_secure_cookies() {
        let names = CookieNames::for_scheme(true);
        assert_eq!(names.session, "__Host-adieu_session");
        let c = names.session_cookie("v".into()).to_string();
        for flag in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/"] {
            assert!(c.contains(flag), "{c} lacks {flag}");
        }
        assert!(!c.contains("Domain"), "__Host- cookies carry no Domain: {c}");
    }

    #[test]
    fn http_development_issuer_gives_plain_cookies_without_secure() {
        let names = CookieNames::for_scheme(false);
        assert_eq!(names.session, "adieu_session");
        assert!(!names.session_cookie("v".into()).to_string().contains("Secure"));
    }

    #[test]
    fn session_removal_expires_the_cookie() {
        let c = CookieNames::for_scheme(true).session_removal().to_string();
        assert!(c.contains("Max-Age=0") || c.contains("Expires="), "{c}");
    }
}

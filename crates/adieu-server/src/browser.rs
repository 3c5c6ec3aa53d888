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

/// The client's address: the TCP peer (`0.0.0.0` when served without connection info, e.g. in
/// `oneshot` tests), or, when the peer is one of `http.trusted_proxies`, the rightmost address of
/// `Forwarded` (RFC 7239 `for=`) or else `X-Forwarded-For` that is not a trusted proxy. A client
/// cannot forge its way past this: everything left of the first untrusted hop is ignored.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub IpAddr);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = Infallible;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let peer =
            parts.extensions.get::<ConnectInfo<SocketAddr>>().map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
        Ok(ClientAddr(client_address(peer, &parts.headers, &state.trusted_proxies)))
    }
}

/// The rule of [`ClientAddr`].
pub fn client_address(peer: IpAddr, headers: &axum::http::HeaderMap, trusted: &[ipnet::IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops = forwarded_hops(headers);
    // Right to left: the nearest hop first. A hop that does not parse ends the walk there, since
    // nothing left of it can be trusted.
    let mut client = peer;
    for hop in hops.iter().rev() {
        match hop {
            Some(ip) if is_trusted(ip) => client = *ip,
            Some(ip) => return *ip,
            None => return client,
        }
    }
    client
}

/// The hops of `Forwarded` (every `for=`), or of `X-Forwarded-For` when there is no `Forwarded`,
/// left to right; `None` for a hop that is not an IP address (`unknown`, obfuscated names).
fn forwarded_hops(headers: &axum::http::HeaderMap) -> Vec<Option<IpAddr>> {
    let values = |name: &str| -> Vec<String> {
        headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).map(str::to_owned).collect()
    };
    let forwarded = values("forwarded");
    if !forwarded.is_empty() {
        return forwarded
            .iter()
            .flat_map(|v| v.split(','))
            .filter_map(|element| {
                element.split(';').find_map(|pair| {
                    let (k, v) = pair.trim().split_once('=')?;
                    k.trim().eq_ignore_ascii_case("for").then(|| parse_node(v.trim().trim_matches('"')))
                })
            })
            .collect();
    }
    values("x-forwarded-for").iter().flat_map(|v| v.split(',')).map(|h| parse_node(h.trim())).collect()
}

/// An address as `Forwarded` and `X-Forwarded-For` write it: `192.0.2.1`, `192.0.2.1:443`,
/// `[2001:db8::1]`, `[2001:db8::1]:443` or a bare IPv6 address.
fn parse_node(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = s.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    s.parse::<SocketAddr>().ok().map(|a| a.ip())
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

    fn headers(pairs: &[(&str, &str)]) -> axum::http::HeaderMap {
        let mut h = axum::http::HeaderMap::new();
        for (k, v) in pairs {
            h.append(axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_headers_are_ignored_without_trusted_proxies() {
        let h = headers(&[("x-forwarded-for", "198.51.100.7")]);
        assert_eq!(client_address(ip("192.0.2.1"), &h, &[]), ip("192.0.2.1"));
    }

    #[test]
    fn forwarded_headers_from_an_untrusted_peer_are_ignored() {
        let trusted = ["10.0.0.0/8".parse().unwrap()];
        let h = headers(&[("x-forwarded-for", "198.51.100.7")]);
        assert_eq!(client_address(ip("192.0.2.1"), &h, &trusted), ip("192.0.2.1"));
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let trusted = ["10.0.0.0/8".parse().unwrap()];
        // The client forged the first entry; the proxy chain appended the real one and itself.
        let h = headers(&[("x-forwarded-for", "203.0.113.66, 198.51.100.7, 10.0.0.2")]);
        assert_eq!(client_address(ip("10.0.0.1"), &h, &trusted), ip("198.51.100.7"));
    }

    #[test]
    fn forwarded_is_preferred_and_understands_ports_and_brackets() {
        let trusted = ["10.0.0.0/8".parse().unwrap()];
        let h = headers(&[
            ("forwarded", "for=203.0.113.66;proto=https, for=\"[2001:db8::7]:4711\""),
            ("x-forwarded-for", "198.51.100.1"),
        ]);
        assert_eq!(client_address(ip("10.0.0.1"), &h, &trusted), ip("2001:db8::7"));
        let h = headers(&[("forwarded", "for=198.51.100.9:443")]);
        assert_eq!(client_address(ip("10.0.0.1"), &h, &trusted), ip("198.51.100.9"));
    }

    #[test]
    fn an_unparsable_hop_stops_the_walk_at_the_last_trusted_one() {
        let trusted = ["10.0.0.0/8".parse().unwrap()];
        let h = headers(&[("x-forwarded-for", "198.51.100.7, unknown, 10.0.0.2")]);
        assert_eq!(client_address(ip("10.0.0.1"), &h, &trusted), ip("10.0.0.2"));
    }

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

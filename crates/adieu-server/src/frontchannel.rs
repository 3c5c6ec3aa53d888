//! Front-Channel Logout 1.0, for applications the provider cannot reach over the back channel
//! (single-page applications, applications on a private network).
//!
//! - Registration (FCL §2): `frontchannel_logout_uri` is absolute, keeps its query, has no
//!   fragment and no credentials, and has the scheme, host and port of one of the client's
//!   redirect URIs (so it is `https`, or `http` on a loopback host, like them).
//! - Which channel: a client with a back-channel logout URI is told over the back channel only
//!   ([`adieu_core::client::Client::logout_channel`] says why).
//! - Rendering (FCL §4): when a session ends at `/logout`, the signed-out page holds one iframe per
//!   front-channel application of the session, at its URI with `iss` and `sid` when
//!   `frontchannel_logout_session_required`. The page's script marks each application "Signed
//!   out" when its frame has loaded and "Could not be told" after [`FRAME_WAIT_MS`]; once every
//!   frame has settled it follows the `post_logout_redirect_uri`, if the request had one. Without
//!   JavaScript the frames still load and the page offers a link to go on.
//! - Other initiators (an administrator, expiry, a password change…) have no browser to render
//!   frames in: front-channel applications of those sessions are not told, and the status page
//!   says so.

use crate::client_metadata::{RegistrationError, bad_meta};
use std::collections::BTreeSet;
use url::Url;

/// How long the signed-out page waits for one front-channel frame before it marks the
/// application "Could not be told" (and, with a redirect, goes on without it).
pub(crate) const FRAME_WAIT_MS: u64 = 5_000;

/// Checks a `frontchannel_logout_uri` against the rules above; `redirect_uris` are the client's
/// (already checked) redirect URIs. A well-formed URI on another origin than every redirect URI
/// is a conflict with the other members (409 in the management API, 400 at registration).
pub(crate) fn check_uri(raw: &str, redirect_uris: &[String]) -> Result<(), RegistrationError> {
    let u = crate::client_metadata::parse_absolute("frontchannel_logout_uri", raw).map_err(bad_meta)?;
    if !matches!(u.scheme(), "https" | "http") || u.host().is_none() {
        return Err(bad_meta(format!("frontchannel_logout_uri {raw:?} must be an https (or loopback http) address")));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(bad_meta("frontchannel_logout_uri must not contain credentials"));
    }
    let same_origin = redirect_uris.iter().filter_map(|r| Url::parse(r).ok()).any(|r| r.origin() == u.origin());
    if !same_origin {
        let d = format!(
            "frontchannel_logout_uri {raw:?} must have the scheme, host and port of a registered redirect_uri (FCL §2)"
        );
        return Err(RegistrationError { conflict: true, ..bad_meta(d) });
    }
    Ok(())
}

/// The signed-out page's content security policy when it holds frames at `frames`: the usual
/// policy of that page, with `frame-src` opened to exactly those origins.
pub(crate) fn page_csp<'a>(base: &str, frames: impl Iterator<Item = &'a str>) -> String {
    let origins: BTreeSet<String> =
        frames.filter_map(|f| Url::parse(f).ok()).map(|u| u.origin().ascii_serialization()).collect();
    if origins.is_empty() {
        return base.to_owned();
    }
    let list: Vec<&str> = origins.iter().map(String::as_str).collect();
    format!("{base}; frame-src {}", list.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redirects() -> Vec<String> {
        vec!["https://app.example.com/cb".into(), "http://127.0.0.1:8080/cb".into()]
    }

    #[test]
    fn fcl_2_uri_must_share_scheme_host_and_port_with_a_redirect_uri() {
        check_uri("https://app.example.com/fc?tenant=a", &redirects()).unwrap();
        check_uri("http://127.0.0.1:8080/fc", &redirects()).unwrap();
        for bad in [
            "https://other.example.com/fc",
            "https://app.example.com:8443/fc",
            "http://app.example.com/fc",
            "http://127.0.0.1:8081/fc",
        ] {
            assert!(check_uri(bad, &redirects()).unwrap_err().conflict, "{bad}");
        }
    }

    #[test]
    fn fcl_2_uri_must_be_absolute_without_fragment_or_credentials() {
        for bad in [
            "/fc",
            "https://app.example.com/fc#x",
            "https://u:p@app.example.com/fc",
            "javascript:alert(1)",
            "https://app.example.com/f\nc",
        ] {
            assert!(!check_uri(bad, &redirects()).unwrap_err().conflict, "{bad:?}");
        }
    }

    #[test]
    fn frame_src_lists_exactly_the_frames_origins() {
        let frames = ["https://a.example.com/fc?iss=x", "https://a.example.com/other", "http://127.0.0.1:9/fc"];
        let csp = page_csp("default-src 'none'", frames.into_iter());
        assert_eq!(csp, "default-src 'none'; frame-src http://127.0.0.1:9 https://a.example.com");
        assert_eq!(page_csp("default-src 'none'", std::iter::empty()), "default-src 'none'");
    }
}

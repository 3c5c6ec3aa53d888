//! What an operator should hear at start-up: settings that work but are likely wrong for where
//! the provider runs. Each hint names the setting to look at.

use crate::discovery::JWKS_MAX_AGE_SECS;
use crate::settings::Settings;
use std::net::SocketAddr;

/// One warning for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hint {
    /// The setting it is about (`issuer`, `key_encryption_key`, `keys.publish_ahead_secs`).
    pub setting: &'static str,
    /// What is wrong and what to do.
    pub message: String,
}

/// The hints for `settings` when the provider listens on `listen`.
pub fn hints(settings: &Settings, listen: SocketAddr) -> Vec<Hint> {
    let mut out = Vec::new();
    if settings.issuer.scheme() == "https" && listen.ip().is_loopback() {
        out.push(Hint {
            setting: "issuer",
            message: format!(
                "the issuer is {} but adieu serves plain HTTP on {listen}: put a TLS-terminating reverse \
                 proxy in front of it, listening on the issuer's host",
                settings.issuer
            ),
        });
    }
    if !settings.is_development() && settings.key_encryption_key.is_none() {
        out.push(Hint {
            setting: "key_encryption_key",
            message: "no key_encryption_key: new signing keys are stored unencrypted in the database; make one \
                      with `adieu keys generate-kek` and set ADIEU_KEY_ENCRYPTION_KEY on every replica"
                .into(),
        });
    }
    let k = &settings.keys;
    let needed = JWKS_MAX_AGE_SECS + k.reload_interval_secs;
    if k.publish_ahead_secs < needed {
        out.push(Hint {
            setting: "keys.publish_ahead_secs",
            message: format!(
                "keys.publish_ahead_secs is {}, less than the JWKS cache time ({JWKS_MAX_AGE_SECS} s) plus \
                 keys.reload_interval_secs ({} s): after a rotation, an application with a cached JWKS \
                 can refuse logout tokens with 400, which is final; use at least {needed}",
                k.publish_ahead_secs, k.reload_interval_secs
            ),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(issuer: &str) -> Settings {
        Settings { issuer: issuer.parse().unwrap(), ..Settings::default() }
    }

    fn named(h: &[Hint]) -> Vec<&'static str> {
        h.iter().map(|h| h.setting).collect()
    }

    const LOOPBACK: &str = "127.0.0.1:8080";

    #[test]
    fn the_development_defaults_need_no_hint() {
        assert!(hints(&settings("http://127.0.0.1:8080"), LOOPBACK.parse().unwrap()).is_empty());
    }

    #[test]
    fn an_https_issuer_on_a_loopback_listener_asks_for_a_tls_proxy() {
        let mut s = settings("https://id.example.com");
        s.key_encryption_key = Some(crate::settings::Secret(crate::keys::kek::generate()));
        assert_eq!(named(&hints(&s, LOOPBACK.parse().unwrap())), vec!["issuer"]);
        assert!(hints(&s, "0.0.0.0:8080".parse().unwrap()).is_empty(), "a public listener may sit behind a proxy");
    }

    #[test]
    fn production_without_a_key_encryption_key_is_warned_about() {
        let h = hints(&settings("https://id.example.com"), "0.0.0.0:8080".parse().unwrap());
        assert_eq!(named(&h), vec!["key_encryption_key"]);
    }

    #[test]
    fn publishing_ahead_for_less_than_the_jwks_cache_time_is_warned_about() {
        let mut s = settings("http://127.0.0.1:8080");
        s.keys.publish_ahead_secs = 60;
        let h = hints(&s, LOOPBACK.parse().unwrap());
        assert_eq!(named(&h), vec!["keys.publish_ahead_secs"]);
        assert!(h[0].message.contains("at least 330"), "{}", h[0].message);
    }
}

//! The pages' languages over real HTTP: `Accept-Language`, `ui_locales` (kept for the rest of the
//! sign-in in a cookie, and preferred over `Accept-Language`), English by default, discovery's
//! `ui_locales_supported`, and values escaped inside translated text.

use crate::support::*;
use adieu_server::client_metadata::ClientRegistration;
use adieu_testkit::{Browser, TestOp};
use serde_json::{Value, json};

async fn get(op: &TestOp, path: &str, lang: Option<&str>) -> (String, String) {
    let mut req = reqwest::Client::new().get(op.url(path));
    if let Some(l) = lang {
        req = req.header("accept-language", l);
    }
    let res = req.send().await.unwrap();
    let language = res.headers()["content-language"].to_str().unwrap().to_owned();
    (language, res.text().await.unwrap())
}

/// Proves: `Accept-Language` picks German, French or Spanish by quality; anything else, or none,
/// is English; the page says its language (`<html lang>`, `Content-Language`); discovery lists the
/// four.
#[tokio::test]
async fn accept_language_chooses_the_pages_language_and_discovery_lists_them() {
    let op = TestOp::start().await.unwrap();
    for (header, lang, words) in [
        (None, "en", "You are not signed in."),
        (Some("de-CH, de;q=0.9"), "de", "Sie sind nicht angemeldet."),
        (Some("ja, fr;q=0.8, es;q=0.5"), "fr", "Vous n’êtes pas connecté."),
        (Some("es"), "es", "No ha iniciado sesión."),
        (Some("ja, it"), "en", "You are not signed in."),
    ] {
        let (language, page) = get(&op, "/", header).await;
        assert_eq!(language, lang, "{header:?}");
        assert!(page.contains(&format!("<html lang=\"{lang}\">")) && page.contains(words), "{header:?}: {page}");
    }
    let (_, page) = get(&op, "/no/such/page", Some("es")).await;
    assert!(page.contains("Página no encontrada"), "{page}");
    let d: Value = reqwest::get(op.url("/.well-known/openid-configuration")).await.unwrap().json().await.unwrap();
    assert_eq!(d["ui_locales_supported"], json!(["en", "de", "fr", "es"]));
}

/// Proves: `ui_locales` on the authorization request sets the sign-in page's language and is kept
/// (a cookie) for the pages that follow, over the browser's `Accept-Language`; a client's name is
/// escaped inside the translated heading.
#[tokio::test]
async fn ui_locales_is_kept_through_the_sign_in_and_values_are_escaped() {
    let op = TestOp::start().await.unwrap();
    op.add_user("alice", None, PASSWORD).await.unwrap();
    let (c, secret) = op
        .add_client(ClientRegistration {
            client_id: Some("html-app".into()),
            name: "<b>Bold</b> & Co".into(),
            redirect_uris: vec!["http://127.0.0.1:9501/cb".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    let app =
        adieu_testkit::TestClient { id: c.id.to_string(), secret, redirect_uri: "http://127.0.0.1:9501/cb".into() };
    let browser = Browser::new();
    let mut url = url::Url::parse(&op.url("/authorize")).unwrap();
    url.query_pairs_mut().extend_pairs(auth_params(&app, &[("ui_locales", "it fr-CA de")]));
    let res = browser.http.get(url).header("accept-language", "es").send().await.unwrap();
    let cookie = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|c| c.starts_with("adieu_locale=fr"));
    assert!(cookie, "the choice is kept: {:?}", res.headers());
    let login = res.headers()["location"].to_str().unwrap().to_owned();
    let page = browser.http.get(op.url(&login)).header("accept-language", "es").send().await.unwrap();
    assert_eq!(page.headers()["content-language"], "fr", "the kept ui_locales wins over Accept-Language");
    let html = page.text().await.unwrap();
    assert!(html.contains("Se connecter à &lt;b&gt;Bold&lt;&#x2f;b&gt; &amp; Co"), "{html}");
    assert!(!html.contains("<b>Bold</b>"), "{html}");
}

//! Languages: English (the message ids), German, French and Spanish.
//!
//! Every text a person reads on the provider's pages is an English message id, marked in the
//! templates with the `t` filter (`{{ "Sign in" | t }}`, `{{ "Sign in to {name}" | t(name=x) }}`)
//! and in Rust with [`msg`] (or translated at once with [`tr`] / [`tr_with`] where it is built
//! with values). The catalogues `locales/{de,fr,es}.json` map each id to its translation; a test
//! checks that every marked id has one in each language, with the same placeholders.
//!
//! Which language ([`negotiate`], a middleware): the request's `ui_locales` (OIDC Core §3.1.2.1,
//! on `/authorize` or any page; remembered for the browser's session in the `adieu_locale`
//! cookie so the sign-in, consent and error pages that follow keep it), else that cookie, else
//! `Accept-Language` by quality, else English. The choice holds for the whole request (a task
//! local), so pages and error pages rendered anywhere in it use it.

use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::LazyLock;

/// A language the pages are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Locale {
    /// English (the message ids themselves).
    En,
    /// German.
    De,
    /// French.
    Fr,
    /// Spanish.
    Es,
}

/// Every locale, in the order discovery lists them (`ui_locales_supported`).
pub const SUPPORTED: [Locale; 4] = [Locale::En, Locale::De, Locale::Fr, Locale::Es];

/// The cookie that keeps a `ui_locales` choice for the browser's session.
pub const COOKIE: &str = "adieu_locale";

impl Locale {
    /// The BCP 47 tag (`<html lang>`, `ui_locales_supported`).
    pub fn tag(self) -> &'static str {
        match self {
            Locale::En => "en",
            Locale::De => "de",
            Locale::Fr => "fr",
            Locale::Es => "es",
        }
    }

    /// The locale a language tag names (`de`, `de-CH`, `FR`), if one of ours.
    pub fn from_tag(tag: &str) -> Option<Locale> {
        let primary = tag.trim().split(['-', '_']).next()?.to_ascii_lowercase();
        SUPPORTED.into_iter().find(|l| l.tag() == primary)
    }

    fn catalogue(self) -> Option<&'static HashMap<String, String>> {
        static DE: LazyLock<HashMap<String, String>> = LazyLock::new(|| parse(include_str!("../locales/de.json")));
        static FR: LazyLock<HashMap<String, String>> = LazyLock::new(|| parse(include_str!("../locales/fr.json")));
        static ES: LazyLock<HashMap<String, String>> = LazyLock::new(|| parse(include_str!("../locales/es.json")));
        match self {
            Locale::En => None,
            Locale::De => Some(&DE),
            Locale::Fr => Some(&FR),
            Locale::Es => Some(&ES),
        }
    }
}

fn parse(src: &str) -> HashMap<String, String> {
    // Invariant: the catalogues are checked by the tests below.
    serde_json::from_str(src).unwrap_or_default()
}

tokio::task_local! {
    static CURRENT: Locale;
}

/// The language of the request being served (English outside of one).
pub fn current() -> Locale {
    CURRENT.try_with(|l| *l).unwrap_or(Locale::En)
}

/// Marks an English message id for the catalogue check; it is translated where it is rendered.
pub const fn msg(id: &'static str) -> &'static str {
    id
}

/// `id` in `locale` (the id itself when it has no translation).
pub fn translate(locale: Locale, id: &str) -> Cow<'_, str> {
    match locale.catalogue().and_then(|c| c.get(id)) {
        Some(t) => Cow::Borrowed(t.as_str()),
        None => Cow::Borrowed(id),
    }
}

/// `id` in the current request's language.
pub fn tr(id: &str) -> String {
    translate(current(), id).into_owned()
}

/// `id` in the current request's language with each `{name}` replaced by its value.
pub fn tr_with(id: &str, args: &[(&str, &str)]) -> String {
    fill(&translate(current(), id), args, |v| v.to_owned())
}

fn fill(text: &str, args: &[(&str, &str)], value: impl Fn(&str) -> String) -> String {
    let mut out = text.to_owned();
    for (name, v) in args {
        out = out.replace(&format!("{{{name}}}"), &value(v));
    }
    out
}

/// The `t` template filter: the value translated, each keyword argument (`t(name=x)`) escaped
/// and put in its `{name}`. Only a known message id (one the catalogues hold; the tests keep them
/// complete) is trusted to carry markup; any other value, such as text built with values from a
/// request, is escaped whole.
pub(crate) fn filter(value: String, kwargs: minijinja::value::Kwargs) -> Result<minijinja::Value, minijinja::Error> {
    let args: Vec<(String, String)> = kwargs
        .args()
        .map(|k| Ok((k.to_owned(), kwargs.get::<minijinja::Value>(k)?.to_string())))
        .collect::<Result<_, minijinja::Error>>()?;
    kwargs.assert_all_used()?;
    let pairs: Vec<(&str, &str)> = args.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let known = Locale::De.catalogue().is_some_and(|c| c.contains_key(&value));
    let text = if known { translate(current(), &value).into_owned() } else { escape(&value) };
    Ok(minijinja::Value::from_safe_string(fill(&text, &pairs, escape)))
}

/// Escapes like minijinja's HTML autoescape, so a value reads the same inside and outside `t`.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            '/' => out.push_str("&#x2f;"),
            c => out.push(c),
        }
    }
    out
}

/// The best of our locales for an `Accept-Language` header (quality order, ties by position).
pub fn from_accept_language(header: &str) -> Option<Locale> {
    let mut ranked: Vec<(u16, usize, Locale)> = header
        .split(',')
        .take(32)
        .enumerate()
        .filter_map(|(i, part)| {
            let mut it = part.split(';');
            let locale = Locale::from_tag(it.next()?)?;
            let q = it.find_map(|p| p.trim().strip_prefix("q=")).map_or(Some(1000), |q| {
                q.trim().parse::<f32>().ok().filter(|q| (0.0..=1.0).contains(q)).map(|q| (q * 1000.0) as u16)
            })?;
            (q > 0).then_some((q, i, locale))
        })
        .collect();
    ranked.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    ranked.first().map(|r| r.2)
}

/// The first of our locales in a `ui_locales` value (space-separated tags, in preference order).
pub fn from_ui_locales(value: &str) -> Option<Locale> {
    value.split(' ').take(32).find_map(Locale::from_tag)
}

fn query_ui_locales(req: &Request) -> Option<Locale> {
    let q = req.uri().query()?;
    url::form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "ui_locales").and_then(|(_, v)| from_ui_locales(&v))
}

fn cookie_locale(req: &Request) -> Option<Locale> {
    req.headers().get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).find_map(|c| {
        c.split(';')
            .find_map(|kv| kv.trim().strip_prefix(COOKIE).and_then(|r| r.strip_prefix('=')))
            .and_then(Locale::from_tag)
    })
}

/// Middleware: chooses the request's language (see the module) and serves the request in it.
pub async fn negotiate(req: Request, next: Next) -> Response {
    let asked = query_ui_locales(&req);
    let accept =
        || req.headers().get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()).and_then(from_accept_language);
    let locale = asked.or_else(|| cookie_locale(&req)).or_else(accept).unwrap_or(Locale::En);
    let mut res = CURRENT.scope(locale, next.run(req)).await;
    if let Some(l) = asked {
        let cookie = format!("{COOKIE}={}; Path=/; SameSite=Lax; HttpOnly", l.tag());
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            res.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    res.headers_mut().insert(header::CONTENT_LANGUAGE, HeaderValue::from_static(locale.tag()));
    res.headers_mut().append(header::VARY, HeaderValue::from_static("Accept-Language"));
    res
}

/// Runs `f` as if serving a request in `locale` (for tests and background renders).
pub async fn with_locale<F: std::future::Future>(locale: Locale, f: F) -> F::Output {
    CURRENT.scope(locale, f).await
}

#[cfg(test)]
#[path = "i18n_tests.rs"]
mod tests;

//! HTML pages, rendered with minijinja. The templates are embedded in the binary; a directory set
//! in `[pages] template_dir` overrides any of them by name (read and checked at start, so a broken
//! template stops the start, not a request). Autoescaping is on for every `.html` template, so
//! user-supplied values (usernames, client names) cannot inject markup.
//!
//! `[pages]` also brands the pages: the product name (title, footer), a logo read from a file at
//! start and served by adieu itself at `/branding/logo` (the pages' CSP allows images only from
//! adieu), and the accent colour of buttons and links, which must keep WCAG AA contrast with white
//! text.

use crate::AppState;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use minijinja::{Environment, Value, context};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The embedded templates, by name.
const TEMPLATES: [(&str, &str); 8] = [
    ("base.html", include_str!("../templates/base.html")),
    ("login.html", include_str!("../templates/login.html")),
    ("message.html", include_str!("../templates/message.html")),
    ("logout_confirm.html", include_str!("../templates/logout_confirm.html")),
    ("logged_out.html", include_str!("../templates/logged_out.html")),
    ("home.html", include_str!("../templates/home.html")),
    ("account.html", include_str!("../templates/account.html")),
    ("consent.html", include_str!("../templates/consent.html")),
];

/// Largest logo file accepted.
pub const MAX_LOGO_BYTES: u64 = 256 * 1024;

/// `[pages]`: how the provider's pages look.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PagesSettings {
    /// The product name in titles and the footer (default `adieu`; 1 to 60 characters).
    pub product_name: String,
    /// A PNG, SVG, JPEG or WebP logo file shown above each page (at most 256 KiB).
    pub logo_file: Option<PathBuf>,
    /// Buttons and links, `#rrggbb` (default `#2454d6`); white text on it must have a contrast
    /// of at least 4.5:1.
    pub accent_color: String,
    /// A directory whose `.html` files replace the embedded templates of the same name.
    pub template_dir: Option<PathBuf>,
}

impl Default for PagesSettings {
    fn default() -> Self {
        PagesSettings {
            product_name: "adieu".into(),
            logo_file: None,
            accent_color: "#2454d6".into(),
            template_dir: None,
        }
    }
}

/// Relative luminance of an `#rrggbb` colour (WCAG 2.2), or `None` if it is not one.
fn luminance(hex: &str) -> Option<f64> {
    let h = hex.strip_prefix('#').filter(|h| h.len() == 6 && h.chars().all(|c| c.is_ascii_hexdigit()))?;
    let channel = |i: usize| {
        let c = f64::from(u8::from_str_radix(&h[i..i + 2], 16).ok()?) / 255.0;
        Some(if c <= 0.040_45 { c / 12.92 } else { ((c + 0.055) / 1.055).powf(2.4) })
    };
    Some(0.2126 * channel(0)? + 0.7152 * channel(2)? + 0.0722 * channel(4)?)
}

/// The contrast of white text on `hex`.
pub fn contrast_with_white(hex: &str) -> Option<f64> {
    luminance(hex).map(|l| 1.05 / (l + 0.05))
}

/// The logo's bytes and content type, by its file name.
fn read_logo(path: &std::path::Path) -> anyhow::Result<(Vec<u8>, &'static str)> {
    let kind = match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("png") => "image/png",
        Some("svg") => "image/svg+xml",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("webp") => "image/webp",
        _ => anyhow::bail!("pages.logo_file {}: use a .png, .svg, .jpg or .webp file", path.display()),
    };
    let len = std::fs::metadata(path).map_err(|e| anyhow::anyhow!("pages.logo_file {}: {e}", path.display()))?.len();
    anyhow::ensure!(
        len <= MAX_LOGO_BYTES,
        "pages.logo_file {} is {len} bytes; at most {MAX_LOGO_BYTES}",
        path.display()
    );
    Ok((std::fs::read(path)?, kind))
}

/// The templates with the branding, for one provider.
#[derive(Debug)]
pub struct Pages {
    env: Environment<'static>,
    brand: Value,
    logo: Option<(Vec<u8>, &'static str)>,
}

impl Pages {
    /// Checks `[pages]`, reads the logo and the template overrides, and parses every template.
    pub fn new(s: &PagesSettings, base_path: &str) -> anyhow::Result<Pages> {
        let name = s.product_name.trim();
        anyhow::ensure!(
            (1..=60).contains(&name.chars().count()) && !name.chars().any(char::is_control),
            "pages.product_name must be 1 to 60 characters without control characters"
        );
        let contrast = contrast_with_white(&s.accent_color)
            .ok_or_else(|| anyhow::anyhow!("pages.accent_color must be #rrggbb, not {:?}", s.accent_color))?;
        anyhow::ensure!(
            contrast >= 4.5,
            "pages.accent_color {} gives white text a contrast of {contrast:.2}:1; WCAG AA needs 4.5:1 (choose a darker colour)",
            s.accent_color
        );
        let logo = s.logo_file.as_deref().map(read_logo).transpose()?;
        let mut env = Environment::new();
        env.add_filter("t", crate::i18n::filter);
        for (file, src) in TEMPLATES {
            let custom = match &s.template_dir {
                Some(dir) if dir.join(file).is_file() => Some(std::fs::read_to_string(dir.join(file))?),
                _ => None,
            };
            let src = custom.unwrap_or_else(|| src.to_owned());
            env.add_template_owned(file, src)
                .map_err(|e| anyhow::anyhow!("template {file} (pages.template_dir) does not parse: {e}"))?;
        }
        let brand = context! {
            name => name,
            accent => s.accent_color.to_ascii_lowercase(),
            logo => logo.as_ref().map(|_| format!("{base_path}/branding/logo")),
        };
        Ok(Pages { env, brand, logo })
    }

    /// Renders a template with `ctx`, `brand` and `lang` (the request's language, whose catalogue
    /// the `t` filter reads: [`crate::i18n`]). A rendering failure is a bug (or a broken
    /// override): it is logged and a plain page shown.
    pub fn render(&self, name: &str, ctx: Value) -> Html<String> {
        let ctx = context! { brand => self.brand.clone(), lang => crate::i18n::current().tag(), ..ctx };
        match self.env.get_template(name).and_then(|t| t.render(ctx)) {
            Ok(s) => Html(s),
            Err(e) => {
                tracing::error!(template = name, error = %e, "template rendering failed");
                Html("<!doctype html><title>Error</title><p>Something went wrong.</p>".to_owned())
            }
        }
    }
}

/// The embedded pages with the default branding (for places without a provider's state).
pub fn default_pages() -> &'static Pages {
    static DEFAULT: std::sync::LazyLock<Pages> =
        std::sync::LazyLock::new(|| Pages::new(&PagesSettings::default(), "").expect("the embedded templates parse"));
    &DEFAULT
}

/// Renders with the default branding.
pub fn render(name: &str, ctx: Value) -> Html<String> {
    default_pages().render(name, ctx)
}

/// Routes of this module: the logo.
pub fn routes() -> Router<AppState> {
    Router::new().route("/branding/logo", get(logo))
}

async fn logo(State(state): State<AppState>) -> Response {
    match &state.pages.logo {
        Some((bytes, kind)) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(kind)),
                (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600")),
            ],
            bytes.clone(),
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_renders_and_escapes_markup() {
        let html = render(
            "login.html",
            context! { error => "<script>x</script>", csrf => "c", action => "/login", username => "\"><b>" },
        );
        assert!(html.0.contains("&lt;script&gt;"));
        assert!(!html.0.contains("<script>x"));
        assert!(!html.0.contains("\"><b>"));
        for t in ["message.html", "logout_confirm.html", "logged_out.html", "home.html", "account.html"] {
            assert!(render(t, context! { title => "t", message => "m" }).0.contains("</html>"), "{t}");
        }
    }

    #[test]
    fn an_accent_colour_must_keep_white_text_readable() {
        assert!(contrast_with_white("#2454d6").unwrap() >= 4.5);
        let pale = PagesSettings { accent_color: "#7fb2ff".into(), ..PagesSettings::default() };
        assert!(Pages::new(&pale, "").unwrap_err().to_string().contains("4.5:1"));
        let bad = PagesSettings { accent_color: "blue".into(), ..PagesSettings::default() };
        assert!(Pages::new(&bad, "").unwrap_err().to_string().contains("#rrggbb"));
    }

    #[test]
    fn a_product_name_and_overrides_brand_the_pages() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("message.html"), "{{ brand.name }}: {{ message }}").unwrap();
        let s = PagesSettings {
            product_name: "Example ID".into(),
            template_dir: Some(dir.path().into()),
            ..PagesSettings::default()
        };
        let pages = Pages::new(&s, "").unwrap();
        assert_eq!(pages.render("message.html", context! { message => "<hi>" }).0, "Example ID: &lt;hi&gt;");
        assert!(pages.render("home.html", context! {}).0.contains("Example ID"));
        std::fs::write(dir.path().join("home.html"), "{% if %}").unwrap();
        assert!(Pages::new(&s, "").unwrap_err().to_string().contains("home.html"));
        let empty = PagesSettings { product_name: " ".into(), ..PagesSettings::default() };
        assert!(Pages::new(&empty, "").is_err());
    }

    #[test]
    fn a_logo_must_be_a_small_image_file() {
        let dir = tempfile::tempdir().unwrap();
        let (png, txt, big) = (dir.path().join("logo.png"), dir.path().join("logo.txt"), dir.path().join("big.png"));
        std::fs::write(&png, b"\x89PNG\r\n").unwrap();
        std::fs::write(&txt, b"x").unwrap();
        std::fs::write(&big, vec![0u8; 300 * 1024]).unwrap();
        let with = |p: &std::path::Path| PagesSettings { logo_file: Some(p.into()), ..PagesSettings::default() };
        let pages = Pages::new(&with(&png), "/id").unwrap();
        assert!(pages.render("home.html", context! {}).0.contains("src=\"&#x2f;id&#x2f;branding&#x2f;logo\""));
        assert!(Pages::new(&with(&txt), "").is_err());
        assert!(Pages::new(&with(&big), "").unwrap_err().to_string().contains("at most"));
    }
}

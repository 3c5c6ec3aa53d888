//! HTML pages, rendered with minijinja from templates embedded in the binary. Autoescaping is on
//! for every `.html` template, so user-supplied values (usernames, client names) cannot inject markup.

use axum::response::Html;
use minijinja::Environment;
use std::sync::LazyLock;

static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    for (name, src) in [
        ("base.html", include_str!("../templates/base.html")),
        ("login.html", include_str!("../templates/login.html")),
        ("message.html", include_str!("../templates/message.html")),
        ("logout_confirm.html", include_str!("../templates/logout_confirm.html")),
        ("logged_out.html", include_str!("../templates/logged_out.html")),
        ("home.html", include_str!("../templates/home.html")),
        ("account.html", include_str!("../templates/account.html")),
    ] {
        // Invariant: the embedded templates are checked by the test below.
        env.add_template(name, src).expect("embedded template parses");
    }
    env
});

/// Renders an embedded template. A rendering failure is a bug; it is logged and a plain page shown.
pub fn render(name: &str, ctx: minijinja::Value) -> Html<String> {
    match ENV.get_template(name).and_then(|t| t.render(ctx)) {
        Ok(s) => Html(s),
        Err(e) => {
            tracing::error!(template = name, error = %e, "template rendering failed");
            Html("<!doctype html><title>Error</title><p>Something went wrong.</p>".to_owned())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use minijinja::context;

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
}

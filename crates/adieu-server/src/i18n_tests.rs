//! The catalogues: complete, with the same placeholders and markup as their message ids.
use super::*;

/// Every message id the pages use: the templates' `"…" | t` and the code's `msg("…")`,
/// `tr("…")` and `tr_with("…"`.
fn message_ids() -> Vec<String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut ids = Vec::new();
    let mut files: Vec<std::path::PathBuf> = Vec::new();
    for dir in ["templates", "src", "src/upstream", "src/api"] {
        for e in std::fs::read_dir(root.join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "html" || x == "rs")
                && !p.ends_with("i18n_tests.rs")
                && !p.ends_with("i18n.rs")
            {
                files.push(p);
            }
        }
    }
    for p in files {
        let src = std::fs::read_to_string(&p).unwrap();
        let html = p.extension().is_some_and(|x| x == "html");
        let markers: &[&str] = if html { &["{{"] } else { &[" msg(", "(msg(", " tr(", "(tr(", "::tr(", "tr_with("] };
        for m in markers {
            for (at, _) in src.match_indices(m) {
                // The id's opening quote, after any spaces and line breaks (as rustfmt leaves them).
                let Some(rest) = src[at + m.len()..].trim_start().strip_prefix('"') else { continue };
                let mut id = String::new();
                let mut chars = rest.chars();
                let mut used = 0;
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => match chars.next() {
                            Some('\n') => {
                                // A Rust string continued on the next line: leading spaces go.
                                let tail: String = chars.clone().collect();
                                let skip = tail.len() - tail.trim_start().len();
                                for _ in 0..skip {
                                    chars.next();
                                }
                            }
                            Some(n) => id.push(n),
                            None => break,
                        },
                        '"' => break,
                        c => id.push(c),
                    }
                    used = rest.len() - chars.as_str().len();
                }
                if html && !rest[used..].trim_start_matches('"').trim_start().starts_with("| t") {
                    continue;
                }
                ids.push(id);
            }
        }
    }
    ids.sort();
    ids.dedup();
    ids
}

fn placeholders(s: &str) -> Vec<String> {
    let mut v: Vec<String> =
        s.split('{').skip(1).filter_map(|p| p.split_once('}').map(|(name, _)| name.to_owned())).collect();
    v.sort();
    v
}

fn tags(s: &str) -> Vec<String> {
    let mut v: Vec<String> =
        s.split('<').skip(1).filter_map(|p| p.split_once('>').map(|(t, _)| t.to_owned())).collect();
    v.sort();
    v
}

#[test]
fn every_message_id_is_translated_into_every_language() {
    let ids = message_ids();
    assert!(ids.len() > 100, "the scan found only {} ids", ids.len());
    for l in [Locale::De, Locale::Fr, Locale::Es] {
        let cat = l.catalogue().unwrap();
        let missing: Vec<&String> = ids.iter().filter(|id| !cat.contains_key(*id)).collect();
        assert!(
            missing.is_empty(),
            "{} lacks {} ids:\n{}",
            l.tag(),
            missing.len(),
            missing.iter().map(|m| format!("{m:?}")).collect::<Vec<_>>().join("\n")
        );
        let unused: Vec<&String> = cat.keys().filter(|k| !ids.contains(k)).collect();
        assert!(unused.is_empty(), "{} has ids no page uses: {unused:?}", l.tag());
    }
}

#[test]
fn translations_keep_the_placeholders_markup_and_quotes_of_their_ids() {
    for l in [Locale::De, Locale::Fr, Locale::Es] {
        for (id, t) in l.catalogue().unwrap() {
            assert_eq!(placeholders(id), placeholders(t), "{}: {id:?}", l.tag());
            assert_eq!(tags(id), tags(t), "{}: {id:?}", l.tag());
            assert_eq!(id.matches('"').count(), t.matches('"').count(), "{}: {id:?}", l.tag());
            assert!(!t.trim().is_empty() && t.trim() == t, "{}: {id:?}", l.tag());
        }
    }
}

#[test]
fn the_catalogues_parse() {
    for (l, src) in [
        ("de", include_str!("../locales/de.json")),
        ("fr", include_str!("../locales/fr.json")),
        ("es", include_str!("../locales/es.json")),
    ] {
        serde_json::from_str::<HashMap<String, String>>(src).unwrap_or_else(|e| panic!("{l}.json: {e}"));
    }
}

#[test]
fn accept_language_is_ranked_by_quality_then_order() {
    assert_eq!(from_accept_language("de-CH,de;q=0.9,en;q=0.8"), Some(Locale::De));
    assert_eq!(from_accept_language("ja, fr;q=0.5, es;q=0.7"), Some(Locale::Es));
    assert_eq!(from_accept_language("fr;q=0, it"), None);
    assert_eq!(from_accept_language("es;q=abc, FR"), Some(Locale::Fr));
    assert_eq!(from_accept_language(""), None);
}

#[test]
fn ui_locales_takes_the_first_supported_tag() {
    assert_eq!(from_ui_locales("ja fr-CA de"), Some(Locale::Fr));
    assert_eq!(from_ui_locales("ja"), None);
}

#[tokio::test]
async fn the_filter_escapes_values_and_keeps_the_catalogues_markup() {
    let env = {
        let mut e = minijinja::Environment::new();
        e.add_filter("t", filter);
        e.add_template("x", "{{ \"You are signed in as <strong>{name}</strong>.\" | t(name=n) }}").unwrap();
        e
    };
    let render = || env.get_template("x").unwrap().render(minijinja::context! { n => "<b>x</b>" }).unwrap();
    assert_eq!(render(), "You are signed in as <strong>&lt;b&gt;x&lt;&#x2f;b&gt;</strong>.");
    let de = with_locale(Locale::De, async { render() }).await;
    assert!(de.contains("<strong>&lt;b&gt;x&lt;&#x2f;b&gt;</strong>") && !de.starts_with("You"), "{de}");
}

#[test]
fn a_value_that_is_no_message_id_is_escaped_whole() {
    let mut env = minijinja::Environment::new();
    env.add_filter("t", filter);
    env.add_template("x", "{{ v | t }}").unwrap();
    let out = env.get_template("x").unwrap().render(minijinja::context! { v => "<script>x</script>" }).unwrap();
    assert_eq!(out, "&lt;script&gt;x&lt;&#x2f;script&gt;");
}

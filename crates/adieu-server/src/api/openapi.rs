//! `/api/v1/openapi.json`: the OpenAPI 3.1 document of the management API, a checked-in file
//! (`openapi.json` beside this module) served as it is. It needs no token: it describes the API,
//! it holds no data. The test below keeps it in step with the routes.

use crate::AppState;
use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// The document.
pub const DOCUMENT: &str = include_str!("openapi.json");

/// Routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/openapi.json", get(document))
}

async fn document() -> Response {
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], DOCUMENT).into_response()
}

#[cfg(test)]
mod tests {
    use super::DOCUMENT;
    use std::collections::BTreeSet;

    const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

    /// The `(path, method)` pairs of every `.route("/api/v1/…", get(…).post(…))` call in the API's
    /// source files: the routes of `api::routes()`.
    fn routes_in_source() -> BTreeSet<(String, String)> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/api");
        let mut found = BTreeSet::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let src = std::fs::read_to_string(&path).unwrap();
            for (i, _) in src.match_indices(".route(\"") {
                let rest = &src[i + ".route(\"".len()..];
                let route = &rest[..rest.find('"').unwrap()];
                if !route.is_ascii() {
                    continue; // the `"/api/v1/…"` in this module's doc comment
                }
                // The method router: up to the parenthesis that closes `.route(`.
                let mut depth = 1;
                let end = rest
                    .char_indices()
                    .find(|&(_, c)| {
                        match c {
                            '(' => depth += 1,
                            ')' => depth -= 1,
                            _ => {}
                        }
                        depth == 0
                    })
                    .unwrap()
                    .0;
                let methods = &rest[route.len() + 1..end];
                for m in METHODS {
                    let call = format!("{m}(");
                    let before_ok = |j: usize| {
                        j == 0
                            || !(methods.as_bytes()[j - 1].is_ascii_alphanumeric() || methods.as_bytes()[j - 1] == b'_')
                    };
                    if methods.match_indices(&call).any(|(j, _)| before_ok(j)) {
                        found.insert((route.to_owned(), m.to_owned()));
                    }
                }
            }
        }
        found
    }

    fn routes_in_document() -> BTreeSet<(String, String)> {
        let doc: serde_json::Value = serde_json::from_str(DOCUMENT).unwrap();
        let mut found = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for m in METHODS {
                if item.get(m).is_some() {
                    found.insert((path.clone(), m.to_owned()));
                }
            }
        }
        found
    }

    #[test]
    fn every_api_route_is_in_the_openapi_document_and_nothing_else() {
        let (source, document) = (routes_in_source(), routes_in_document());
        assert!(source.len() >= 17, "the scan found too few routes: {source:?}");
        let missing: Vec<_> = source.difference(&document).collect();
        let extra: Vec<_> = document.difference(&source).collect();
        assert!(missing.is_empty(), "routes missing from openapi.json: {missing:?}");
        assert!(extra.is_empty(), "openapi.json describes routes that do not exist: {extra:?}");
    }

    #[test]
    fn the_document_is_openapi_3_1_and_every_reference_resolves() {
        let doc: serde_json::Value = serde_json::from_str(DOCUMENT).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let text = DOCUMENT;
        for (i, _) in text.match_indices("\"$ref\": \"#/") {
            let start = i + "\"$ref\": \"#".len();
            let pointer = &text[start..start + text[start..].find('"').unwrap()];
            assert!(doc.pointer(pointer).is_some(), "unresolved $ref {pointer}");
        }
    }
}

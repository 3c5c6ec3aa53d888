//! Every requirement ID the code and the documents cite (`BC-RP-07`, `RPI-05`, …) is listed in
//! `docs/requirements.md`, so each one resolves.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if p.is_dir() && !matches!(name.as_str(), "target" | "node_modules" | ".git") {
            files(&p, out);
        } else if name.ends_with(".rs") || name.ends_with(".md") {
            out.push(p);
        }
    }
}

/// The IDs in `text`: `BC-` + capitals + `-` + digits, or `RPI-` + digits.
fn ids(text: &str) -> BTreeSet<String> {
    let b = text.as_bytes();
    let mut found = BTreeSet::new();
    for start in 0..b.len() {
        if start > 0 && (b[start - 1].is_ascii_alphanumeric() || b[start - 1] == b'-') {
            continue;
        }
        let rest = &b[start..];
        let (mut i, needs_word) = if rest.starts_with(b"BC-") {
            (3, true)
        } else if rest.starts_with(b"RPI-") {
            (4, false)
        } else {
            continue;
        };
        if needs_word {
            let word = rest[i..].iter().take_while(|c| c.is_ascii_uppercase()).count();
            if word == 0 || rest.get(i + word) != Some(&b'-') {
                continue;
            }
            i += word + 1;
        }
        let digits = rest[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits > 0 {
            found.insert(String::from_utf8_lossy(&rest[..i + digits]).into_owned());
        }
    }
    found
}

#[test]
fn every_cited_requirement_id_is_listed_in_docs_requirements_md() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let list = std::fs::read_to_string(root.join("docs/requirements.md")).unwrap();
    let listed: BTreeSet<String> = list
        .lines()
        .filter_map(|l| l.strip_prefix("| "))
        .flat_map(|l| ids(l.split(' ').next().unwrap_or("")))
        .collect();
    let mut paths = Vec::new();
    files(&root.join("crates"), &mut paths);
    files(&root.join("docs"), &mut paths);
    paths.push(root.join("README.md"));
    let mut missing = BTreeSet::new();
    for p in paths {
        for id in ids(&std::fs::read_to_string(&p).unwrap_or_default()) {
            if !listed.contains(&id) {
                missing.insert(format!("{id} ({})", p.display()));
            }
        }
    }
    assert!(listed.len() > 50, "the list parsed to only {} ids", listed.len());
    assert!(missing.is_empty(), "cited but not in docs/requirements.md: {missing:?}");
}

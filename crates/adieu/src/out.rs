//! What the commands print. Every list is a table with a header line (tab-separated, `-` for
//! nothing) or, with `--json`, a JSON array of the same fields; every show is `field: value` lines
//! or one JSON object. Times are RFC 3339 in UTC. A closed pipe (`adieu logs | head -1`) ends the
//! command quietly with success, as for other Unix tools.

use serde_json::Value;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

static JSON: AtomicBool = AtomicBool::new(false);

/// Whether `--json` was given.
pub fn set_json(on: bool) {
    JSON.store(on, Ordering::Relaxed);
}

/// Whether output is JSON.
pub fn json() -> bool {
    JSON.load(Ordering::Relaxed)
}

/// Writes one line to standard output; a closed pipe is an error the caller passes up (see
/// [`is_closed_pipe`]).
pub fn line(s: impl std::fmt::Display) -> io::Result<()> {
    // Standard output is line-buffered: the newline writes the line out (and reports a closed pipe).
    writeln!(io::stdout().lock(), "{s}")
}

/// Prints a formatted line to standard output and returns from the function on error (a closed
/// pipe included), instead of panicking as `println!` does.
macro_rules! say {
    ($($t:tt)*) => {
        $crate::out::line(format_args!($($t)*))?
    };
}
pub(crate) use say;

/// Whether `e` (or what caused it) is a write to a closed pipe.
pub fn is_closed_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<io::Error>().is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe))
}

/// One row or record: field names with their values, in order.
pub type Fields = Vec<(&'static str, Value)>;

/// A time as the commands show it.
pub fn time(t: adieu_core::UnixMillis) -> Value {
    Value::String(t.to_rfc3339())
}

/// A time or nothing.
pub fn opt_time(t: Option<adieu_core::UnixMillis>) -> Value {
    t.map_or(Value::Null, time)
}

/// How a value reads in a table cell or a `field: value` line.
fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) if s.is_empty() => "-".into(),
        Value::String(s) => s.replace(['\t', '\n'], " "),
        Value::Array(items) if items.is_empty() => "-".into(),
        Value::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join(" "),
        other => other.to_string(),
    }
}

fn object(fields: &Fields) -> Value {
    Value::Object(fields.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect())
}

/// Prints a list: a header and one line per row, or a JSON array. `header` names the fields
/// when there is no row.
pub fn list(header: &[&'static str], rows: &[Fields]) -> io::Result<()> {
    if json() {
        return line(Value::Array(rows.iter().map(object).collect()));
    }
    line(header.join("\t"))?;
    for r in rows {
        line(r.iter().map(|(_, v)| cell(v)).collect::<Vec<_>>().join("\t"))?;
    }
    Ok(())
}

/// Prints one record: `field: value` lines, or a JSON object.
pub fn record(fields: &Fields) -> io::Result<()> {
    if json() {
        return line(serde_json::to_string_pretty(&object(fields)).unwrap_or_default());
    }
    for (k, v) in fields {
        line(format_args!("{k}: {}", cell(v)))?;
    }
    Ok(())
}

/// Prints what a change did: a sentence, or with `--json` the record of it.
pub fn done(sentence: impl std::fmt::Display, fields: &Fields) -> io::Result<()> {
    if json() { line(object(fields)) } else { line(sentence) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cells_show_nothing_as_a_dash_and_keep_one_line() {
        assert_eq!(cell(&Value::Null), "-");
        assert_eq!(cell(&json!("")), "-");
        assert_eq!(cell(&json!([])), "-");
        assert_eq!(cell(&json!(["a", "b"])), "a b");
        assert_eq!(cell(&json!("two\tcols\nlines")), "two cols lines");
        assert_eq!(cell(&json!(3)), "3");
        assert_eq!(cell(&json!(true)), "true");
    }

    #[test]
    fn a_closed_pipe_is_recognised_through_context() {
        let e = anyhow::Error::new(io::Error::from(io::ErrorKind::BrokenPipe)).context("printing");
        assert!(is_closed_pipe(&e));
        assert!(!is_closed_pipe(&anyhow::anyhow!("no such user")));
    }
}

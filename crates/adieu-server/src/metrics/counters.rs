//! Labelled counters and a latency histogram, kept in memory, rendered in the Prometheus text
//! format. Label values come from a fixed set (routes, outcomes, grant types), so the maps stay
//! small whatever clients send.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency buckets, seconds.
pub(crate) const BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// Escapes a label value.
pub(crate) fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// `name="value",…` for a list of labels.
fn labels(names: &[&str], values: &[String]) -> String {
    names.iter().zip(values).map(|(n, v)| format!("{n}=\"{}\"", escape(v))).collect::<Vec<_>>().join(",")
}

/// A counter with labels.
#[derive(Debug)]
pub struct Counter {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    values: Mutex<BTreeMap<Vec<String>, u64>>,
}

impl Counter {
    /// A counter named `name` with these label names.
    pub const fn new(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Self {
        Counter { name, help, labels, values: Mutex::new(BTreeMap::new()) }
    }

    /// Adds one for these label values (in the order of the names).
    pub fn inc(&self, values: &[&str]) {
        let key = values.iter().map(|v| (*v).to_owned()).collect();
        *self.values.lock().unwrap_or_else(|p| p.into_inner()).entry(key).or_default() += 1;
    }

    /// The count for these label values.
    pub fn get(&self, values: &[&str]) -> u64 {
        let key: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
        self.values.lock().unwrap_or_else(|p| p.into_inner()).get(&key).copied().unwrap_or(0)
    }

    /// Appends the counter to `out`.
    pub fn render(&self, out: &mut String) {
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} counter", self.name);
        for (values, n) in self.values.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = writeln!(out, "{}{{{}}} {n}", self.name, labels(self.labels, values));
        }
    }
}

#[derive(Debug, Default, Clone)]
struct Series {
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// A latency histogram with labels.
#[derive(Debug)]
pub struct Histogram {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    series: Mutex<BTreeMap<Vec<String>, Series>>,
}

impl Histogram {
    /// A histogram named `name` with these label names.
    pub const fn new(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Self {
        Histogram { name, help, labels, series: Mutex::new(BTreeMap::new()) }
    }

    /// Records one observation for these label values.
    pub fn observe(&self, values: &[&str], d: Duration) {
        let key = values.iter().map(|v| (*v).to_owned()).collect();
        let secs = d.as_secs_f64();
        let mut all = self.series.lock().unwrap_or_else(|p| p.into_inner());
        let s = all.entry(key).or_default();
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                s.buckets[i] += 1;
            }
        }
        s.count += 1;
        s.sum += secs;
    }

    /// Appends the histogram to `out`.
    pub fn render(&self, out: &mut String) {
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} histogram", self.name);
        for (values, s) in self.series.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let l = labels(self.labels, values);
            let sep = if l.is_empty() { "" } else { "," };
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(out, "{}_bucket{{{l}{sep}le=\"{b}\"}} {}", self.name, s.buckets[i]);
            }
            let _ = writeln!(out, "{}_bucket{{{l}{sep}le=\"+Inf\"}} {}", self.name, s.count);
            let _ = writeln!(out, "{}_sum{{{l}}} {}", self.name, s.sum);
            let _ = writeln!(out, "{}_count{{{l}}} {}", self.name, s.count);
        }
    }
}

/// Appends a gauge with one sample.
pub fn gauge(out: &mut String, name: &str, help: &str, sample: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
    let _ = writeln!(out, "{name}{sample}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_one_line_per_label_set() {
        let c = Counter::new("x_total", "X.", &["a", "b"]);
        c.inc(&["1", "q\"uote"]);
        c.inc(&["1", "q\"uote"]);
        c.inc(&["2", "z"]);
        let mut out = String::new();
        c.render(&mut out);
        assert!(out.contains("# TYPE x_total counter"));
        assert!(out.contains("x_total{a=\"1\",b=\"q\\\"uote\"} 2"), "{out}");
        assert!(out.contains("x_total{a=\"2\",b=\"z\"} 1"));
        assert_eq!(c.get(&["2", "z"]), 1);
    }

    #[test]
    fn histograms_count_each_observation_in_every_bucket_above_it() {
        let h = Histogram::new("d_seconds", "D.", &["route"]);
        h.observe(&["/token"], Duration::from_millis(3));
        h.observe(&["/token"], Duration::from_secs(9));
        let mut out = String::new();
        h.render(&mut out);
        assert!(out.contains("d_seconds_bucket{route=\"/token\",le=\"0.005\"} 1"), "{out}");
        assert!(out.contains("d_seconds_bucket{route=\"/token\",le=\"5\"} 1"));
        assert!(out.contains("d_seconds_bucket{route=\"/token\",le=\"+Inf\"} 2"));
        assert!(out.contains("d_seconds_count{route=\"/token\"} 2"));
    }
}

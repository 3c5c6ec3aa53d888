//! Delivery metrics in the Prometheus text format: deliveries by outcome and client, an attempt
//! latency histogram; queue depth and the age of the oldest unfinished (pending or leased)
//! delivery are read from the store at scrape time.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

const BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

#[derive(Debug, Default)]
struct Inner {
    outcomes: BTreeMap<(String, String), u64>,
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
    handed_over: u64,
}

/// Counters kept in memory by this process.
#[derive(Debug, Default)]
pub struct DeliveryMetrics {
    inner: Mutex<Inner>,
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

impl DeliveryMetrics {
    /// Counts an attempt's outcome (`delivered`, `rejected`, `retry`, `dead`) for a client, and its latency.
    pub fn attempt(&self, outcome: &str, client: &str, latency: Duration) {
        let mut m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        *m.outcomes.entry((outcome.to_owned(), client.to_owned())).or_default() += 1;
        let secs = latency.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                m.buckets[i] += 1;
            }
        }
        m.count += 1;
        m.sum += secs;
    }

    /// Counts deliveries a logout handed straight to this worker, without a claim.
    pub fn handed_over(&self, n: usize) {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).handed_over += n as u64;
    }

    /// Renders the metrics with the queue gauges.
    pub fn render(&self, queue_depth: u64, oldest_pending_age: Option<Duration>) -> String {
        let m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::with_capacity(2048);
        let _ = writeln!(
            out,
            "# HELP adieu_delivery_attempts_total Back-channel logout delivery attempts by outcome and client."
        );
        let _ = writeln!(out, "# TYPE adieu_delivery_attempts_total counter");
        for ((outcome, client), n) in &m.outcomes {
            let _ = writeln!(
                out,
                "adieu_delivery_attempts_total{{outcome=\"{}\",client=\"{}\"}} {n}",
                escape(outcome),
                escape(client)
            );
        }
        let _ = writeln!(
            out,
            "# HELP adieu_delivery_attempt_duration_seconds Time from sending a logout token to the answer."
        );
        let _ = writeln!(out, "# TYPE adieu_delivery_attempt_duration_seconds histogram");
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(out, "adieu_delivery_attempt_duration_seconds_bucket{{le=\"{b}\"}} {}", m.buckets[i]);
        }
        let _ = writeln!(out, "adieu_delivery_attempt_duration_seconds_bucket{{le=\"+Inf\"}} {}", m.count);
        let _ = writeln!(out, "adieu_delivery_attempt_duration_seconds_sum {}", m.sum);
        let _ = writeln!(out, "adieu_delivery_attempt_duration_seconds_count {}", m.count);
        let _ = writeln!(
            out,
            "# HELP adieu_delivery_handed_over_total Deliveries sent straight after the logout that wrote them, without a claim."
        );
        let _ = writeln!(out, "# TYPE adieu_delivery_handed_over_total counter");
        let _ = writeln!(out, "adieu_delivery_handed_over_total {}", m.handed_over);
        let _ = writeln!(out, "# HELP adieu_delivery_queue_depth Deliveries pending or in flight.");
        let _ = writeln!(out, "# TYPE adieu_delivery_queue_depth gauge");
        let _ = writeln!(out, "adieu_delivery_queue_depth {queue_depth}");
        let _ = writeln!(
            out,
            "# HELP adieu_delivery_oldest_pending_age_seconds Age of the oldest delivery not yet finished."
        );
        let _ = writeln!(out, "# TYPE adieu_delivery_oldest_pending_age_seconds gauge");
        let _ = writeln!(
            out,
            "adieu_delivery_oldest_pending_age_seconds {}",
            oldest_pending_age.map_or(0.0, |d| d.as_secs_f64())
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histogram_and_gauges() {
        let m = DeliveryMetrics::default();
        m.attempt("delivered", "app-a", Duration::from_millis(3));
        m.attempt("retry", "app\"b", Duration::from_secs(7));
        let text = m.render(4, Some(Duration::from_secs(2)));
        assert!(text.contains("adieu_delivery_attempts_total{outcome=\"delivered\",client=\"app-a\"} 1"));
        assert!(text.contains("client=\"app\\\"b\""));
        assert!(text.contains("adieu_delivery_attempt_duration_seconds_bucket{le=\"0.005\"} 1"));
        assert!(text.contains("adieu_delivery_attempt_duration_seconds_bucket{le=\"+Inf\"} 2"));
        assert!(text.contains("adieu_delivery_queue_depth 4"));
        assert!(text.contains("adieu_delivery_oldest_pending_age_seconds 2"));
    }
}

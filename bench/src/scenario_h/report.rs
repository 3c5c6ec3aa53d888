//! Scenario h's report: the table of ratios against the targets, a line of details per
//! configuration, and the verdicts for the summary.

use super::{CPU_TARGET, N50_TARGET, RATE_TARGET, Row};
use crate::{Verdict, stats};

/// A ratio, in bold with "FAIL" when it misses its target.
fn ratio(value: f64, pass: bool) -> String {
    if pass { format!("{value:.2}") } else { format!("**{value:.2} FAIL**") }
}

pub(super) fn print_table(rows: &[Row]) {
    println!(
        "| database | alg | receivers | provider deliveries/s | reference deliveries/s | rate ratio (≥ {RATE_TARGET}) \
         | provider CPU µs/delivery | reference CPU µs/delivery | CPU ratio (≤ {CPU_TARGET}) \
         | N=50 provider (median) | N=50 reference (median) | N=50 ratio (≤ {N50_TARGET}) |"
    );
    println!("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let (p, q) = (stats(&r.fan_out.provider), stats(&r.fan_out.reference));
        println!(
            "| {} | {} | {} | {:.0} | {:.0} | {} | {:.0} | {:.0} | {} | {:.2} ms | {:.2} ms | {} |",
            r.backend.label(),
            r.alg,
            r.receiving.label(),
            r.provider.rate(),
            r.reference.rate(),
            ratio(r.rate_ratio(), r.rate_ratio() >= RATE_TARGET),
            r.provider.cpu_us(),
            r.reference.cpu_us(),
            ratio(r.cpu_ratio(), r.cpu_ratio() <= CPU_TARGET),
            p.median,
            q.median,
            ratio(r.n50_ratio(), r.n50_ratio() <= N50_TARGET),
        );
    }
    println!();
}

pub(super) fn print_details(r: &Row) {
    let (p, q, s) = (stats(&r.fan_out.provider), stats(&r.fan_out.reference), stats(&r.fan_out.reference_self));
    let (pm, rm) = (&r.provider, &r.reference);
    println!(
        "- {}, {}, {}: provider {} deliveries in {:.2} s (request → last {:.2} s; per replica {:?}), \
         {} duplicates, {} distinct jti, {} verified samples; PostgreSQL backends {:.0} µs/delivery. \
         Reference {} in {:.2} s (go → last {:.2} s), {} duplicates, {} distinct jti. N=50: provider \
         median {:.2} / max {:.2} ms, reference median {:.2} / max {:.2} ms (its own clock: median {:.2} ms). \
         Seeding {:.1} s.",
        r.backend.label(),
        r.alg,
        r.receiving.label(),
        pm.deliveries,
        pm.spread,
        pm.to_last,
        pm.per_replica,
        pm.duplicates,
        pm.jtis,
        pm.sampled,
        pm.db_us(),
        rm.deliveries,
        rm.spread,
        rm.to_last,
        rm.duplicates,
        rm.jtis,
        p.median,
        p.max,
        q.median,
        q.max,
        s.median,
        r.seed_secs,
    );
}

pub(super) fn verdicts(rows: &[Row]) -> Vec<Verdict> {
    let mut out = Vec::new();
    for r in rows.iter().filter(|r| r.alg == "ES256") {
        let what = |m: &str| format!("(h) {m}, {} ES256, receivers {}", r.backend.label(), r.receiving.label());
        out.push(Verdict {
            what: what("rate provider / reference"),
            target: format!("≥ {RATE_TARGET}"),
            measured: format!("{:.0}/s ÷ {:.0}/s = {:.2}", r.provider.rate(), r.reference.rate(), r.rate_ratio()),
            pass: r.rate_ratio() >= RATE_TARGET,
        });
        out.push(Verdict {
            what: what("CPU per delivery provider / reference"),
            target: format!("≤ {CPU_TARGET}"),
            measured: format!("{:.0} µs ÷ {:.0} µs = {:.2}", r.provider.cpu_us(), r.reference.cpu_us(), r.cpu_ratio()),
            pass: r.cpu_ratio() <= CPU_TARGET,
        });
        out.push(Verdict {
            what: what("N=50 fan-out provider / reference (medians)"),
            target: format!("≤ {N50_TARGET}"),
            measured: format!("{:.2}", r.n50_ratio()),
            pass: r.n50_ratio() <= N50_TARGET,
        });
    }
    out
}

//! The process's own figures, from `/proc/self` (Linux; elsewhere only the start time):
//! CPU seconds, resident memory, open file descriptors and when it started.

use super::counters::gauge;
use adieu_core::Clock;
use std::fmt::Write;
use std::sync::OnceLock;

static START: OnceLock<f64> = OnceLock::new();

/// Notes the start time (called when the state is built).
pub fn started() {
    // The wall clock on purpose: this is when the process started, whatever clock the state uses.
    START.get_or_init(|| adieu_core::SystemClock.now().0 as f64 / 1000.0);
}

/// Clock ticks per second of `/proc/self/stat` times (USER_HZ, 100 on Linux).
const TICKS: f64 = 100.0;

/// utime + stime in seconds, from `/proc/self/stat`.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let (utime, stime) = (f.get(11)?.parse::<f64>().ok()?, f.get(12)?.parse::<f64>().ok()?);
    Some((utime + stime) / TICKS)
}

/// VmRSS in bytes, from `/proc/self/status`.
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

fn open_fds() -> Option<usize> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count())
}

/// Appends the process metrics.
pub fn render(out: &mut String) {
    if let Some(s) = cpu_seconds() {
        let _ = writeln!(out, "# HELP process_cpu_seconds_total User and system CPU time spent, seconds.");
        let _ = writeln!(out, "# TYPE process_cpu_seconds_total counter");
        let _ = writeln!(out, "process_cpu_seconds_total {s}");
    }
    if let Some(b) = resident_bytes() {
        gauge(out, "process_resident_memory_bytes", "Resident memory size, bytes.", &format!(" {b}"));
    }
    if let Some(n) = open_fds() {
        gauge(out, "process_open_fds", "Open file descriptors.", &format!(" {n}"));
    }
    if let Some(t) = START.get() {
        gauge(out, "process_start_time_seconds", "Start time of the process, Unix seconds.", &format!(" {t}"));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(target_os = "linux")]
    fn reads_its_own_figures_on_linux() {
        super::started();
        let mut out = String::new();
        super::render(&mut out);
        for name in [
            "process_cpu_seconds_total ",
            "process_resident_memory_bytes ",
            "process_open_fds ",
            "process_start_time_seconds ",
        ] {
            assert!(out.contains(name), "{name} missing from {out}");
        }
        assert!(super::resident_bytes().is_some_and(|b| b > 1_000_000));
    }
}

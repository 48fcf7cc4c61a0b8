//! Prometheus metrics shared by the master's `/metrics` and the agent's metrics listener,
//! through the `prometheus-client` crate (feature `metrics`).
//!
//! - [`encode`]: a registry in the Prometheus text format 0.0.4 ([`CONTENT_TYPE`]), which
//!   every Prometheus and `promtool check metrics` read. The crate writes OpenMetrics, whose
//!   counter families are named without `_total` and which ends with `# EOF`; [`encode`]
//!   names the family like its sample and drops the OpenMetrics-only lines.
//! - [`register_process`]: CPU time, resident and virtual memory, open and maximum file
//!   descriptors, threads and start time of this process, read from `/proc/self` at each
//!   scrape (the crate has no process collector).

use std::path::Path;

pub use prometheus_client;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

/// The Prometheus text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Every metric of `registry`, in the Prometheus text format.
pub fn encode(registry: &Registry) -> String {
    let mut open = String::new();
    // Writing into a String cannot fail; a metric that fails to encode is left out.
    let _ = prometheus_client::encoding::text::encode_registry(&mut open, registry);
    to_prometheus_text(&open)
}

/// OpenMetrics text → Prometheus text 0.0.4: a counter family's `# HELP`/`# TYPE` take its
/// samples' `_total` name; `# UNIT` and `# EOF` go.
pub fn to_prometheus_text(open: &str) -> String {
    let counters: std::collections::HashSet<&str> = open
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(open.len());
    for line in open.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (p, rest)));
        match meta {
            Some((p, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                if counters.contains(name) && !name.ends_with("_total") {
                    out.push_str(&format!("{p}{name}_total {tail}"));
                } else {
                    out.push_str(line);
                }
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// What `/proc/self` says about this process.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessStats {
    /// User + system CPU time.
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    pub open_fds: u64,
    /// The soft limit on open files (`None`: unlimited or unreadable).
    pub max_fds: Option<u64>,
    pub threads: u64,
    /// Unix time the process started (`None` when `/proc/stat` is hidden, as under
    /// systemd's `ProcSubset=pid`).
    pub start_time_seconds: Option<f64>,
}

/// Clock ticks per second of `/proc/<pid>/stat` (`USER_HZ`, 100 on every Linux ABI).
const USER_HZ: f64 = 100.0;

/// Reads [`ProcessStats`] from a `/proc/<pid>` directory and the `/proc/stat` beside it;
/// `None` when its `stat` cannot be read or parsed.
pub fn process_stats(proc_pid: &Path, proc_stat: &Path) -> Option<ProcessStats> {
    let stat = std::fs::read_to_string(proc_pid.join("stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let after = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // f[0] is field 3 (state): utime is field 14, stime 15, num_threads 20, starttime 22,
    // vsize 23, rss 24 (pages).
    let num = |i: usize| f.get(i - 3).and_then(|v| v.parse::<u64>().ok());
    let (utime, stime) = (num(14)?, num(15)?);
    let status = std::fs::read_to_string(proc_pid.join("status")).unwrap_or_default();
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .map(|k| k * 1024)
    };
    let open_fds = std::fs::read_dir(proc_pid.join("fd"))
        .map(|d| d.count() as u64)
        .unwrap_or(0);
    let max_fds = std::fs::read_to_string(proc_pid.join("limits"))
        .ok()
        .and_then(|l| {
            l.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|v| v.parse::<u64>().ok())
        });
    let boot = std::fs::read_to_string(proc_stat).ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse::<u64>().ok())
    });
    Some(ProcessStats {
        cpu_seconds: (utime + stime) as f64 / USER_HZ,
        resident_bytes: kib("VmRSS:").unwrap_or(0),
        virtual_bytes: num(23).unwrap_or(0),
        open_fds,
        max_fds,
        threads: num(20).unwrap_or(0),
        start_time_seconds: boot
            .zip(num(22))
            .map(|(b, ticks)| b as f64 + ticks as f64 / USER_HZ),
    })
}

/// Registers this process's [`ProcessStats`] as `<prefix>_process_*` (as Prometheus's own
/// `process_*` collector names them).
pub fn register_process(registry: &mut Registry) {
    let Some(s) = process_stats(Path::new("/proc/self"), Path::new("/proc/stat")) else {
        return;
    };
    registry.register(
        "process_cpu_seconds",
        "User and system CPU time spent, in seconds",
        ConstCounter::new(s.cpu_seconds),
    );
    let gauges: [(&str, &str, Option<f64>); 6] = [
        (
            "process_resident_memory_bytes",
            "Resident memory size in bytes",
            Some(s.resident_bytes as f64),
        ),
        (
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes",
            Some(s.virtual_bytes as f64),
        ),
        (
            "process_open_fds",
            "Open file descriptors",
            Some(s.open_fds as f64),
        ),
        (
            "process_max_fds",
            "Most open file descriptors allowed",
            s.max_fds.map(|v| v as f64),
        ),
        ("process_threads", "OS threads", Some(s.threads as f64)),
        (
            "process_start_time_seconds",
            "Start time of the process since the Unix epoch, in seconds",
            s.start_time_seconds,
        ),
    ];
    for (name, help, value) in gauges {
        if let Some(v) = value {
            registry.register(name, help, ConstGauge::new(v));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::gauge::Gauge;

    #[test]
    fn counters_are_named_like_their_samples() {
        let mut r = Registry::with_prefix("decnet");
        let c: Counter = Counter::default();
        c.inc_by(3);
        r.register("enrollments", "Workers enrolled", c);
        let g: Family<Vec<(&'static str, String)>, Gauge> = Family::default();
        g.get_or_create(&vec![("status", "active".to_string())])
            .set(2);
        r.register("hosts", "Hosts by status", g);
        let text = encode(&r);
        assert!(
            text.contains(
                "# HELP decnet_enrollments_total Workers enrolled.\n\
                 # TYPE decnet_enrollments_total counter\n\
                 decnet_enrollments_total 3\n"
            ),
            "{text}"
        );
        assert!(text.contains("# TYPE decnet_hosts gauge\n"), "{text}");
        assert!(
            text.contains("decnet_hosts{status=\"active\"} 2\n"),
            "{text}"
        );
        assert!(!text.contains("# EOF"), "{text}");
    }

    #[test]
    fn this_process_is_read_from_proc() {
        let s = process_stats(Path::new("/proc/self"), Path::new("/proc/stat")).unwrap();
        assert!(
            s.resident_bytes > 0 && s.virtual_bytes >= s.resident_bytes,
            "{s:?}"
        );
        assert!(s.open_fds >= 3 && s.threads >= 1, "{s:?}");
        assert!(s.start_time_seconds.unwrap() > 1.6e9, "{s:?}");
        // A missing /proc/stat only loses the start time.
        let s = process_stats(Path::new("/proc/self"), Path::new("/nonexistent")).unwrap();
        assert!(s.start_time_seconds.is_none());
        assert!(process_stats(Path::new("/nonexistent"), Path::new("/proc/stat")).is_none());
        let mut r = Registry::with_prefix("decnet");
        register_process(&mut r);
        let text = encode(&r);
        for name in [
            "decnet_process_cpu_seconds_total ",
            "decnet_process_resident_memory_bytes ",
            "decnet_process_open_fds ",
        ] {
            assert!(text.contains(name), "{name}\n{text}");
        }
    }
}

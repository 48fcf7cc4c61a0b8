//! Benchmarks live in `benches/`: criterion benchmarks of the pure core (`benches/`) and load
//! generators (`src/bin/`). This library holds what the load generators share.

#![allow(clippy::unwrap_used)] // benchmark set-up aborts on a broken fixture

/// Memory figures of a process from `/proc/<pid>/status`.
pub mod proc_status {
    /// The kB figures of `/proc/<pid>/status` we report, in KiB.
    #[derive(Debug, Clone, Copy, Default)]
    pub struct Mem {
        pub rss: u64,
        pub hwm: u64,
        pub anon: u64,
        pub file: u64,
        pub threads: u64,
    }

    pub fn read_mem(pid: u32) -> Result<Mem, String> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .map_err(|e| format!("/proc/{pid}/status: {e}"))?;
        let mut m = Mem::default();
        for line in text.lines() {
            let Some((key, rest)) = line.split_once(':') else {
                continue;
            };
            let value = rest
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
            match key {
                "VmRSS" => m.rss = value,
                "VmHWM" => m.hwm = value,
                "RssAnon" => m.anon = value,
                "RssFile" => m.file = value,
                "Threads" => m.threads = value,
                _ => {}
            }
        }
        if m.rss == 0 {
            return Err(format!("/proc/{pid}/status has no VmRSS"));
        }
        Ok(m)
    }

    pub fn mib(kib: u64) -> f64 {
        kib as f64 / 1024.0
    }
}

/// Latency summaries.
pub mod latency {
    /// Nearest-rank percentiles of a set of latencies (µs).
    #[derive(Debug, Clone, Copy, Default)]
    pub struct Summary {
        pub n: usize,
        pub mean: f64,
        pub p50: u64,
        pub p90: u64,
        pub p99: u64,
        pub p999: u64,
        pub max: u64,
    }

    pub fn summarize(samples: &[u64]) -> Summary {
        if samples.is_empty() {
            return Summary::default();
        }
        let mut v = samples.to_vec();
        v.sort_unstable();
        let rank = |q: f64| {
            let r = (q * v.len() as f64).ceil() as usize;
            v[r.clamp(1, v.len()) - 1]
        };
        Summary {
            n: v.len(),
            mean: v.iter().sum::<u64>() as f64 / v.len() as f64,
            p50: rank(0.50),
            p90: rank(0.90),
            p99: rank(0.99),
            p999: rank(0.999),
            max: v[v.len() - 1],
        }
    }

    /// Microseconds as milliseconds, two decimals.
    pub fn ms(us: u64) -> String {
        format!("{:.2} ms", us as f64 / 1000.0)
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn nearest_rank() {
            let s = super::summarize(&(1..=100).collect::<Vec<u64>>());
            assert_eq!((s.n, s.p50, s.p90, s.p99, s.max), (100, 50, 90, 99, 100));
            assert_eq!(super::summarize(&[]).n, 0);
        }
    }
}

/// A throwaway CA with a master and a worker certificate, for the agent benchmarks.
pub mod pki {
    use std::sync::Arc;

    use decnet_tls::pki::{Bundle, Ca, IssuedKeyPair, LeafSpec, San};
    use decnet_tls::rustls::ClientConfig;
    use decnet_tls::verify::{client_config, PeerPolicy};

    #[allow(missing_debug_implementations)] // holds private keys
    pub struct BenchPki {
        pub ca: Ca,
        pub master: IssuedKeyPair,
        pub worker: IssuedKeyPair,
    }

    impl BenchPki {
        pub fn new() -> BenchPki {
            let ca = Ca::generate("DECNET bench CA").unwrap();
            let master = ca.issue_keypair(&LeafSpec::master(vec![])).unwrap();
            let worker = ca
                .issue_keypair(&LeafSpec::worker(
                    "bench-worker",
                    vec![San::parse("127.0.0.1")],
                ))
                .unwrap();
            BenchPki { ca, master, worker }
        }

        pub fn bundle(&self, pair: &IssuedKeyPair) -> Bundle {
            Bundle {
                ca_pem: self.ca.cert_pem().to_string(),
                cert_pem: pair.cert_pem.clone(),
                key_pem: pair.key_pem.clone(),
            }
        }

        /// The master's side of the link: its certificate, the agent trusted by CA and the
        /// worker's pinned fingerprint.
        pub fn master_tls(&self) -> Arc<ClientConfig> {
            let policy = PeerPolicy::from_ca_pem(self.ca.cert_pem())
                .unwrap()
                .with_pinned_fingerprint(self.worker.fingerprint.clone());
            client_config(&self.bundle(&self.master), &policy).unwrap()
        }
    }

    impl Default for BenchPki {
        fn default() -> Self {
            Self::new()
        }
    }
}

//! Issue 16 end to end on this kernel, without Docker: per OS family, a decky-side network
//! namespace with the family's sysctls, NFQUEUE rules (with bypass) for the packets the
//! mangler rewrites or looks at, and the mangler + responder over this test's own
//! nfnetlink_queue socket and raw socket; `nmap -O --osscan-guess` from an attacker
//! namespace over a veth pair. Asserts the top guess's OS family and prints every guess.
//!
//! The rules are installed over netlink (`decnet_osfp::nft`), no iptables binary. Needs root
//! and nmap; fails, never skips, when one is missing.

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use decnet_core::registry::OsFamily;
use decnet_net::lab;
use decnet_osfp::nfq::{self, Message, HOOK_LOCAL_IN, NF_ACCEPT, NF_DROP};
use decnet_osfp::packet::Ipv4;
use decnet_osfp::{Mangler, Verdict};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

mod common;
use common::install_rules;

const ATTACKER_NS: &str = "os16atk";
const DECKY_NS: &str = "os16dky";
const QUEUE: u16 = 17;
const OPEN: u16 = 445;
const DECKY_IP: Ipv4Addr = Ipv4Addr::new(10, 16, 16, 2);

struct Cleanup;
impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = lab::del_netns(ATTACKER_NS);
        let _ = lab::del_netns(DECKY_NS);
    }
}

fn run(cmd: &[&str]) -> String {
    let out = Command::new(cmd[0])
        .args(&cmd[1..])
        .output()
        .unwrap_or_else(|e| panic!("run {cmd:?}: {e} (this test needs iproute2 and nmap)"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn setup() -> Cleanup {
    let _ = lab::del_netns(ATTACKER_NS);
    let _ = lab::del_netns(DECKY_NS);
    lab::add_netns(ATTACKER_NS).expect("add netns (run as root)");
    lab::add_netns(DECKY_NS).expect("add netns");
    let c = Cleanup;
    run(&[
        "ip",
        "-n",
        ATTACKER_NS,
        "link",
        "add",
        "os16a",
        "type",
        "veth",
        "peer",
        "name",
        "os16d",
        "netns",
        DECKY_NS,
    ]);
    run(&[
        "ip",
        "-n",
        ATTACKER_NS,
        "addr",
        "add",
        "10.16.16.1/24",
        "dev",
        "os16a",
    ]);
    run(&[
        "ip",
        "-n",
        DECKY_NS,
        "addr",
        "add",
        "10.16.16.2/24",
        "dev",
        "os16d",
    ]);
    for (ns, dev) in [(ATTACKER_NS, "os16a"), (DECKY_NS, "os16d")] {
        run(&["ip", "-n", ns, "link", "set", dev, "up"]);
        run(&["ip", "-n", ns, "link", "set", "lo", "up"]);
    }
    lab::in_netns(DECKY_NS, || install_rules(QUEUE)).expect("in netns");
    c
}

/// Runs the family's decky side in the namespace until `stop`: sysctls, an open port, the
/// queue loop. Returns once the queue is bound.
fn start_decky(family: OsFamily, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let ns = lab::in_netns(DECKY_NS, move || {
        std::thread::spawn(move || {
            for (key, value) in family.sysctls() {
                let path = format!("/proc/sys/{}", key.replace('.', "/"));
                std::fs::write(&path, value).unwrap_or_else(|e| panic!("{path}: {e}"));
            }
            let q =
                Socket::new(Domain::from(16), Type::RAW, Some(Protocol::from(12))).expect("nfq");
            q.set_read_timeout(Some(Duration::from_millis(100)))
                .expect("timeout");
            let mut buf = vec![0u8; 0x1_0000];
            for msg in nfq::bind_messages(QUEUE, 0xffff) {
                q.send(&msg).expect("send config");
                let n = (&q).read(&mut buf).expect("config ack");
                assert!(matches!(
                    nfq::parse(&buf[..n]).first(),
                    Some(Message::Ack { errno: 0, .. })
                ));
            }
            // IPPROTO_RAW: we write the IP header ourselves.
            let raw = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(255))).expect("raw");
            let listener = TcpListener::bind(("0.0.0.0", OPEN)).expect("listen");
            listener.set_nonblocking(true).expect("nonblocking");
            let mut m = Mangler::new(family.stack_profile(), &[OPEN], 0x16);
            ready_tx.send(()).expect("ready");
            while !stop.load(Ordering::Relaxed) {
                while let Ok((s, _)) = listener.accept() {
                    drop(s);
                }
                let Ok(n) = (&q).read(&mut buf) else { continue };
                let msgs: Vec<(u32, u8, Vec<u8>)> = nfq::parse(&buf[..n])
                    .into_iter()
                    .filter_map(|msg| match msg {
                        Message::Packet {
                            id, hook, payload, ..
                        } => Some((id, hook, payload.to_vec())),
                        _ => None,
                    })
                    .collect();
                for (id, hook, pkt) in msgs {
                    let verdict = if hook == HOOK_LOCAL_IN {
                        if let Some(reply) = m.ingress(&pkt) {
                            if let Some(ip) = Ipv4::parse(&reply) {
                                let dst = SocketAddrV4::new(Ipv4Addr::from(ip.dst()), 0);
                                let _ = raw.send_to(&reply, &SockAddr::from(dst));
                            }
                        }
                        nfq::verdict_message(QUEUE, id, NF_ACCEPT, None)
                    } else {
                        match m.egress(&pkt) {
                            Verdict::Accept => nfq::verdict_message(QUEUE, id, NF_ACCEPT, None),
                            Verdict::Replace(b) => {
                                nfq::verdict_message(QUEUE, id, NF_ACCEPT, Some(&b))
                            }
                            Verdict::Drop => nfq::verdict_message(QUEUE, id, NF_DROP, None),
                        }
                    };
                    q.send(&verdict).expect("verdict");
                }
            }
        })
    })
    .expect("in netns");
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("decky side ready");
    ns
}

/// The guesses of an nmap -O run, best first, each an nmap-os-db fingerprint name (accuracy
/// dropped): "OS details" (an exact match; names may hold ", ", so the longest prefix that is
/// a known name is taken first) or "Aggressive OS guesses".
fn guesses(out: &str, db: &str) -> Vec<String> {
    let known = |name: &str| {
        db.lines()
            .any(|l| l.strip_prefix("Fingerprint ") == Some(name))
    };
    for line in out.lines() {
        if let Some(rest) = line.strip_prefix("Aggressive OS guesses: ") {
            return rest
                .split("%), ")
                .map(|g| g.rsplit_once(" (").map_or(g, |(n, _)| n).to_owned())
                .collect();
        }
        if let Some(rest) = line.strip_prefix("OS details: ") {
            let mut cuts: Vec<usize> = rest.match_indices(", ").map(|(i, _)| i).collect();
            cuts.push(rest.len());
            let top = cuts.iter().rev().map(|&i| &rest[..i]).find(|n| known(n));
            return vec![top.unwrap_or(rest).to_owned()];
        }
    }
    Vec::new()
}

/// The OS-family field of the nmap-os-db `Class` lines (`Class vendor | OS family | gen |
/// device type`) that a family's top guess must have one of (embedded: see the test).
fn family_classes(f: OsFamily) -> &'static [&'static str] {
    match f {
        OsFamily::Linux => &["Linux"],
        OsFamily::Windows | OsFamily::WindowsServer => &["Windows"],
        OsFamily::Bsd => &["FreeBSD", "OpenBSD"],
        OsFamily::Cisco => &["IOS"],
        OsFamily::Embedded => &["embedded"],
    }
}

/// The `OS family | device type` of every class of the nmap-os-db entries named `name`.
fn db_classes(db: &str, name: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in db.lines() {
        if let Some(n) = line.strip_prefix("Fingerprint ") {
            inside = n == name;
        } else if inside {
            if let Some(class) = line.strip_prefix("Class ") {
                let fields: Vec<&str> = class.split('|').map(str::trim).collect();
                if let [_, family, _, device, ..] = fields[..] {
                    out.push((family.to_owned(), device.to_owned()));
                }
            }
        }
    }
    out
}

#[test]
fn nmap_os_detection_names_each_familys_os() {
    let db =
        std::fs::read_to_string("/usr/share/nmap/nmap-os-db").expect("nmap-os-db (install nmap)");
    let _cleanup = setup();
    let mut failures = Vec::new();
    for family in OsFamily::ALL {
        let stop = Arc::new(AtomicBool::new(false));
        let decky = start_decky(family, stop.clone());
        let out = run(&[
            "ip",
            "netns",
            "exec",
            ATTACKER_NS,
            "nmap",
            "-n",
            "-Pn",
            "-O",
            "--osscan-guess",
            "--max-os-tries",
            "1",
            "-p",
            &format!("{OPEN},1"),
            &DECKY_IP.to_string(),
        ]);
        stop.store(true, Ordering::Relaxed);
        decky.join().expect("decky side");
        let g = guesses(&out, &db);
        let details: Vec<&str> = out
            .lines()
            .filter(|l| {
                l.starts_with("Running")
                    || l.starts_with("OS ")
                    || l.starts_with("Aggressive")
                    || l.starts_with("Device type")
                    || l.starts_with("No exact")
            })
            .collect();
        println!(
            "== {family}: top guess {:?}\n{}",
            g.first(),
            details.join("\n")
        );
        let top = g.first();
        let classes = top.map(|t| db_classes(&db, t)).unwrap_or_default();
        println!("   top guess's nmap-os-db classes: {classes:?}");
        let ok = classes.iter().any(|(os, device)| {
            family_classes(family).contains(&os.as_str())
                // An embedded persona may also read as an appliance running its own RTOS
                // (MQX, VxWorks…): a class that is not general purpose, not Linux or Windows.
                || (family == OsFamily::Embedded
                    && device != "general purpose"
                    && !["Linux", "Windows"].contains(&os.as_str()))
        });
        if !ok {
            failures.push(format!(
                "{family}: top guess {top:?} of class {classes:?}\n{out}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

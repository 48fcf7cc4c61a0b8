//! Issue 16 against the real kernel: a decky-side namespace whose outgoing SYN-ACKs go through
//! an NFQUEUE (with bypass) to the pure mangler (`decnet-osfp`, Windows 10 profile from the
//! registry) over this test's own nfnetlink_queue socket. A client in the namespace connects,
//! a raw socket sees the SYN-ACK as it arrived, and 4 MiB cross the connection intact.
//!
//! The rules are installed over netlink (`decnet_osfp::nft`), no iptables binary. Needs root;
//! fails, never skips, without.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use decnet_core::registry::OsFamily;
use decnet_net::lab;
use decnet_osfp::nfq::{self, Message, NF_ACCEPT, NF_DROP};
use decnet_osfp::nmap::options_string;
use decnet_osfp::packet::{Ipv4, Tcp, ACK, SYN};
use decnet_osfp::{Mangler, Verdict};
use socket2::{Domain, Protocol, Socket, Type};

mod common;
use common::install_rules;

const NETNS: &str = "os16nfq";
const QUEUE: u16 = 16;
const PORT: u16 = 8445;

struct Cleanup;
impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = lab::del_netns(NETNS);
    }
}

fn run(cmd: &[&str]) {
    let out = Command::new(cmd[0])
        .args(&cmd[1..])
        .output()
        .unwrap_or_else(|e| panic!("run {cmd:?}: {e} (this test needs iproute2)"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn windows_syn_ack_through_a_real_nfqueue_and_data_intact() {
    let _ = lab::del_netns(NETNS);
    lab::add_netns(NETNS).expect("add netns (run as root)");
    let _cleanup = Cleanup;
    run(&["ip", "-n", NETNS, "link", "set", "lo", "up"]);
    let report = lab::in_netns(NETNS, || {
        install_rules(QUEUE);
        // The queue socket: AF_NETLINK (16), NETLINK_NETFILTER (12).
        let q =
            Socket::new(Domain::from(16), Type::RAW, Some(Protocol::from(12))).expect("nfq socket");
        q.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let mut buf = vec![0u8; 0x1_0000];
        for msg in nfq::bind_messages(QUEUE, 0xffff) {
            q.send(&msg).expect("send config");
            let n = (&q).read(&mut buf).expect("config ack");
            match nfq::parse(&buf[..n]).first() {
                Some(Message::Ack { errno: 0, .. }) => {}
                other => panic!("queue config refused: {other:?}"),
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        let mangled = Arc::new(AtomicUsize::new(0));
        let mangler = {
            let (stop, mangled) = (stop.clone(), mangled.clone());
            std::thread::spawn(move || {
                let mut m = Mangler::new(OsFamily::Windows.stack_profile(), &[PORT], 42);
                let mut buf = vec![0u8; 0x1_0000];
                while !stop.load(Ordering::Relaxed) {
                    let Ok(n) = (&q).read(&mut buf) else { continue };
                    for msg in nfq::parse(&buf[..n]) {
                        if let Message::Packet { id, payload, .. } = msg {
                            let v = match m.egress(payload) {
                                Verdict::Accept => nfq::verdict_message(QUEUE, id, NF_ACCEPT, None),
                                Verdict::Replace(b) => {
                                    mangled.fetch_add(1, Ordering::Relaxed);
                                    nfq::verdict_message(QUEUE, id, NF_ACCEPT, Some(&b))
                                }
                                Verdict::Drop => nfq::verdict_message(QUEUE, id, NF_DROP, None),
                            };
                            q.send(&v).expect("verdict");
                        }
                    }
                }
            })
        };
        // A raw TCP socket gets a copy of every TCP packet the namespace receives.
        let raw = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::TCP)).expect("raw socket");
        raw.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let listener = TcpListener::bind(("127.0.0.1", PORT)).expect("listen");
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().expect("accept");
            let mut got = Vec::new();
            s.read_to_end(&mut got).expect("read");
            got
        });
        let sent: Vec<u8> = (0..4 << 20)
            .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let mut c = TcpStream::connect(("127.0.0.1", PORT)).expect("connect through the mangler");
        c.write_all(&sent).expect("write");
        drop(c);
        let got = server.join().expect("server");
        // The SYN-ACK as the client's kernel received it.
        let mut syn_ack = None;
        let deadline = Instant::now() + Duration::from_secs(2);
        while syn_ack.is_none() && Instant::now() < deadline {
            let Ok(n) = (&raw).read(&mut buf) else {
                continue;
            };
            let pkt = buf[..n].to_vec();
            let Some(ip) = Ipv4::parse(&pkt) else {
                continue;
            };
            let Some(tcp) = Tcp::parse(ip.payload()) else {
                continue;
            };
            if tcp.sport() == PORT && tcp.flags() & (SYN | ACK) == SYN | ACK {
                syn_ack = Some((
                    ip.ttl(),
                    ip.df(),
                    tcp.window(),
                    options_string(tcp.options()),
                ));
            }
        }
        stop.store(true, Ordering::Relaxed);
        mangler.join().expect("mangler");
        (
            syn_ack,
            mangled.load(Ordering::Relaxed),
            got == sent,
            got.len(),
        )
    })
    .expect("in netns");

    let (syn_ack, mangled, intact, len) = report;
    println!("syn-ack seen by the client (ttl, df, window, options): {syn_ack:?}; mangled {mangled}; {len} bytes intact: {intact}");
    assert_eq!(
        mangled, 1,
        "exactly the one SYN-ACK went through the mangler"
    );
    let (ttl, df, window, opts) = syn_ack.expect("the client's raw socket saw the SYN-ACK");
    assert_eq!((ttl, df, window), (128, true, 0x2000));
    // Windows' order with loopback's MSS lowered to 1460 and the kernel's scale 10 to 8.
    assert_eq!(opts, "M5B4NW8ST11");
    assert!(
        intact,
        "4 MiB crossed the mangled connection unchanged ({len} bytes)"
    );
}

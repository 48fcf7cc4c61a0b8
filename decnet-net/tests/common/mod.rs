#![allow(dead_code)] // each test binary uses part of it
//! What the kernel tests of the OS-fingerprint mangler share.

use std::io::Read;
use std::time::Duration;

use decnet_osfp::nfq::{self, Message};
use socket2::{Domain, Protocol, Socket, Type};

/// Installs the mangler's NFQUEUE rules in the current thread's namespace over netlink
/// (decnet_osfp::nft: an nf_tables batch, no iptables binary) and checks every ack.
pub fn install_rules(queue: u16) {
    let s = Socket::new(Domain::from(16), Type::RAW, Some(Protocol::from(12))).expect("nft socket");
    s.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    s.send(&decnet_osfp::nft::install_batch("decnet_osfp", queue))
        .expect("send batch");
    let mut buf = vec![0u8; 0x4000];
    let mut acks = 0;
    while acks < decnet_osfp::nft::batch_messages_acked() {
        let n = (&s).read(&mut buf).expect("nft ack");
        for msg in nfq::parse(&buf[..n]) {
            if let Message::Ack { seq, errno } = msg {
                assert_eq!(errno, 0, "nf_tables refused message {seq}");
                acks += 1;
            }
        }
    }
}

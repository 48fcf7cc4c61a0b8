//! TFTP (UDP 69): read requests are recorded and answered "File not found"; write requests are
//! accepted and the upload is counted (blocks, bytes, SHA-256, a 64-byte sample of the first
//! block) without ever being stored, then recorded when it ends. Replies go out of the listening
//! port (a one-port decky has no other), which TFTP clients accept as the server's TID.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::log::{AttackDetails, AttackKind, Fields, Reporter};
use crate::util::{clip, hex, preview};

const RRQ: u16 = 1;
const WRQ: u16 = 2;
const DATA: u16 = 3;
const ACK: u16 = 4;
const ERROR: u16 = 5;

/// Uploads counted at once (the oldest is forgotten past it).
const MAX_UPLOADS: usize = 256;
/// Bytes of one upload counted before it is refused ("Disk full").
pub const MAX_UPLOAD: u64 = 16 * 1024 * 1024;
/// An upload not heard from for this long is forgotten.
const IDLE: Duration = Duration::from_secs(60);

pub fn error(code: u16, msg: &str) -> Vec<u8> {
    let mut out = ERROR.to_be_bytes().to_vec();
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(msg.as_bytes());
    out.push(0);
    out
}

pub fn ack(block: u16) -> Vec<u8> {
    let mut out = ACK.to_be_bytes().to_vec();
    out.extend_from_slice(&block.to_be_bytes());
    out
}

/// A request's file name, mode and options (`blksize`, `tsize` …, ignored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub op: u16,
    pub path: String,
    pub mode: String,
    pub options: Vec<(String, String)>,
}

pub fn parse_request(data: &[u8]) -> Option<Request> {
    let op = u16::from_be_bytes([*data.first()?, *data.get(1)?]);
    if op != RRQ && op != WRQ {
        return None;
    }
    let mut parts = data[2..].split(|&b| b == 0);
    let path = clip(parts.next()?, 512);
    let mode = clip(parts.next()?, 16).to_ascii_lowercase();
    let mut options = Vec::new();
    while let (Some(k), Some(v)) = (parts.next(), parts.next()) {
        if k.is_empty() || options.len() >= 8 {
            break;
        }
        options.push((clip(k, 32), clip(v, 32)));
    }
    Some(Request {
        op,
        path,
        mode,
        options,
    })
}

#[derive(Debug)]
struct Upload {
    path: String,
    next_block: u16,
    bytes: u64,
    blocks: u64,
    sha: Sha256,
    sample: Vec<u8>,
    seen: Instant,
}

/// The uploads in progress, by peer.
#[derive(Debug, Default)]
pub struct Server {
    uploads: HashMap<SocketAddr, Upload>,
}

impl Server {
    pub fn new() -> Self {
        Self::default()
    }

    fn finish(&mut self, src: SocketAddr, reason: &str, report: &Reporter) {
        let Some(u) = self.uploads.remove(&src) else {
            return;
        };
        let mut extra = Map::new();
        extra.insert("direction".into(), Value::from("upload"));
        extra.insert("blocks".into(), Value::from(u.blocks));
        extra.insert("sha256".into(), Value::from(hex(&u.sha.finalize())));
        extra.insert("sample".into(), Value::from(preview(&u.sample, 64)));
        extra.insert("end".into(), Value::from(reason));
        report.emit(
            AttackKind::FileTransfer,
            AttackDetails {
                path: Some(u.path),
                method: Some("tftp".into()),
                bytes_in: Some(u.bytes),
                extra,
                ..Default::default()
            },
        );
    }

    /// Handles one datagram from `src`; returns the reply.
    pub fn datagram(
        &mut self,
        src: SocketAddr,
        data: &[u8],
        now: Instant,
        report: &Reporter,
        fields: &mut Fields,
    ) -> Option<Vec<u8>> {
        self.uploads
            .retain(|_, u| now.saturating_duration_since(u.seen) < IDLE);
        let op = u16::from_be_bytes([*data.first()?, *data.get(1)?]);
        fields.insert("tftp_op".into(), Value::from(op_name(op)));
        match op {
            RRQ | WRQ => {
                let Some(req) = parse_request(data) else {
                    fields.insert("preview".into(), Value::from(preview(data, 64)));
                    return Some(error(4, "Illegal operation"));
                };
                fields.insert("path".into(), Value::from(req.path.clone()));
                fields.insert("mode".into(), Value::from(req.mode.clone()));
                let direction = if op == RRQ { "download" } else { "upload" };
                let mut extra = Map::new();
                extra.insert("direction".into(), Value::from(direction));
                extra.insert("mode".into(), Value::from(req.mode.clone()));
                if !req.options.is_empty() {
                    let o: Map<String, Value> = req
                        .options
                        .iter()
                        .map(|(k, v)| (k.clone(), Value::from(v.clone())))
                        .collect();
                    extra.insert("options".into(), Value::Object(o));
                }
                report.emit(
                    AttackKind::FileTransfer,
                    AttackDetails {
                        path: Some(req.path.clone()),
                        method: Some("tftp".into()),
                        extra,
                        ..Default::default()
                    },
                );
                if op == RRQ {
                    return Some(error(1, "File not found"));
                }
                if self.uploads.len() >= MAX_UPLOADS && !self.uploads.contains_key(&src) {
                    let oldest = self
                        .uploads
                        .iter()
                        .min_by_key(|(_, u)| u.seen)
                        .map(|(k, _)| *k);
                    if let Some(k) = oldest {
                        self.finish(k, "evicted", report);
                    }
                }
                self.finish(src, "restarted", report);
                self.uploads.insert(
                    src,
                    Upload {
                        path: req.path,
                        next_block: 1,
                        bytes: 0,
                        blocks: 0,
                        sha: Sha256::new(),
                        sample: Vec::new(),
                        seen: now,
                    },
                );
                Some(ack(0))
            }
            DATA => {
                let block = u16::from_be_bytes([*data.get(2)?, *data.get(3)?]);
                let payload = &data[4..];
                let Some(u) = self.uploads.get_mut(&src) else {
                    return Some(error(5, "Unknown transfer ID"));
                };
                u.seen = now;
                if block == u.next_block {
                    if u.bytes + payload.len() as u64 > MAX_UPLOAD {
                        self.finish(src, "too large", report);
                        return Some(error(3, "Disk full or allocation exceeded"));
                    }
                    u.bytes += payload.len() as u64;
                    u.blocks += 1;
                    u.sha.update(payload);
                    if u.sample.is_empty() {
                        u.sample = payload[..payload.len().min(64)].to_vec();
                    }
                    u.next_block = u.next_block.wrapping_add(1);
                    fields.insert("block".into(), Value::from(block));
                    if payload.len() < 512 {
                        self.finish(src, "complete", report);
                    }
                }
                // A repeated block is acknowledged again (its ACK was lost).
                Some(ack(block))
            }
            ERROR => {
                self.finish(src, "client error", report);
                None
            }
            _ => {
                fields.insert("preview".into(), Value::from(preview(data, 64)));
                Some(error(4, "Illegal operation"))
            }
        }
    }
}

fn op_name(op: u16) -> &'static str {
    match op {
        RRQ => "RRQ",
        WRQ => "WRQ",
        DATA => "DATA",
        ACK => "ACK",
        ERROR => "ERROR",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::reporter;
    use super::*;
    use proptest::prelude::*;

    fn req(op: u16, path: &str) -> Vec<u8> {
        let mut m = op.to_be_bytes().to_vec();
        m.extend_from_slice(path.as_bytes());
        m.extend_from_slice(b"\0octet\0tsize\0\x30\0");
        m
    }

    fn data(block: u16, payload: &[u8]) -> Vec<u8> {
        let mut m = DATA.to_be_bytes().to_vec();
        m.extend_from_slice(&block.to_be_bytes());
        m.extend_from_slice(payload);
        m
    }

    fn src() -> SocketAddr {
        "192.0.2.7:40000".parse().expect("addr")
    }

    #[test]
    fn reads_are_recorded_and_not_found() {
        let (report, sink) = reporter("tftp", 69);
        let mut s = Server::new();
        let mut f = Fields::new();
        let r = s.datagram(
            src(),
            &req(RRQ, "startup-config"),
            Instant::now(),
            &report,
            &mut f,
        );
        assert_eq!(r, Some(b"\0\x05\0\x01File not found\0".to_vec()));
        assert_eq!(f["path"], "startup-config");
        assert_eq!(f["mode"], "octet");
        let ev = sink.events();
        assert_eq!(ev[0].kind, AttackKind::FileTransfer);
        assert_eq!(ev[0].details.extra["direction"], "download");
        assert_eq!(ev[0].details.extra["options"]["tsize"], "0");
    }

    #[test]
    fn an_upload_is_counted_and_hashed_not_kept() {
        let (report, sink) = reporter("tftp", 69);
        let mut s = Server::new();
        let now = Instant::now();
        let mut f = Fields::new();
        assert_eq!(
            s.datagram(src(), &req(WRQ, "x.bin"), now, &report, &mut f),
            Some(ack(0))
        );
        let block = vec![b'A'; 512];
        assert_eq!(
            s.datagram(src(), &data(1, &block), now, &report, &mut f),
            Some(ack(1))
        );
        // A retransmitted block is acknowledged again and not counted twice.
        assert_eq!(
            s.datagram(src(), &data(1, &block), now, &report, &mut f),
            Some(ack(1))
        );
        assert_eq!(
            s.datagram(src(), &data(2, b"tail"), now, &report, &mut f),
            Some(ack(2))
        );
        let ev = sink.events();
        let done = ev.last().expect("done");
        assert_eq!(done.details.bytes_in, Some(516));
        assert_eq!(done.details.path.as_deref(), Some("x.bin"));
        assert_eq!(done.details.extra["blocks"], 2);
        assert_eq!(done.details.extra["end"], "complete");
        let mut sha = Sha256::new();
        sha.update(&block);
        sha.update(b"tail");
        assert_eq!(done.details.extra["sha256"], hex(&sha.finalize()));
        assert!(s.uploads.is_empty());
        // DATA without a WRQ.
        assert_eq!(
            s.datagram(src(), &data(3, b"x"), now, &report, &mut f),
            Some(error(5, "Unknown transfer ID"))
        );
    }

    #[test]
    fn uploads_are_bounded() {
        let (report, _) = reporter("tftp", 69);
        let mut s = Server::new();
        let now = Instant::now();
        for i in 0..(MAX_UPLOADS + 10) {
            let a: SocketAddr = format!("192.0.2.{}:{}", i % 250, 1000 + i)
                .parse()
                .expect("addr");
            s.datagram(a, &req(WRQ, "f"), now, &report, &mut Fields::new());
        }
        assert_eq!(s.uploads.len(), MAX_UPLOADS);
        let later = now + IDLE + Duration::from_secs(1);
        s.datagram(src(), &req(RRQ, "f"), later, &report, &mut Fields::new());
        assert!(s.uploads.is_empty());
    }

    proptest! {
        #[test]
        fn random_datagrams_never_panic(d in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 1..8)) {
            let (report, _) = reporter("tftp", 69);
            let mut s = Server::new();
            s.datagram(src(), &req(WRQ, "f"), Instant::now(), &report, &mut Fields::new());
            for dg in d {
                let _ = s.datagram(src(), &dg, Instant::now(), &report, &mut Fields::new());
                let _ = parse_request(&dg);
            }
        }
    }
}

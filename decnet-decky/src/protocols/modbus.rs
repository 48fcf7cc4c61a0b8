//! Modbus TCP (the ICS persona's port 502) as a Siemens S7-200 class PLC: device
//! identification (function 43/14), Report Server ID (17), coil/input/register reads over a
//! fixed process image, and writes (5, 6, 15, 16) acknowledged and recorded — never applied.
//! Every request is recorded.

use std::io::{self, Read, Write};

use serde_json::{Map, Value};

use super::{Conn, ServiceCtx, MAX_COMMANDS, MAX_LOGGED};
use crate::log::{AttackDetails, AttackKind, Fields, Reporter};
use crate::util::{bump, push_bounded};

/// Registers and coils the process image has (addresses 0..SIZE).
const SIZE: u32 = 1000;

/// The device identity (function 43/14 objects 0-2, and Report Server ID).
#[derive(Debug, Clone)]
pub struct Plc {
    pub vendor: String,
    pub product_code: String,
    pub revision: String,
}

impl Plc {
    pub fn from_ctx(ctx: &ServiceCtx) -> Plc {
        let cfg = |k: &str, d: &str| ctx.config.line(k).unwrap_or_else(|| d.to_owned());
        Plc {
            vendor: cfg("vendor", "Siemens"),
            product_code: cfg("product_code", "SIMATIC S7-200"),
            revision: cfg("revision", "V2.3"),
        }
    }
}

/// The value of holding/input register `addr`: a plausible, fixed process image.
pub fn register(addr: u32) -> u16 {
    match addr % 10 {
        0 => 2_000 + (addr % 97) as u16,  // flow ×10
        1 => 650 + (addr % 13) as u16,    // temperature ×10
        2 => 1,                           // pump state
        3 => 4_500 + (addr % 211) as u16, // pressure
        _ => ((addr * 2_654_435_761) >> 20) as u16 & 0x0fff,
    }
}

pub fn coil(addr: u32) -> bool {
    addr.is_multiple_of(3) || addr % 7 == 1
}

fn exception(fc: u8, code: u8) -> Vec<u8> {
    vec![fc | 0x80, code]
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn function_name(fc: u8) -> String {
    match fc {
        1 => "read_coils".into(),
        2 => "read_discrete_inputs".into(),
        3 => "read_holding_registers".into(),
        4 => "read_input_registers".into(),
        5 => "write_single_coil".into(),
        6 => "write_single_register".into(),
        8 => "diagnostics".into(),
        15 => "write_multiple_coils".into(),
        16 => "write_multiple_registers".into(),
        17 => "report_server_id".into(),
        43 => "read_device_identification".into(),
        n => format!("function_{n}"),
    }
}

/// The response PDU to `pdu`, with what to record about it.
pub fn respond(plc: &Plc, pdu: &[u8], extra: &mut Map<String, Value>) -> Vec<u8> {
    let Some(&fc) = pdu.first() else {
        return exception(0, 3);
    };
    let range = |start: u16, qty: u16, max: u16| {
        if qty == 0 || qty > max {
            Err(3)
        } else if u32::from(start) + u32::from(qty) > SIZE {
            Err(2)
        } else {
            Ok(())
        }
    };
    match fc {
        1..=4 => {
            let (Some(start), Some(qty)) = (u16_at(pdu, 1), u16_at(pdu, 3)) else {
                return exception(fc, 3);
            };
            extra.insert("address".into(), Value::from(start));
            extra.insert("quantity".into(), Value::from(qty));
            let bits = fc <= 2;
            if let Err(code) = range(start, qty, if bits { 2000 } else { 125 }) {
                return exception(fc, code);
            }
            let mut out = vec![fc];
            if bits {
                let mut bytes = vec![0u8; usize::from(qty).div_ceil(8)];
                for i in 0..u32::from(qty) {
                    if coil(u32::from(start) + i + if fc == 2 { 10_000 } else { 0 }) {
                        bytes[(i / 8) as usize] |= 1 << (i % 8);
                    }
                }
                out.push(bytes.len() as u8);
                out.extend(bytes);
            } else {
                out.push((qty * 2) as u8);
                for i in 0..u32::from(qty) {
                    let a = u32::from(start) + i + if fc == 4 { 30_000 } else { 0 };
                    out.extend_from_slice(&register(a).to_be_bytes());
                }
            }
            out
        }
        5 | 6 => {
            let (Some(addr), Some(value)) = (u16_at(pdu, 1), u16_at(pdu, 3)) else {
                return exception(fc, 3);
            };
            extra.insert("address".into(), Value::from(addr));
            extra.insert("values".into(), Value::from(vec![value]));
            if fc == 5 && value != 0 && value != 0xff00 {
                return exception(fc, 3);
            }
            if u32::from(addr) >= SIZE {
                return exception(fc, 2);
            }
            pdu[..5].to_vec()
        }
        15 | 16 => {
            let (Some(start), Some(qty), Some(&count)) =
                (u16_at(pdu, 1), u16_at(pdu, 3), pdu.get(5))
            else {
                return exception(fc, 3);
            };
            let data = pdu.get(6..).unwrap_or_default();
            extra.insert("address".into(), Value::from(start));
            extra.insert("quantity".into(), Value::from(qty));
            let values: Vec<Value> = if fc == 16 {
                data.chunks(2)
                    .take(usize::from(qty).min(125))
                    .filter(|c| c.len() == 2)
                    .map(|c| Value::from(u16::from_be_bytes([c[0], c[1]])))
                    .collect()
            } else {
                (0..usize::from(qty).min(256))
                    .filter_map(|i| data.get(i / 8).map(|b| Value::from(b >> (i % 8) & 1 == 1)))
                    .collect()
            };
            extra.insert("values".into(), Value::Array(values));
            if usize::from(count) != data.len() {
                return exception(fc, 3);
            }
            if let Err(code) = range(start, qty, if fc == 15 { 1968 } else { 123 }) {
                return exception(fc, code);
            }
            pdu[..5].to_vec()
        }
        17 => {
            let text = format!("{} {}", plc.vendor, plc.product_code);
            let mut data = vec![0x01, 0xff];
            data.extend_from_slice(text.as_bytes());
            data.truncate(250);
            let mut out = vec![fc, data.len() as u8];
            out.extend(data);
            out
        }
        43 => {
            if pdu.get(1) != Some(&0x0e) {
                return exception(fc, 1);
            }
            let code = pdu.get(2).copied().unwrap_or(1);
            let first = pdu.get(3).copied().unwrap_or(0);
            extra.insert("read_device_id_code".into(), Value::from(code));
            extra.insert("object_id".into(), Value::from(first));
            let objects = [&plc.vendor, &plc.product_code, &plc.revision];
            if !(1..=4).contains(&code) {
                return exception(fc, 3);
            }
            let ids: Vec<u8> = if code == 4 {
                if usize::from(first) >= objects.len() {
                    return exception(fc, 2);
                }
                vec![first]
            } else {
                let start = if usize::from(first) < objects.len() {
                    first
                } else {
                    0
                };
                (start..objects.len() as u8).collect()
            };
            let mut out = vec![fc, 0x0e, code, 0x01, 0x00, 0x00, ids.len() as u8];
            for id in ids {
                let v = objects[usize::from(id)].as_bytes();
                let v = &v[..v.len().min(64)];
                out.push(id);
                out.push(v.len() as u8);
                out.extend_from_slice(v);
            }
            out
        }
        _ => exception(fc, 1),
    }
}

pub fn handle<S: Read + Write>(
    mut conn: Conn<S>,
    ctx: &ServiceCtx,
    report: &Reporter,
    fields: &mut Fields,
) -> io::Result<()> {
    let plc = Plc::from_ctx(ctx);
    for _ in 0..MAX_COMMANDS {
        if conn.peek()?.is_none() {
            return Ok(());
        }
        let head = conn.read_exact_vec(7)?;
        let proto = u16::from_be_bytes([head[2], head[3]]);
        let len = usize::from(u16::from_be_bytes([head[4], head[5]]));
        if proto != 0 || !(2..=254).contains(&len) {
            // Not Modbus (or not sane): a PLC's stack drops the connection.
            fields.insert("reason".into(), Value::from("not modbus"));
            return Ok(());
        }
        let unit = head[6];
        let pdu = conn.read_exact_vec(len - 1)?;
        let fc = pdu[0];
        let name = function_name(fc);
        bump(fields, "requests");
        push_bounded(fields, "functions", Value::from(name.clone()), MAX_LOGGED);
        let mut extra = Map::new();
        extra.insert("function".into(), Value::from(fc));
        extra.insert("unit".into(), Value::from(unit));
        let reply = respond(&plc, &pdu, &mut extra);
        let exception = reply.first().is_some_and(|&b| b & 0x80 != 0);
        if exception {
            extra.insert(
                "exception".into(),
                Value::from(reply.get(1).copied().unwrap_or(0)),
            );
        }
        if matches!(fc, 5 | 6 | 15 | 16) {
            bump(fields, "writes");
        }
        let mut command = name;
        for k in ["address", "quantity"] {
            if let Some(v) = extra.get(k) {
                command.push_str(&format!(" {v}"));
            }
        }
        report.emit(
            AttackKind::Command,
            AttackDetails {
                command: Some(command),
                extra,
                ..Default::default()
            },
        );
        let mut out = head[..4].to_vec();
        out.extend_from_slice(&(reply.len() as u16 + 1).to_be_bytes());
        out.push(unit);
        out.extend(reply);
        conn.send(&out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testing::{ctx, peer, reporter, Mock};
    use super::*;
    use crate::log::AttackEvent;
    use proptest::prelude::*;
    use serde_json::json;

    fn adu(tid: u16, unit: u8, pdu: &[u8]) -> Vec<u8> {
        let mut m = tid.to_be_bytes().to_vec();
        m.extend_from_slice(&[0, 0]);
        m.extend_from_slice(&(pdu.len() as u16 + 1).to_be_bytes());
        m.push(unit);
        m.extend_from_slice(pdu);
        m
    }

    fn run(input: &[u8]) -> (Vec<u8>, Fields, Vec<AttackEvent>) {
        let c = ctx("conpot", json!({}));
        let (report, sink) = reporter("conpot", 502);
        let mut m = Mock::new(input);
        let mut f = Fields::new();
        handle(Conn::new(&mut m), &c, &report, &mut f).expect("ok");
        (m.output, f, sink.events())
    }

    #[test]
    fn device_identification_like_nmaps_modbus_discover() {
        // modbus-discover: "\0\0\0\0\0" len sid 0x2B "\x0E\x01" start
        let (out, _, ev) = run(b"\0\0\0\0\0\x05\x01\x2b\x0e\x01\x00");
        assert_eq!(&out[..4], b"\0\0\0\0");
        assert_eq!(
            usize::from(u16::from_be_bytes([out[4], out[5]])),
            out.len() - 6
        );
        assert_eq!(out[6], 1, "unit");
        assert_eq!(out[7], 0x2b);
        assert_eq!(&out[8..14], &[0x0e, 0x01, 0x01, 0x00, 0x00, 0x03]);
        assert_eq!(&out[14..16], &[0x00, 7]);
        assert_eq!(&out[16..23], b"Siemens");
        assert!(String::from_utf8_lossy(&out).contains("SIMATIC S7-200"));
        assert_eq!(
            ev[0].details.command.as_deref(),
            Some("read_device_identification")
        );
        let (out, _, _) = run(&adu(9, 1, &[0x11]));
        assert_eq!(out[7], 0x11);
        assert_eq!(&out[10..11], &[0xff]);
        assert!(out.ends_with(b"Siemens SIMATIC S7-200"));
    }

    #[test]
    fn reads_and_writes() {
        let mut input = adu(1, 1, &[3, 0, 10, 0, 3]);
        input.extend(adu(2, 1, &[1, 0, 0, 0, 10]));
        input.extend(adu(3, 1, &[6, 0, 4, 0x12, 0x34]));
        input.extend(adu(4, 1, &[16, 0, 20, 0, 2, 4, 0, 1, 0, 2]));
        input.extend(adu(5, 1, &[3, 0x03, 0xe7, 0, 2]));
        input.extend(adu(6, 1, &[0x5a]));
        let (out, f, ev) = run(&input);
        // Holding registers 10..13.
        let r = &out[..9 + 6];
        assert_eq!(&r[7..9], &[3, 6]);
        assert_eq!(u16::from_be_bytes([r[9], r[10]]), register(10));
        let rest = &out[15..];
        assert_eq!(&rest[7..9], &[1, 2], "10 coils in 2 bytes");
        let rest = &rest[11..];
        assert_eq!(&rest[7..12], &[6, 0, 4, 0x12, 0x34], "single write echoed");
        let rest = &rest[12..];
        assert_eq!(&rest[7..12], &[16, 0, 20, 0, 2]);
        let rest = &rest[12..];
        assert_eq!(&rest[7..9], &[0x83, 2], "address out of range");
        assert_eq!(&rest[9 + 7..9 + 9], &[0xda, 1], "illegal function");
        assert_eq!(f["writes"], 2);
        let w = &ev[3].details;
        assert_eq!(w.command.as_deref(), Some("write_multiple_registers 20 2"));
        assert_eq!(w.extra["values"], json!([1, 2]));
        assert_eq!(ev[2].details.extra["values"], json!([0x1234]));
    }

    #[test]
    fn not_modbus_closes() {
        let (out, f, _) = run(b"GET / HTTP/1.0\r\n\r\n");
        assert!(out.is_empty());
        assert_eq!(f["reason"], "not modbus");
    }

    proptest! {
        #[test]
        fn any_pdu_never_panics(pdu in proptest::collection::vec(any::<u8>(), 0..260)) {
            let plc = Plc::from_ctx(&ctx("conpot", json!({})));
            let _ = respond(&plc, &pdu, &mut Map::new());
        }

        #[test]
        fn any_stream_never_panics(data in proptest::collection::vec(any::<u8>(), 0..400)) {
            let c = ctx("conpot", json!({}));
            let (report, _) = reporter("conpot", 502);
            let mut f = Fields::new();
            let _ = super::super::handle(&c, &peer(502), &report, &mut Mock::new(&data), &mut f);
        }
    }
}

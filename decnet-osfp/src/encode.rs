//! A [`StackProfile`] as one line of text, so the deployer can hand the registry's profile to
//! the decky binary (an environment variable) without the decky depending on the core:
//! `key=value` pairs joined by `;`, e.g. `ttl=128;df=set;win=2000;…`. [`decode`] is strict:
//! an unknown key, a bad value or a missing key is an error naming it.

use std::borrow::Cow;
use std::fmt::Write as _;

use crate::profile::{
    parse_layout, AckRule, DfRule, EchoRules, IpIdMode, IpIdRules, OptionLayouts, ProbeReply,
    RstRules, SeqRule, StackProfile,
};

/// A profile line that does not decode; the message names the key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid os profile: {}", self.0)
    }
}

impl std::error::Error for DecodeError {}

fn df(d: DfRule) -> &'static str {
    match d {
        DfRule::Kernel => "kernel",
        DfRule::Set => "set",
        DfRule::Clear => "clear",
        DfRule::SameAsRequest => "same",
    }
}
fn id(m: IpIdMode) -> &'static str {
    match m {
        IpIdMode::Kernel => "kernel",
        IpIdMode::Zero => "zero",
        IpIdMode::Incremental => "inc",
        IpIdMode::RandomIncrements => "ri",
        IpIdMode::Random => "rd",
    }
}
fn ack(a: AckRule) -> &'static str {
    match a {
        AckRule::Kernel => "kernel",
        AckRule::ProbeSeq => "seq",
        AckRule::ProbeSeqPlus => "seq+",
        AckRule::Other => "other",
        AckRule::Zero => "zero",
    }
}
fn opt<T: std::fmt::UpperHex>(v: Option<T>) -> String {
    v.map_or("-".into(), |v| format!("{v:X}"))
}
fn reply(r: Option<ProbeReply>) -> String {
    r.map_or("-".into(), |r| {
        let seq = match r.seq {
            SeqRule::Zero => "zero",
            SeqRule::ProbeAck => "ack",
        };
        format!("{:X},{seq},{},{:X}", r.flags, ack(r.ack), r.window)
    })
}

/// The profile as one line.
pub fn encode(p: &StackProfile) -> String {
    let mut s = String::new();
    let b = |v: bool| u8::from(v);
    let lay = p.layouts.as_ref().map_or("-".to_owned(), |l| {
        format!(
            "{},{},{},{}",
            l.full, l.no_sack, l.no_wscale, l.no_timestamps
        )
    });
    let _ = write!(
        s,
        "ref={};ttl={};df={};win={};mss={};mss_echo={};ws={};sack={};lay={lay};ecn={};\
         id={},{},{};rst_win={};rst_ack={};t2={};t3={};unreach={};quote={};unreach_df={};\
         echo_code0={};echo_df={}",
        p.reference.replace([';', '='], " "),
        p.ttl,
        df(p.tcp_df),
        opt(p.syn_ack_window),
        opt(p.mss),
        b(p.mss_echo_peer),
        opt(p.wscale),
        b(p.sack),
        b(p.ecn_echo),
        id(p.ip_id.syn_ack),
        id(p.ip_id.rst),
        id(p.ip_id.icmp),
        opt(p.rst.window),
        ack(p.rst.ack_without_ack_flag),
        reply(p.t2),
        reply(p.t3),
        b(p.port_unreachable),
        opt(p.unreachable_quote),
        df(p.unreachable_df),
        b(p.echo.code_zero),
        df(p.echo.df),
    );
    s
}

/// Parses a line [`encode`] wrote.
pub fn decode(line: &str) -> Result<StackProfile, DecodeError> {
    let mut kv: Vec<(&str, &str)> = Vec::new();
    for part in line.split(';') {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| DecodeError(format!("{part:?} is not key=value")))?;
        if kv.iter().any(|(seen, _)| *seen == k) {
            return Err(DecodeError(format!("{k} twice")));
        }
        kv.push((k, v));
    }
    const KEYS: [&str; 21] = [
        "ref",
        "ttl",
        "df",
        "win",
        "mss",
        "mss_echo",
        "ws",
        "sack",
        "lay",
        "ecn",
        "id",
        "rst_win",
        "rst_ack",
        "t2",
        "t3",
        "unreach",
        "quote",
        "unreach_df",
        "echo_code0",
        "echo_df",
        "",
    ];
    if let Some((k, _)) = kv.iter().find(|(k, _)| !KEYS[..20].contains(k)) {
        return Err(DecodeError(format!("unknown key {k:?}")));
    }
    let get = |k: &str| {
        kv.iter()
            .find(|(key, _)| *key == k)
            .map(|(_, v)| *v)
            .ok_or_else(|| DecodeError(format!("{k} missing")))
    };
    let bad = |k: &str, v: &str| DecodeError(format!("{k}={v:?}"));
    let boolean = |k: &str| match get(k)? {
        "0" => Ok(false),
        "1" => Ok(true),
        v => Err(bad(k, v)),
    };
    let hex16 = |k: &str, v: &str| u16::from_str_radix(v, 16).map_err(|_| bad(k, v));
    let opt16 = |k: &str| match get(k)? {
        "-" => Ok(None),
        v => hex16(k, v).map(Some),
    };
    let dfr = |k: &str, v: &str| match v {
        "kernel" => Ok(DfRule::Kernel),
        "set" => Ok(DfRule::Set),
        "clear" => Ok(DfRule::Clear),
        "same" => Ok(DfRule::SameAsRequest),
        _ => Err(bad(k, v)),
    };
    let idm = |v: &str| match v {
        "kernel" => Ok(IpIdMode::Kernel),
        "zero" => Ok(IpIdMode::Zero),
        "inc" => Ok(IpIdMode::Incremental),
        "ri" => Ok(IpIdMode::RandomIncrements),
        "rd" => Ok(IpIdMode::Random),
        _ => Err(bad("id", v)),
    };
    let ackr = |k: &str, v: &str| match v {
        "kernel" => Ok(AckRule::Kernel),
        "seq" => Ok(AckRule::ProbeSeq),
        "seq+" => Ok(AckRule::ProbeSeqPlus),
        "other" => Ok(AckRule::Other),
        "zero" => Ok(AckRule::Zero),
        _ => Err(bad(k, v)),
    };
    let rep = |k: &str| -> Result<Option<ProbeReply>, DecodeError> {
        let v = get(k)?;
        if v == "-" {
            return Ok(None);
        }
        let f: Vec<&str> = v.split(',').collect();
        let [flags, seq, a, win] = f[..] else {
            return Err(bad(k, v));
        };
        Ok(Some(ProbeReply {
            flags: u8::from_str_radix(flags, 16).map_err(|_| bad(k, v))?,
            seq: match seq {
                "zero" => SeqRule::Zero,
                "ack" => SeqRule::ProbeAck,
                _ => return Err(bad(k, v)),
            },
            ack: ackr(k, a)?,
            window: hex16(k, win)?,
        }))
    };
    let layouts = match get("lay")? {
        "-" => None,
        v => {
            let f: Vec<&str> = v.split(',').collect();
            let [a, b, c, d] = f[..] else {
                return Err(bad("lay", v));
            };
            for l in [a, b, c, d] {
                parse_layout(l).map_err(|_| bad("lay", v))?;
            }
            let own = |s: &str| Cow::Owned(s.to_owned());
            Some(OptionLayouts {
                full: own(a),
                no_sack: own(b),
                no_wscale: own(c),
                no_timestamps: own(d),
            })
        }
    };
    let ids: Vec<&str> = get("id")?.split(',').collect();
    let [syn_ack, rst, icmp] = ids[..] else {
        return Err(bad("id", get("id")?));
    };
    let ttl = get("ttl")?;
    let ws = match get("ws")? {
        "-" => None,
        v => Some(u8::from_str_radix(v, 16).map_err(|_| bad("ws", v))?),
    };
    Ok(StackProfile {
        reference: Cow::Owned(get("ref")?.to_owned()),
        ttl: ttl.parse().map_err(|_| bad("ttl", ttl))?,
        tcp_df: dfr("df", get("df")?)?,
        syn_ack_window: opt16("win")?,
        mss: opt16("mss")?,
        mss_echo_peer: boolean("mss_echo")?,
        wscale: ws,
        sack: boolean("sack")?,
        layouts,
        ecn_echo: boolean("ecn")?,
        ip_id: IpIdRules {
            syn_ack: idm(syn_ack)?,
            rst: idm(rst)?,
            icmp: idm(icmp)?,
        },
        rst: RstRules {
            window: opt16("rst_win")?,
            ack_without_ack_flag: ackr("rst_ack", get("rst_ack")?)?,
        },
        t2: rep("t2")?,
        t3: rep("t3")?,
        port_unreachable: boolean("unreach")?,
        unreachable_quote: opt16("quote")?,
        unreachable_df: dfr("unreach_df", get("unreach_df")?)?,
        echo: EchoRules {
            code_zero: boolean("echo_code0")?,
            df: dfr("echo_df", get("echo_df")?)?,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_profile_round_trips_and_errors_name_the_key() {
        let p = StackProfile::kernel("Linux 5.3 - 5.4", 64);
        assert_eq!(decode(&encode(&p)), Ok(p.clone()));
        let line = encode(&p);
        let err = |l: &str| decode(l).expect_err(l).to_string();
        assert!(err(&line.replace("ttl=64", "ttl=x")).contains("ttl"));
        assert!(err(&format!("{line};frob=1")).contains("frob"));
        assert!(err(&line.replace(";sack=1", "")).contains("sack missing"));
        assert!(err(&format!("{line};ttl=64")).contains("twice"));
        assert!(err("").contains("key=value"));
    }
}

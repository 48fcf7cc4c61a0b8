//! Per-packet cost of the OS-fingerprint mangler (issue 16): a SYN-ACK re-laid for Windows,
//! an RST, a data segment that passes untouched (the common case on a busy decky), and the
//! ingress look at a SYN. `cargo bench -p decnet-osfp --bench mangler`.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use decnet_osfp::packet::{fix_checksums, put16, put32, ACK, RST, SYN};
use decnet_osfp::{
    AckRule, DfRule, EchoRules, IpIdMode, IpIdRules, Mangler, OptionLayouts, RstRules, StackProfile,
};
use std::borrow::Cow;

fn windows_like() -> StackProfile {
    StackProfile {
        reference: Cow::Borrowed("bench"),
        ttl: 128,
        tcp_df: DfRule::Set,
        syn_ack_window: Some(0x2000),
        mss: Some(1460),
        mss_echo_peer: false,
        wscale: Some(8),
        sack: true,
        layouts: Some(OptionLayouts {
            full: Cow::Borrowed("MNWST"),
            no_sack: Cow::Borrowed("MNWNNT"),
            no_wscale: Cow::Borrowed("MST"),
            no_timestamps: Cow::Borrowed("MNWNNS"),
        }),
        ecn_echo: false,
        ip_id: IpIdRules {
            syn_ack: IpIdMode::Incremental,
            rst: IpIdMode::Incremental,
            icmp: IpIdMode::Incremental,
        },
        rst: RstRules {
            window: Some(0),
            ack_without_ack_flag: AckRule::Other,
        },
        t2: None,
        t3: None,
        port_unreachable: true,
        unreachable_quote: None,
        unreachable_df: DfRule::Clear,
        echo: EchoRules {
            code_zero: true,
            df: DfRule::Clear,
        },
    }
}

fn segment(flags: u8, opts: &[u8], payload: &[u8]) -> Vec<u8> {
    let hlen = 20 + opts.len();
    let mut p = vec![0u8; 20 + hlen];
    p[0] = 0x45;
    put16(&mut p, 2, (20 + hlen + payload.len()) as u16);
    put16(&mut p, 6, 0x4000);
    p[8] = 64;
    p[9] = 6;
    p[12..16].copy_from_slice(&[10, 0, 0, 2]);
    p[16..20].copy_from_slice(&[10, 0, 0, 1]);
    put16(&mut p, 20, 445);
    put16(&mut p, 22, 50_000);
    put32(&mut p, 24, 0x1234_5678);
    put32(&mut p, 28, 0x9abc_def0);
    p[32] = ((hlen / 4) as u8) << 4;
    p[33] = flags;
    put16(&mut p, 34, 64_240);
    p[40..40 + opts.len()].copy_from_slice(opts);
    p.extend_from_slice(payload);
    fix_checksums(&mut p);
    p
}

fn bench(c: &mut Criterion) {
    let linux_opts = [
        2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 1, 3, 3, 10,
    ];
    let syn_ack = segment(SYN | ACK, &linux_opts, &[]);
    let rst = segment(RST, &[], &[]);
    let data = segment(ACK, &[], &[0x42; 1400]);
    let syn = {
        let mut s = segment(SYN, &linux_opts, &[]);
        s[12..16].copy_from_slice(&[10, 0, 0, 1]);
        s[16..20].copy_from_slice(&[10, 0, 0, 2]);
        fix_checksums(&mut s);
        s
    };
    let mut m = Mangler::new(windows_like(), &[445], 1);
    let mut g = c.benchmark_group("osfp_mangler");
    g.bench_function("egress_syn_ack_windows", |b| {
        b.iter(|| m.egress(black_box(&syn_ack)))
    });
    g.bench_function("egress_rst", |b| b.iter(|| m.egress(black_box(&rst))));
    g.bench_function("egress_data_1400b_passes", |b| {
        b.iter(|| m.egress(black_box(&data)))
    });
    g.bench_function("ingress_syn", |b| b.iter(|| m.ingress(black_box(&syn))));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

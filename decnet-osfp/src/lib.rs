//! OS fingerprint cloaking, the pure part: a decky's outgoing IPv4 packets rewritten so that
//! nmap's OS detection (`nmap -O`: the SEQ/OPS/WIN/ECN/T1–T7/U1/IE tests) reads the OS family
//! the decky claims, and replies to the probes the Linux kernel ignores (T2, T3) built here.
//!
//! Nothing in this crate does I/O: [`Mangler::egress`] takes the bytes of one outgoing packet
//! and returns a [`Verdict`]; [`Mangler::ingress`] takes one incoming packet and returns the
//! reply to send, if any. The adapter that feeds it (NFQUEUE, raw socket) lives elsewhere.
//!
//! The values come from a [`StackProfile`] — data, filled per OS family by the core registry
//! from nmap's `nmap-os-db` fingerprint lines. The mangler only makes changes that keep every
//! connection correct (see [`Mangler::egress`]): a decoy that breaks its own services is worse
//! than one nmap misnames.

#![forbid(unsafe_code)]

pub mod encode;
mod mangle;
pub mod nfq;
pub mod nft;
pub mod nmap;
pub mod packet;
mod profile;

pub use mangle::{Mangler, Verdict};
pub use profile::{
    layout_string, parse_layout, AckRule, DfRule, EchoRules, IpIdMode, IpIdRules, LayoutError,
    OptionLayouts, ProbeReply, RstRules, SeqRule, StackProfile, TcpOpt,
};

//! SMB responder tests: framing, negotiation, NTLM session setup, SMB1, hostile input.

use super::*;
use crate::log::AttackKind;
use crate::protocols::ntlm::tests::authenticate;
use proptest::prelude::*;
use serde_json::json;

fn request(command: u16, message_id: u64, body: &[u8]) -> Vec<u8> {
    let mut m = b"\xfeSMB".to_vec();
    m.extend_from_slice(&64u16.to_le_bytes());
    m.extend_from_slice(&[0; 6]);
    m.extend_from_slice(&command.to_le_bytes());
    m.extend_from_slice(&1u16.to_le_bytes());
    m.extend_from_slice(&[0; 8]);
    m.extend_from_slice(&message_id.to_le_bytes());
    m.extend_from_slice(&[0; 32]);
    m.extend_from_slice(body);
    m
}

fn negotiate(dialects: &[u16]) -> Vec<u8> {
    let mut b = 36u16.to_le_bytes().to_vec();
    b.extend_from_slice(&(dialects.len() as u16).to_le_bytes());
    b.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]);
    b.extend_from_slice(&[7; 16]);
    b.extend_from_slice(&[0; 8]);
    for d in dialects {
        b.extend_from_slice(&d.to_le_bytes());
    }
    request(NEGOTIATE, 0, &b)
}

fn session_setup(message_id: u64, token: &[u8]) -> Vec<u8> {
    let mut b = 25u16.to_le_bytes().to_vec();
    b.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
    b.extend_from_slice(&88u16.to_le_bytes());
    b.extend_from_slice(&(token.len() as u16).to_le_bytes());
    b.extend_from_slice(&[0; 8]);
    b.extend_from_slice(token);
    request(SESSION_SETUP, message_id, &b)
}

fn smb1_negotiate(dialects: &[&str]) -> Vec<u8> {
    let mut m = b"\xffSMB\x72".to_vec();
    m.extend_from_slice(&[0; 27]);
    m.push(0); // word count
    let mut bytes = Vec::new();
    for d in dialects {
        bytes.push(2);
        bytes.extend_from_slice(d.as_bytes());
        bytes.push(0);
    }
    m.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
    m.extend_from_slice(&bytes);
    m
}

/// Splits the server's output into SMB2 messages.
fn replies(out: &[u8]) -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    let mut at = 0;
    while at + 4 <= out.len() {
        let len = usize::from(out[at + 2]) << 8 | usize::from(out[at + 3]);
        v.push(out[at + 4..at + 4 + len].to_vec());
        at += 4 + len;
    }
    v
}

fn status(m: &[u8]) -> u32 {
    le32(m, 8).expect("status")
}

#[test]
fn smb1_negotiate_is_upgraded_to_smb2_wildcard() {
    let input = [
        frame(&smb1_negotiate(&["NT LM 0.12", "SMB 2.002", "SMB 2.???"])),
        frame(&negotiate(&[0x0202, 0x0210, 0x0300])),
    ]
    .concat();
    let (out, f, _) = run_raw(&input);
    let r = replies(&out);
    assert_eq!(r.len(), 2);
    assert_eq!(le16(&r[0], 64 + 4), Some(0x02ff));
    assert_eq!(le16(&r[1], 64 + 4), Some(0x0300));
    assert_eq!(
        le16(&r[1], 64 + 2),
        Some(1),
        "signing enabled, not required"
    );
    assert_eq!(
        f["smb1_dialects"],
        json!(["NT LM 0.12", "SMB 2.002", "SMB 2.???"])
    );
    assert_eq!(f["dialect"], "3.0.0");
    // Windows Server 2019 (17763) ships without SMB1: an SMB1-only client is dropped.
    let (out, f, _) = run_cfg(
        json!({"os_version": "10.0.17763"}),
        &frame(&smb1_negotiate(&["NT LM 0.12"])),
    );
    assert!(out.is_empty());
    assert_eq!(f["reason"], "smb1 only");
}

fn smb1_request(command: u8, flags2: u16, words: &[u8], bytes: &[u8]) -> Vec<u8> {
    let mut m = b"\xffSMB".to_vec();
    m.push(command);
    m.extend_from_slice(&[0; 5]);
    m.extend_from_slice(&flags2.to_le_bytes());
    m.extend_from_slice(&[0; 20]);
    m.push((words.len() / 2) as u8);
    m.extend_from_slice(words);
    m.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
    m.extend_from_slice(bytes);
    m
}

/// A pre-NTLMSSP (OEM strings) session setup, as nmap sends it.
fn smb1_plain_setup(user: &str, lm: &[u8], nt: &[u8]) -> Vec<u8> {
    let mut w = vec![0xff, 0, 0, 0, 0xff, 0xff, 1, 0, 1, 0, 0, 0, 0, 0];
    w.extend_from_slice(&(lm.len() as u16).to_le_bytes());
    w.extend_from_slice(&(nt.len() as u16).to_le_bytes());
    w.extend_from_slice(&[0, 0, 0, 0, 0x50, 0, 0, 0]);
    let b = [
        lm,
        nt,
        user.as_bytes(),
        b"\0WORKGROUP\0Nmap\0Native Lanman\0",
    ]
    .concat();
    smb1_request(0x73, 0x6041, &w, &b)
}

/// The NativeOS string of an SMB1 session setup answer with OEM strings.
fn native_os(m: &[u8]) -> String {
    let words = usize::from(m[32]);
    let at = 33 + 2 * words + 2;
    let end = m[at..].iter().position(|&b| b == 0).expect("nul");
    String::from_utf8_lossy(&m[at..at + end]).into_owned()
}

#[test]
fn smb1_only_clients_get_nt_lm_and_the_native_os() {
    let input = [
        frame(&smb1_negotiate(&["PC NETWORK PROGRAM 1.0", "NT LM 0.12"])),
        frame(&smb1_plain_setup("guest", &[1; 24], &[2; 24])),
        frame(&smb1_plain_setup("", &[0], &[])),
        frame(&smb1_request(
            0x75,
            0x6041,
            &[0xff, 0, 0, 0, 0, 0, 1, 0],
            b"\0",
        )),
    ]
    .concat();
    let (out, f, events) = run_raw(&input);
    let r = replies(&out);
    assert_eq!(r.len(), 4);
    assert_eq!(&r[0][..5], b"\xffSMB\x72");
    assert_eq!(le16(&r[0], 33), Some(1), "dialect index of NT LM 0.12");
    assert_eq!(r[0][66], 8, "challenge length (no extended security)");
    assert_eq!(le32(&r[1], 5), Some(STATUS_LOGON_FAILURE));
    assert_eq!(le32(&r[2], 5), Some(STATUS_SUCCESS), "null session");
    assert_eq!(native_os(&r[2]), "Windows Server 2016 Standard 14393");
    assert_eq!(le32(&r[3], 5), Some(0xc000_0022), "tree connect refused");
    let auth: Vec<_> = events
        .iter()
        .filter(|e| e.kind == AttackKind::Auth)
        .collect();
    assert_eq!(auth.len(), 2);
    assert_eq!(auth[0].details.username.as_deref(), Some("guest"));
    assert_eq!(auth[0].details.extra["hash_mode"], 5500);
    assert_eq!(auth[1].details.extra["anonymous"], true);
    assert_eq!(f["null_session"], true);
    assert_eq!(f["dialect"], "NT LM 0.12");
}

fn run_raw(input: &[u8]) -> (Vec<u8>, Fields, Vec<crate::log::AttackEvent>) {
    run_cfg(json!({"domain": "acme.corp"}), input)
}

fn run_cfg(
    cfg: serde_json::Value,
    input: &[u8],
) -> (Vec<u8>, Fields, Vec<crate::log::AttackEvent>) {
    let c = crate::protocols::testing::ctx("smb", cfg);
    let (report, sink) = crate::protocols::testing::reporter("smb", 445);
    let mut m = crate::protocols::testing::Mock::new(input);
    let mut f = Fields::new();
    crate::protocols::handle(
        &c,
        &crate::protocols::testing::peer(445),
        &report,
        &mut m,
        &mut f,
    )
    .expect("ok");
    (m.output, f, sink.events())
}

#[test]
fn ntlm_session_setup_is_recorded_and_refused() {
    let mut neg = ntlm::SIGNATURE.to_vec();
    neg.extend_from_slice(&1u32.to_le_bytes());
    neg.extend_from_slice(&0xe208_8297u32.to_le_bytes());
    neg.extend_from_slice(&[0; 16]);
    let nt: Vec<u8> = (0u8..48).collect();
    let auth = authenticate("alice", "ACME", "KALI", &[0; 24], &nt);
    let input = [
        frame(&negotiate(&[0x0202, 0x0311])),
        frame(&session_setup(1, &ntlm::tlv(0x60, &neg))),
        frame(&session_setup(2, &ntlm::tlv(0xa1, &auth))),
    ]
    .concat();
    let (out, f, events) = run_raw(&input);
    let r = replies(&out);
    assert_eq!(r.len(), 3);
    assert_eq!(le16(&r[0], 64 + 4), Some(0x0311));
    assert_eq!(le16(&r[0], 64 + 6), Some(1), "preauth context");
    assert_eq!(status(&r[1]), STATUS_MORE_PROCESSING_REQUIRED);
    let challenge = ntlm::find(&r[1]).expect("challenge in the response");
    assert_eq!(ntlm::message_type(challenge), Some(2));
    let server_challenge = &challenge[24..32];
    assert_eq!(status(&r[2]), STATUS_LOGON_FAILURE);
    let auth_ev: Vec<_> = events
        .iter()
        .filter(|e| e.kind == AttackKind::Auth)
        .collect();
    assert_eq!(auth_ev.len(), 1);
    let d = &auth_ev[0].details;
    assert_eq!(d.username.as_deref(), Some("alice"));
    assert_eq!(d.method.as_deref(), Some("ntlm"));
    assert_eq!(d.accepted, Some(false));
    assert_eq!(d.extra["domain"], "ACME");
    assert_eq!(d.extra["workstation"], "KALI");
    assert_eq!(d.extra["hash_mode"], 5600);
    let want = format!(
        "alice::ACME:{}:{}:{}",
        crate::util::hex(server_challenge),
        crate::util::hex(&nt[..16]),
        crate::util::hex(&nt[16..])
    );
    assert_eq!(d.hash.as_deref(), Some(want.as_str()));
    assert_eq!(f["username"], "alice");
    assert_eq!(f["credentials"][0]["hash"], want.as_str());
}

#[test]
fn netbios_session_request_and_other_commands() {
    let input = [
        vec![0x81, 0, 0, 4, 1, 2, 3, 4],
        frame(&request(ECHO, 5, &[4, 0, 0, 0])),
        frame(&request(3, 6, &[9, 0])),
    ]
    .concat();
    let (out, f, _) = run_raw(&input);
    assert_eq!(&out[..4], &[0x82, 0, 0, 0]);
    let r = replies(&out[4..]);
    assert_eq!(status(&r[0]), STATUS_SUCCESS);
    assert_eq!(le64(&r[0], 24), Some(5), "message id echoed");
    assert_eq!(status(&r[1]), STATUS_USER_SESSION_DELETED);
    assert_eq!(f["netbios_session"], true);
}

#[test]
fn oversized_frames_are_refused() {
    let c = crate::protocols::testing::ctx("smb", json!({}));
    let (report, _) = crate::protocols::testing::reporter("smb", 445);
    let mut m = crate::protocols::testing::Mock::new(&[0, 0xff, 0xff, 0xff]);
    let mut f = Fields::new();
    let r = crate::protocols::handle(
        &c,
        &crate::protocols::testing::peer(445),
        &report,
        &mut m,
        &mut f,
    );
    assert!(r.is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    /// Random frames, and valid requests with a byte changed or cut short, never panic.
    #[test]
    fn hostile_messages_never_panic(
        data in proptest::collection::vec(any::<u8>(), 0..1024),
        at in any::<usize>(),
        byte in any::<u8>(),
        cut in any::<usize>(),
    ) {
        let _ = parse_negotiate(&data);
        let _ = parse_smb1_negotiate(&data);
        let _ = session_setup_token(&data);
        let mut plain = smb1_plain_setup("user", &[1; 24], &data);
        let i = at % plain.len();
        plain[i] = byte;
        plain.truncate(cut % (plain.len() + 1));
        for flags2 in [0x6041u16, 0xc843] {
            let mut ext = smb1_request(0x73, flags2, &[0xff; 24], &data);
            ext[5 + at % 20] = byte;
            let c = crate::protocols::testing::ctx("smb", json!({}));
            let (report, _) = crate::protocols::testing::reporter("smb", 445);
            let mut neg = smb1_negotiate(&["NT LM 0.12"]);
            neg[10..12].copy_from_slice(&flags2.to_le_bytes());
            let input = [frame(&neg), frame(&plain), frame(&ext), frame(&data)].concat();
            let mut mock = crate::protocols::testing::Mock::new(&input);
            let mut f = Fields::new();
            let _ = crate::protocols::handle(&c, &crate::protocols::testing::peer(445), &report, &mut mock, &mut f);
        }
        for mut m in [negotiate(&[0x0311, 0x0202]), session_setup(1, &data), smb1_negotiate(&["SMB 2.???"])] {
            let i = at % m.len();
            m[i] = byte;
            m.truncate(cut % (m.len() + 1));
            let _ = parse_negotiate(&m);
            let _ = parse_smb1_negotiate(&m);
            let c = crate::protocols::testing::ctx("smb", json!({}));
            let (report, _) = crate::protocols::testing::reporter("smb", 445);
            let mut mock = crate::protocols::testing::Mock::new(&[frame(&m), frame(&data)].concat());
            let mut f = Fields::new();
            let _ = crate::protocols::handle(&c, &crate::protocols::testing::peer(445), &report, &mut mock, &mut f);
        }
    }
}

//! The Windows honeypots against real clients: Samba's `smbclient`, impacket (SMB and TDS),
//! FreeTDS's `tsql`, OpenLDAP's `ldapsearch`, FreeRDP's `xfreerdp +auth-only` (under
//! `xvfb-run`), `dig` (LLMNR's wire format) and nmap's service detection and scripts. Every
//! recorded NTLMv2 response is checked by recomputing NTProofStr from the client's password.
//! The tools are required (CI installs them through scripts/setup); a missing one fails the
//! test naming its package.

mod common;

use std::process::{Command, Output};

use common::Decky;
use hmac::{Hmac, Mac};
use md4::{Digest, Md4};
use md5::Md5;
use serde_json::Value;

fn tool(name: &str, package: &str) -> Command {
    common::tool_with_timeout(name, package, 60)
}

/// `smbclient -L //127.0.0.1 -p <port> <args…>` against `d`.
fn smbclient_list(d: &Decky, args: &[&str]) -> Output {
    tool("smbclient", "smbclient")
        .args(["-L", "//127.0.0.1", "-p", &d.port.to_string()])
        .args(args)
        .output()
        .expect("run smbclient")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

const PERSONA: &str = r#"{"domain": "acme.corp", "os_version": "10.0.17763"}"#;

fn utf16(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn hmac_md5(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut m = <Hmac<Md5> as Mac>::new_from_slice(key).expect("any key length");
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().to_vec()
}

/// NTProofStr of a hashcat 5600 line, recomputed from the password (MS-NLMP 3.3.2).
fn check_ntlmv2(line: &str, password: &str) {
    let parts: Vec<&str> = line.split(':').collect();
    assert_eq!(parts.len(), 6, "user::domain:challenge:proof:blob: {line}");
    let (user, domain, challenge, proof, blob) = (parts[0], parts[2], parts[3], parts[4], parts[5]);
    let nt_hash = Md4::digest(utf16(password));
    let owf = hmac_md5(&nt_hash, &[&utf16(&user.to_uppercase()), &utf16(domain)]);
    let want = hmac_md5(&owf, &[&unhex(challenge), &unhex(blob)]);
    assert_eq!(
        proof,
        want.iter().map(|b| format!("{b:02x}")).collect::<String>(),
        "NTProofStr does not match the password: {line}"
    );
    // And a wrong password does not match (the check can fail).
    let nt_hash = Md4::digest(utf16("not-the-password"));
    let owf = hmac_md5(&nt_hash, &[&utf16(&user.to_uppercase()), &utf16(domain)]);
    let other = hmac_md5(&owf, &[&unhex(challenge), &unhex(blob)]);
    assert_ne!(unhex(proof), other);
}

fn of_kind<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["kind"] == kind).collect()
}

/// The AV pairs of the blob of an NTLMv2 response: (id, UTF-16 text).
fn blob_names(blob: &[u8]) -> Vec<(u16, String)> {
    let mut out = Vec::new();
    let mut at = 28;
    while at + 4 <= blob.len() {
        let id = u16::from_le_bytes([blob[at], blob[at + 1]]);
        let len = usize::from(u16::from_le_bytes([blob[at + 2], blob[at + 3]]));
        if id == 0 || at + 4 + len > blob.len() {
            break;
        }
        let units: Vec<u16> = blob[at + 4..at + 4 + len]
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        out.push((id, String::from_utf16_lossy(&units)));
        at += 4 + len;
    }
    out
}

#[test]
fn smbclient_ntlmv2_is_recorded_and_verifiable() {
    let d = Decky::serve("smb", Some(PERSONA));
    let out = smbclient_list(&d, &["-U", "alice%Winter2026!", "-W", "ACME"]);
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("NT_STATUS_LOGON_FAILURE"), "{said}");
    let events = d.session_events();
    let auth = of_kind(&events, "auth");
    assert_eq!(auth.len(), 1, "{events:?}");
    let a = &auth[0]["details"];
    assert_eq!(a["username"], "alice", "{a}");
    assert_eq!(a["domain"], "ACME", "{a}");
    assert_eq!(a["method"], "ntlm", "{a}");
    assert_eq!(a["accepted"], false, "{a}");
    assert_eq!(a["hash_mode"], 5600, "{a}");
    assert!(
        a["workstation"].as_str().is_some_and(|w| !w.is_empty()),
        "{a}"
    );
    let line = a["hash"].as_str().expect("hashcat line");
    assert!(line.starts_with("alice::ACME:"), "{line}");
    check_ntlmv2(line, "Winter2026!");
    // The client echoes the server's target info in its blob: the persona's names.
    let blob = unhex(line.rsplit(':').next().expect("blob"));
    let names = blob_names(&blob);
    let name = |id: u16| names.iter().find(|(i, _)| *i == id).map(|(_, n)| n.clone());
    assert_eq!(name(1).as_deref(), Some("DECOY-HOST"), "{names:?}");
    assert_eq!(name(2).as_deref(), Some("ACME"), "{names:?}");
    assert_eq!(
        name(3).as_deref(),
        Some("decoy-host.acme.corp"),
        "{names:?}"
    );
    assert_eq!(name(4).as_deref(), Some("acme.corp"), "{names:?}");
    let end = events.last().expect("disconnect");
    common::assert_connection_event(end, "smb", d.port);
    assert_eq!(end["details"]["dialect"], "3.1.1", "{end}");
}

#[test]
fn smbclient_over_smb2_02_and_smb1_upgrade() {
    let d = Decky::serve("smb", Some(PERSONA));
    // Offering NT1 first makes Samba send an SMB1 NEGOTIATE that the server upgrades to SMB2.
    let out = smbclient_list(
        &d,
        &[
            "-U",
            "bob%hunter2",
            "-m",
            "SMB2_02",
            "--option=client min protocol=NT1",
        ],
    );
    let said = text(&out);
    assert!(said.contains("NT_STATUS_LOGON_FAILURE"), "{said}");
    let events = d.session_events();
    let auth = of_kind(&events, "auth");
    assert_eq!(auth.len(), 1, "{events:?}");
    check_ntlmv2(
        auth[0]["details"]["hash"].as_str().expect("hash"),
        "hunter2",
    );
    let end = &events.last().expect("disconnect")["details"];
    assert_eq!(end["dialect"], "2.0.2", "{end}");
    assert!(end["smb1_dialects"].is_array(), "{end}");
}

#[test]
fn nmap_smb_scripts_see_the_persona() {
    let d = Decky::serve("smb", Some(PERSONA));
    let port = d.port.to_string();
    let out = tool("nmap", "nmap")
        .args(["-Pn", "-n", "-p", &port])
        .args(["--script", "smb2-security-mode,smb-protocols,smb2-time"])
        .args(["--script-args", &format!("smbport={port}")])
        .arg("127.0.0.1")
        .output()
        .expect("run nmap");
    let said = text(&out);
    assert!(said.contains("smb-protocols"), "{said}");
    for dialect in ["202", "210", "300", "302", "311"] {
        assert!(said.contains(dialect), "dialect {dialect}: {said}");
    }
    assert!(
        said.contains("Message signing enabled but not required"),
        "{said}"
    );
    assert!(said.contains("smb2-time"), "{said}");
}

/// `tsql -H 127.0.0.1 -p PORT -U user -P pass` with no commands: just the login.
fn tsql(d: &Decky, user: &str, pass: &str) -> String {
    let out = tool("tsql", "freetds-bin")
        .args([
            "-H",
            "127.0.0.1",
            "-p",
            &d.port.to_string(),
            "-U",
            user,
            "-P",
            pass,
        ])
        .output()
        .expect("run tsql");
    text(&out)
}

#[test]
fn tsql_login_password_is_recorded_and_refused() {
    let d = Decky::serve("mssql", Some(PERSONA));
    let said = tsql(&d, "sa", "Sup3r$ecret!");
    assert!(said.contains("Msg 18456"), "{said}");
    assert!(said.contains("Login failed for user 'sa'."), "{said}");
    assert!(said.contains("from DECOY-HOST"), "{said}");
    let events = d.session_events();
    let auth = of_kind(&events, "auth");
    assert_eq!(auth.len(), 1, "{events:?}");
    let a = &auth[0]["details"];
    assert_eq!(a["username"], "sa", "{a}");
    assert_eq!(a["password"], "Sup3r$ecret!", "{a}");
    assert_eq!(a["method"], "password", "{a}");
    assert_eq!(a["app_name"], "TSQL", "{a}");
    common::assert_connection_event(events.last().expect("disconnect"), "mssql", d.port);
}

#[test]
fn tsql_windows_login_gives_an_ntlmv2_hash() {
    let d = Decky::serve("mssql", Some(PERSONA));
    // FreeTDS uses NTLM for a DOMAIN\user login.
    let said = tsql(&d, "ACME\\carol", "Summer2026");
    assert!(
        said.contains("Login failed for user 'ACME\\carol'."),
        "{said}"
    );
    let events = d.session_events();
    let auth = of_kind(&events, "auth");
    assert_eq!(auth.len(), 1, "{events:?}");
    let a = &auth[0]["details"];
    assert_eq!(a["username"], "carol", "{a}");
    assert_eq!(a["carrier"], "mssql", "{a}");
    check_ntlmv2(a["hash"].as_str().expect("hash"), "Summer2026");
}

#[test]
fn nmap_names_sql_server_and_its_version() {
    let d = Decky::serve(
        "mssql",
        Some(r#"{"domain": "acme.corp", "version": "15.0.4153.1"}"#),
    );
    let out = tool("nmap", "nmap")
        .args(["-Pn", "-n", "-sV", "-p", &d.port.to_string(), "127.0.0.1"])
        .output()
        .expect("run nmap");
    let said = text(&out);
    assert!(
        said.contains("Microsoft SQL Server 2019 15.00.4153"),
        "{said}"
    );
}

fn ldapsearch(d: &Decky, args: &[&str]) -> Output {
    tool("ldapsearch", "ldap-utils")
        .args(["-x", "-H", &format!("ldap://127.0.0.1:{}", d.port)])
        .args(args)
        .output()
        .expect("run ldapsearch")
}

#[test]
fn ldapsearch_reads_the_root_dse() {
    let d = Decky::serve("ldap", Some(PERSONA));
    let out = ldapsearch(&d, &["-s", "base", "-b", ""]);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    for line in [
        "defaultNamingContext: DC=acme,DC=corp",
        "namingContexts: CN=Configuration,DC=acme,DC=corp",
        "dnsHostName: decoy-host.acme.corp",
        "supportedLDAPVersion: 3",
        "supportedSASLMechanisms: GSS-SPNEGO",
        "ldapServiceName: acme.corp:decoy-host$@ACME.CORP",
    ] {
        assert!(said.contains(line), "{line}: {said}");
    }
    let events = d.session_events();
    let cmds = of_kind(&events, "command");
    assert!(
        cmds.iter().any(|c| c["details"]["command"]
            .as_str()
            .is_some_and(|s| s.contains("scope=0"))),
        "{events:?}"
    );
}

#[test]
fn ldapsearch_simple_bind_is_recorded_and_refused() {
    let d = Decky::serve("ldap", Some(PERSONA));
    let dn = "CN=svc_backup,CN=Users,DC=acme,DC=corp";
    let out = ldapsearch(
        &d,
        &["-D", dn, "-w", "Backup#2026", "-b", "DC=acme,DC=corp"],
    );
    let said = text(&out);
    assert_eq!(out.status.code(), Some(49), "{said}");
    assert!(said.contains("Invalid credentials (49)"), "{said}");
    assert!(said.contains("data 52e"), "{said}");
    let events = d.session_events();
    let auth = of_kind(&events, "auth");
    assert_eq!(auth.len(), 1, "{events:?}");
    assert_eq!(auth[0]["details"]["username"], dn);
    assert_eq!(auth[0]["details"]["password"], "Backup#2026");
    assert_eq!(auth[0]["details"]["method"], "simple");
    common::assert_connection_event(events.last().expect("disconnect"), "ldap", d.port);
}

#[test]
fn nmap_names_active_directory() {
    let d = Decky::serve("ldap", Some(PERSONA));
    let out = tool("nmap", "nmap")
        .args(["-Pn", "-n", "-sV", "-p", &d.port.to_string()])
        .args(["--script", "ldap-rootdse", "127.0.0.1"])
        .output()
        .expect("run nmap");
    let said = text(&out);
    assert!(
        said.contains(
            "Microsoft Windows Active Directory LDAP (Domain: acme.corp, Site: Default-First-Site-Name)"
        ),
        "{said}"
    );
    assert!(said.contains("dnsHostName: decoy-host.acme.corp"), "{said}");
}

#[test]
fn nmap_rdp_ntlm_info_shows_the_persona() {
    let d = Decky::serve("rdp", Some(PERSONA));
    let out = tool("nmap", "nmap")
        .args(["-Pn", "-n", "-sV", "-p", &d.port.to_string()])
        .args(["--script", "rdp-ntlm-info", "127.0.0.1"])
        .output()
        .expect("run nmap");
    let said = text(&out);
    for line in [
        "ms-wbt-server Microsoft Terminal Services",
        "NetBIOS_Domain_Name: ACME",
        "NetBIOS_Computer_Name: DECOY-HOST",
        "DNS_Domain_Name: acme.corp",
        "DNS_Computer_Name: decoy-host.acme.corp",
        "Product_Version: 10.0.17763",
    ] {
        assert!(said.contains(line), "{line}: {said}");
    }
    // nmap's cookie user is recorded from the X.224 request.
    // (nmap is done, so the event is already in the stream; a missing one times out.)
    let mut seen = 0;
    loop {
        let e = d.next_event();
        if e["kind"] == "client" && e["details"]["username"] == "nmap" {
            assert_eq!(e["details"]["cookie"], "mstshash=nmap", "{e}");
            break;
        }
        seen += 1;
        assert!(seen < 1000, "no client event with the cookie user");
    }
}

#[test]
fn xfreerdp_auth_only_ntlmv2_is_recorded_and_verifiable() {
    let d = Decky::serve("rdp", Some(PERSONA));
    // FreeRDP writes its known-hosts files under $HOME: a throwaway one.
    let home = std::env::temp_dir().join(format!("decky-rdp-{}-{}", std::process::id(), d.port));
    std::fs::create_dir_all(&home).expect("temp home");
    tool("xfreerdp", "freerdp2-x11"); // fails here, naming the package, when missing
    let out = tool("xvfb-run", "xvfb xauth")
        .args(["-a", "xfreerdp"])
        .arg(format!("/v:127.0.0.1:{}", d.port))
        .args([
            "/u:dave",
            "/p:Autumn#2026",
            "/d:ACME",
            "/cert:ignore",
            "+auth-only",
        ])
        .env("HOME", &home)
        .output()
        .expect("run xfreerdp");
    let _ = std::fs::remove_dir_all(&home);
    let said = text(&out);
    assert!(said.contains("ERRCONNECT_LOGON_FAILURE"), "{said}");
    let events = d.session_events();
    let client = of_kind(&events, "client");
    assert!(!client.is_empty(), "{events:?}");
    let auth = of_kind(&events, "auth");
    assert_eq!(auth.len(), 1, "{events:?}");
    let a = &auth[0]["details"];
    assert_eq!(a["username"], "dave", "{a}");
    assert_eq!(a["domain"], "ACME", "{a}");
    assert_eq!(a["carrier"], "rdp", "{a}");
    check_ntlmv2(a["hash"].as_str().expect("hash"), "Autumn#2026");
    let end = &events.last().expect("disconnect")["details"];
    assert_eq!(end["selected_protocol"], 2, "{end}");
    assert_eq!(end["tls"], true, "{end}");
}

#[test]
fn llmnr_answers_its_own_name_and_records_every_query() {
    let udp_port = common::free_udp_port();
    let spec = format!("{udp_port}/udp");
    let d = Decky::serve_with("llmnr", Some(PERSONA), &["--port", &spec]);
    // dig speaks the same wire format as LLMNR.
    let dig = |name: &str| {
        let out = tool("dig", "bind9-dnsutils")
            .args(["@127.0.0.1", "-p", &udp_port.to_string()])
            .args(["+tries=1", "+time=5", "+norecurse", name, "A"])
            .output()
            .expect("run dig");
        text(&out)
    };
    let said = dig("DECOY-HOST");
    assert!(said.contains("ANSWER: 1"), "{said}");
    assert!(said.contains("IN\tA\t127.0.0.1"), "{said}");
    let ev = d.event();
    assert_eq!(ev["kind"], "datagram", "{ev}");
    assert_eq!(ev["protocol"], "udp", "{ev}");
    assert_eq!(ev["details"]["query_name"], "DECOY-HOST", "{ev}");
    assert_eq!(ev["details"]["query_type"], "A", "{ev}");
    assert_eq!(ev["details"]["answered"], true, "{ev}");
    assert!(
        ev["details"]["bytes_out"].as_u64().is_some_and(|n| n > 0),
        "{ev}"
    );
    // Another name: recorded, never answered (dig times out).
    let said = dig("wpad");
    assert!(!said.contains("ANSWER: 1"), "{said}");
    let ev = d.event();
    assert_eq!(ev["details"]["query_name"], "wpad", "{ev}");
    assert_eq!(ev["details"]["answered"], false, "{ev}");
}

#[test]
fn nmap_smb_os_discovery_on_445_names_the_persona() {
    // smb-os-discovery and smb-security-mode only look at 445/139 (the script crashes on any
    // other port), so this one test binds 127.0.0.1:445; nothing else in the suite does.
    assert!(
        std::net::TcpListener::bind("127.0.0.1:445").is_ok(),
        "127.0.0.1:445 must be free (and the test run as root) for smb-os-discovery"
    );
    let d = Decky::serve_on(
        "smb",
        Some(r#"{"domain": "acme.corp", "os_version": "10.0.14393"}"#),
        445,
    );
    let out = tool("nmap", "nmap")
        .args(["-Pn", "-n", "-p", "445"])
        .args([
            "--script",
            "smb-os-discovery,smb-security-mode,smb-protocols",
        ])
        .arg("127.0.0.1")
        .output()
        .expect("run nmap");
    let said = text(&out);
    for line in [
        "OS: Windows Server 2016 Standard 14393 (Windows Server 2016 Standard 6.3)",
        "Computer name: decoy-host",
        "NetBIOS computer name: DECOY-HOST",
        "Domain name: acme.corp",
        "FQDN: decoy-host.acme.corp",
        "message_signing: disabled (dangerous, but default)",
        "NT LM 0.12 (SMBv1) [dangerous, but default]",
    ] {
        assert!(said.contains(line), "{line}: {said}");
    }
    drop(d);
}

#[test]
fn smbclient_over_smb1_extended_security() {
    let d = Decky::serve("smb", Some(PERSONA_2016));
    let out = smbclient_list(
        &d,
        &[
            "-U",
            "erin%Spring!26",
            "-m",
            "NT1",
            "--option=client min protocol=NT1",
        ],
    );
    let said = text(&out);
    assert!(said.contains("NT_STATUS_LOGON_FAILURE"), "{said}");
    let events = d.session_events();
    let auth = of_kind(&events, "auth");
    assert_eq!(auth.len(), 1, "{events:?}");
    check_ntlmv2(
        auth[0]["details"]["hash"].as_str().expect("hash"),
        "Spring!26",
    );
    let end = &events.last().expect("disconnect")["details"];
    assert_eq!(end["dialect"], "NT LM 0.12", "{end}");
    assert_eq!(end["client_native_os"], "Unix", "{end}");
}

/// Windows Server 2016 still answers SMB1.
const PERSONA_2016: &str = r#"{"domain": "acme.corp", "os_version": "10.0.14393"}"#;

#[test]
fn ldapsearch_over_ldaps_on_636() {
    // Implicit TLS is the service's on 636 only, so this one test binds 127.0.0.1:636.
    assert!(
        std::net::TcpListener::bind("127.0.0.1:636").is_ok(),
        "127.0.0.1:636 must be free (and the test run as root) for LDAPS"
    );
    let d = Decky::serve_on("ldap", Some(PERSONA), 636);
    let out = tool("ldapsearch", "ldap-utils")
        .args([
            "-x",
            "-H",
            "ldaps://127.0.0.1:636",
            "-D",
            "ACME\\frank",
            "-w",
            "Tls#Pass1",
        ])
        .args(["-b", "DC=acme,DC=corp"])
        .env("LDAPTLS_REQCERT", "never")
        .output()
        .expect("run ldapsearch");
    let said = text(&out);
    assert!(said.contains("Invalid credentials (49)"), "{said}");
    let events = d.session_events();
    let auth = of_kind(&events, "auth");
    assert_eq!(auth.len(), 1, "{events:?}");
    assert_eq!(auth[0]["details"]["username"], "ACME\\frank");
    assert_eq!(auth[0]["details"]["password"], "Tls#Pass1");
    assert_eq!(events.last().expect("disconnect")["details"]["tls"], true);
}

/// Runs a Python script against Debian's impacket (a second SMB and TDS implementation).
fn impacket(script: &str) -> String {
    let mut c = tool("/usr/bin/python3", "python3");
    let out = c.args(["-c", script]).output().expect("run python3");
    let said = text(&out);
    assert!(
        !said.contains("No module named 'impacket'"),
        "impacket is required for this test (apt-get install python3-impacket): {said}"
    );
    said
}

#[test]
fn impacket_smb_and_tds_logins_are_recorded() {
    let smb = Decky::serve("smb", Some(PERSONA));
    let sql = Decky::serve("mssql", Some(PERSONA));
    let said = impacket(&format!(
        r#"
from impacket.smbconnection import SMBConnection
from impacket import tds
c = SMBConnection('127.0.0.1', '127.0.0.1', sess_port={})
try:
    c.login('grace', 'Imp@cket1', 'ACME')
except Exception as e:
    print('smb:', e)
print('server:', c.getServerName(), c.getServerDomain(), c.getServerDNSDomainName(), c.getServerOS())
m = tds.MSSQL('127.0.0.1', {})
m.connect()
print('tds login:', m.login(None, 'sa', 'Imp@cket2'))
"#,
        smb.port, sql.port
    ));
    assert!(said.contains("STATUS_LOGON_FAILURE"), "{said}");
    assert!(
        said.contains("server: DECOY-HOST ACME acme.corp Windows 10.0 Build 17763"),
        "{said}"
    );
    assert!(said.contains("tds login: False"), "{said}");
    let events = smb.session_events();
    let auth = of_kind(&events, "auth");
    assert_eq!(auth.len(), 1, "{events:?}");
    assert_eq!(auth[0]["details"]["username"], "grace");
    check_ntlmv2(
        auth[0]["details"]["hash"].as_str().expect("hash"),
        "Imp@cket1",
    );
    let events = sql.session_events();
    let auth = of_kind(&events, "auth");
    assert_eq!(auth.len(), 1, "{events:?}");
    assert_eq!(auth[0]["details"]["username"], "sa");
    assert_eq!(auth[0]["details"]["password"], "Imp@cket2");
}

#[test]
fn smbclient_null_session_is_let_in_and_its_shares_refused() {
    let d = Decky::serve("smb", Some(PERSONA));
    let out = tool("smbclient", "smbclient")
        .args([
            "-N",
            "//127.0.0.1/C$",
            "-p",
            &d.port.to_string(),
            "-c",
            "ls",
        ])
        .output()
        .expect("run smbclient");
    let said = text(&out);
    assert!(said.contains("Anonymous login successful"), "{said}");
    assert!(
        said.contains("tree connect failed: NT_STATUS_ACCESS_DENIED"),
        "{said}"
    );
    // Samba first tries the local user without a password, then anonymous: both recorded.
    let events: Vec<Value> = std::iter::from_fn(|| {
        let e = d.next_event();
        Some(e)
    })
    .take_while(|e| e["details"]["path"] != "\\\\127.0.0.1\\C$")
    .collect();
    let anon = events
        .iter()
        .filter(|e| e["kind"] == "auth" && e["details"]["anonymous"] == true)
        .count();
    assert!(anon >= 1, "{events:?}");
}

#[test]
fn tsql_with_required_encryption_logs_in_over_tls() {
    let d = Decky::serve("mssql", Some(PERSONA));
    // FreeTDS reads its settings from $FREETDSCONF: require encryption (TLS inside PRELOGIN).
    let dir = std::env::temp_dir().join(format!("decky-tds-{}-{}", std::process::id(), d.port));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let conf = dir.join("freetds.conf");
    std::fs::write(
        &conf,
        "[global]\n\tencryption = require\n\ttds version = 7.4\n",
    )
    .expect("conf");
    let out = tool("tsql", "freetds-bin")
        .args([
            "-H",
            "127.0.0.1",
            "-p",
            &d.port.to_string(),
            "-U",
            "sa",
            "-P",
            "Enc#Pass1",
        ])
        .env("FREETDSCONF", &conf)
        .output()
        .expect("run tsql");
    let _ = std::fs::remove_dir_all(&dir);
    let said = text(&out);
    assert!(said.contains("Login failed for user 'sa'."), "{said}");
    let events = d.session_events();
    let auth = of_kind(&events, "auth");
    assert_eq!(auth.len(), 1, "{events:?}");
    assert_eq!(auth[0]["details"]["password"], "Enc#Pass1");
    let end = &events.last().expect("disconnect")["details"];
    assert_eq!(end["tls"], true, "{end}");
    assert_eq!(end["client_encryption"], 1, "{end}");
}

#[test]
fn impacket_ldap_ntlm_sicily_bind_is_recorded() {
    let d = Decky::serve("ldap", Some(PERSONA));
    // impacket's LDAPConnection only dials 389: its address lookup is pointed at the decky.
    let said = impacket(&format!(
        r#"
import socket
real = socket.getaddrinfo
socket.getaddrinfo = lambda h, p, *a: real(h, {} if p == 389 else p, *a)
from impacket.ldap import ldap
c = ldap.LDAPConnection('ldap://127.0.0.1', 'DC=acme,DC=corp')
try:
    c.login('heidi', 'Ld@pNtlm1', 'ACME')
except Exception as e:
    print('ldap:', e)
"#,
        d.port
    ));
    assert!(said.contains("invalidCredentials"), "{said}");
    assert!(said.contains("data 52e"), "{said}");
    let events = d.session_events();
    let auth = of_kind(&events, "auth");
    assert_eq!(auth.len(), 1, "{events:?}");
    assert_eq!(auth[0]["details"]["username"], "heidi");
    assert_eq!(auth[0]["details"]["carrier"], "ldap");
    check_ntlmv2(
        auth[0]["details"]["hash"].as_str().expect("hash"),
        "Ld@pNtlm1",
    );
    assert_eq!(
        events.last().expect("disconnect")["details"]["sicily"],
        true
    );
}

#[test]
fn xfreerdp_over_tls_without_nla_names_its_machine() {
    let d = Decky::serve(
        "rdp",
        Some(r#"{"domain": "acme.corp", "os_version": "10.0.17763", "nla": false}"#),
    );
    let home =
        std::env::temp_dir().join(format!("decky-rdp-tls-{}-{}", std::process::id(), d.port));
    std::fs::create_dir_all(&home).expect("temp home");
    tool("xfreerdp", "freerdp2-x11");
    let out = tool("xvfb-run", "xvfb xauth")
        .args(["-a", "xfreerdp"])
        .arg(format!("/v:127.0.0.1:{}", d.port))
        .args(["/u:mallory", "/p:x", "/sec:tls", "/cert:ignore"])
        .env("HOME", &home)
        .output()
        .expect("run xfreerdp");
    let _ = std::fs::remove_dir_all(&home);
    let events = d.session_events();
    let client = of_kind(&events, "client");
    let core = client
        .iter()
        .find(|e| e["details"]["client_name"].is_string())
        .unwrap_or_else(|| panic!("no client core data: {events:?} {}", text(&out)));
    assert!(
        core["details"]["client_name"]
            .as_str()
            .is_some_and(|n| !n.is_empty()),
        "{core}"
    );
    assert!(core["details"]["client_build"].as_u64().is_some(), "{core}");
    let end = &events.last().expect("disconnect")["details"];
    assert_eq!(end["selected_protocol"], 1, "{end}");
    assert_eq!(end["username"], "mallory", "{end}");
}

#[test]
fn nmap_and_impacket_see_a_workstation_persona_build() {
    // No os_version setting: the build comes from the decky's persona (DECNET_ARCHETYPE,
    // DECNET_OS as decnet-docker passes them), read back by impacket and nmap.
    let persona = [
        ("DECNET_ARCHETYPE", "windows-workstation"),
        ("DECNET_OS", "windows"),
    ];
    let config = Some(r#"{"domain": "acme.corp"}"#);
    let smb = Decky::serve_with_env("smb", config, &persona);
    let said = impacket(&format!(
        r#"
from impacket.smbconnection import SMBConnection
c = SMBConnection('127.0.0.1', '127.0.0.1', sess_port={})
try:
    c.login('henry', 'Work$tation1', 'ACME')
except Exception as e:
    print('smb:', e)
print('server:', c.getServerName(), c.getServerOS(), c.getServerOSBuild())
print('signing required:', c.isSigningRequired())
"#,
        smb.port
    ));
    assert!(
        said.contains("server: DECOY-HOST Windows 10.0 Build 19045 19045"),
        "{said}"
    );
    assert!(said.contains("signing required: False"), "{said}");
    let rdp = Decky::serve_with_env("rdp", config, &persona);
    let out = tool("nmap", "nmap")
        .args(["-Pn", "-n", "-sV", "-p", &rdp.port.to_string()])
        .args(["--script", "rdp-ntlm-info", "127.0.0.1"])
        .output()
        .expect("run nmap");
    let said = text(&out);
    assert!(said.contains("Product_Version: 10.0.19045"), "{said}");
}

#[test]
fn a_domain_controller_persona_requires_smb_signing() {
    let smb = Decky::serve_with_env(
        "smb",
        Some(r#"{"domain": "acme.corp"}"#),
        &[
            ("DECNET_ARCHETYPE", "domain-controller"),
            ("DECNET_OS", "windows_server"),
        ],
    );
    let said = impacket(&format!(
        r#"
from impacket.smbconnection import SMBConnection
c = SMBConnection('127.0.0.1', '127.0.0.1', sess_port={})
try:
    c.login('ivy', 'Dc$igning1', 'ACME')
except Exception as e:
    print('smb:', e)
print('server:', c.getServerOS())
print('signing required:', c.isSigningRequired())
"#,
        smb.port
    ));
    assert!(said.contains("server: Windows 10.0 Build 17763"), "{said}");
    assert!(said.contains("signing required: True"), "{said}");
}

#[test]
fn an_unknown_os_family_is_refused_at_start() {
    let out = common::command(
        &["serve", "smb", "--bind", "127.0.0.1", "--port", "1/tcp"],
        None,
    )
    .env("DECNET_OS", "amiga")
    .output()
    .expect("run decnet-decky");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains(r#"DECNET_OS: unknown nmap_os "amiga""#),
        "{}",
        text(&out)
    );
}

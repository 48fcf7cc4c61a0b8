//! Credentials in an HTTP request: `Authorization: Basic|Bearer`, login form fields (URL-encoded
//! body or query, JSON body) and WordPress XML-RPC calls. Pure.

use serde_json::Value;

use super::Request;
use crate::util::{b64_decode, clip};

/// One credential an attacker sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub username: Option<String>,
    pub password: String,
    /// `basic`, `bearer`, `form`, `json`, `xmlrpc` or `registry` (Docker's `X-Registry-Auth`).
    pub method: &'static str,
}

/// Longest credential string kept.
const MAX_CRED: usize = 256;

/// Form fields that name the user, as real login forms call them.
const USER_FIELDS: &[&str] = &[
    "log",
    "username",
    "user",
    "pma_username",
    "j_username",
    "account",
    "login",
    "email",
    "uname",
    "userid",
    "user_name",
    "usr",
];
/// Form fields that hold the password.
const PASS_FIELDS: &[&str] = &[
    "pwd",
    "password",
    "pass",
    "pma_password",
    "j_password",
    "passwd",
    "passwort",
    "pswd",
    "userpass",
];

/// `application/x-www-form-urlencoded` decoding of one component (`+` is a space).
pub fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex_val(b[i + 1]), hex_val(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_val(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// `a=1&b=2` → decoded pairs (at most 64).
pub fn form_pairs(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .take(64)
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (url_decode(k), url_decode(v)),
            None => (url_decode(p), String::new()),
        })
        .collect()
}

fn pick(pairs: &[(String, String)], names: &[&str]) -> Option<String> {
    names.iter().find_map(|n| {
        pairs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| clip(v.as_bytes(), MAX_CRED))
    })
}

fn from_pairs(pairs: &[(String, String)], method: &'static str) -> Option<Credential> {
    let password = pick(pairs, PASS_FIELDS)?;
    Some(Credential {
        username: pick(pairs, USER_FIELDS),
        password,
        method,
    })
}

/// The `Authorization` header's credential.
fn authorization(value: &str) -> Option<Credential> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        let raw = b64_decode(rest)?;
        let text = String::from_utf8_lossy(&raw);
        let (user, pass) = text.split_once(':').unwrap_or((&text, ""));
        return Some(Credential {
            username: Some(clip(user.as_bytes(), MAX_CRED)),
            password: clip(pass.as_bytes(), MAX_CRED),
            method: "basic",
        });
    }
    if scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token") {
        return Some(Credential {
            username: None,
            password: clip(rest.as_bytes(), 4096),
            method: "bearer",
        });
    }
    None
}

/// Docker's `X-Registry-Auth`: base64url JSON with `username` and `password` (or an
/// `identitytoken`).
fn registry_auth(value: &str) -> Option<Credential> {
    let std: String = value
        .trim()
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    let padded = format!("{std}{}", "=".repeat((4 - std.len() % 4) % 4));
    let raw = b64_decode(&padded)?;
    let v: Value = serde_json::from_slice(&raw).ok()?;
    let password = v["password"]
        .as_str()
        .or_else(|| v["identitytoken"].as_str())
        .filter(|p| !p.is_empty())?;
    Some(Credential {
        username: v["username"].as_str().map(|u| clip(u.as_bytes(), MAX_CRED)),
        password: clip(password.as_bytes(), 4096),
        method: "registry",
    })
}

/// The text of the first `n` `<string>` (or untyped `<value>`) parameters of an XML-RPC call.
fn xmlrpc_strings(body: &str, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = body;
    while out.len() < n {
        let Some(i) = rest.find("<value>") else { break };
        rest = &rest[i + 7..];
        let Some(end) = rest.find("</value>") else {
            break;
        };
        let v = rest[..end].trim();
        let v = v
            .strip_prefix("<string>")
            .and_then(|v| v.strip_suffix("</string>"))
            .unwrap_or(v);
        out.push(xml_unescape(v));
        rest = &rest[end..];
    }
    out
}

fn xml_unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// Every credential in `req`.
pub fn credentials(req: &Request) -> Vec<Credential> {
    let mut out = Vec::new();
    if let Some(c) = req.header("authorization").and_then(authorization) {
        out.push(c);
    }
    if let Some(c) = req.header("x-registry-auth").and_then(registry_auth) {
        out.push(c);
    }
    if let Some(q) = req.query() {
        out.extend(from_pairs(&form_pairs(q), "form"));
    }
    if req.body.is_empty() {
        return out;
    }
    let body = String::from_utf8_lossy(&req.body);
    let ct = req
        .header("content-type")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let trimmed = body.trim_start();
    if ct.contains("json") || trimmed.starts_with('{') {
        if let Ok(Value::Object(m)) = serde_json::from_str::<Value>(&body) {
            let pairs: Vec<(String, String)> = m
                .iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                .collect();
            out.extend(from_pairs(&pairs, "json"));
        }
    } else if ct.contains("xml")
        || trimmed.starts_with("<?xml")
        || trimmed.starts_with("<methodCall")
    {
        // wp.getUsersBlogs(user, pass); most other wp.* calls: (blog_id, user, pass, …).
        let name = body
            .split_once("<methodName>")
            .and_then(|(_, r)| r.split_once("</methodName>"))
            .map(|(n, _)| n.trim().to_owned())
            .unwrap_or_default();
        let strings = xmlrpc_strings(&body, 3);
        let (u, p) = match name.as_str() {
            "wp.getUsersBlogs" | "blogger.getUsersBlogs" | "metaWeblog.getUsersBlogs" => (0, 1),
            n if n.starts_with("wp.") || n.starts_with("metaWeblog.") => (1, 2),
            _ => (usize::MAX, usize::MAX),
        };
        if let (Some(user), Some(pass)) = (strings.get(u), strings.get(p)) {
            out.push(Credential {
                username: Some(clip(user.as_bytes(), MAX_CRED)),
                password: clip(pass.as_bytes(), MAX_CRED),
                method: "xmlrpc",
            });
        }
    } else if !ct.contains("multipart") {
        out.extend(from_pairs(&form_pairs(&body), "form"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn req(target: &str, headers: &[(&str, &str)], body: &str) -> Request {
        Request {
            method: "POST".into(),
            target: target.into(),
            version: "HTTP/1.1".into(),
            headers: headers
                .iter()
                .map(|(a, b)| ((*a).into(), (*b).into()))
                .collect(),
            body: body.as_bytes().to_vec(),
            body_len: body.len(),
        }
    }

    fn one(r: &Request) -> (Option<String>, String, &'static str) {
        let c = credentials(r);
        assert_eq!(c.len(), 1, "{c:?}");
        (c[0].username.clone(), c[0].password.clone(), c[0].method)
    }

    #[test]
    fn decoding() {
        assert_eq!(url_decode("a+b%20c%2"), "a b c%2");
        assert_eq!(url_decode("%zz%41"), "%zzA");
        assert_eq!(url_decode("%"), "%");
        assert_eq!(url_decode("p%40ss%26"), "p@ss&");
    }

    #[test]
    fn forms_headers_json_xmlrpc() {
        let s = |v: &str| Some(v.to_owned());
        let r = req(
            "/wp-login.php",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            "log=admin&pwd=hunter%212&wp-submit=Log+In",
        );
        assert_eq!(one(&r), (s("admin"), "hunter!2".into(), "form"));
        let r = req(
            "/index.php",
            &[],
            "pma_username=root&pma_password=&server=1",
        );
        assert_eq!(one(&r), (s("root"), String::new(), "form"));
        let r = req("/", &[("Authorization", "Basic dG9tY2F0OnMzY3JldA==")], "");
        assert_eq!(one(&r), (s("tomcat"), "s3cret".into(), "basic"));
        let r = req("/", &[("authorization", "Bearer eyJhbGciOi.x.y")], "");
        assert_eq!(one(&r), (None, "eyJhbGciOi.x.y".into(), "bearer"));
        let r = req(
            "/webapi/auth.cgi?api=SYNO.API.Auth&account=admin&passwd=admin",
            &[],
            "",
        );
        assert_eq!(one(&r), (s("admin"), "admin".into(), "form"));
        let r = req(
            "/api/login",
            &[("Content-Type", "application/json")],
            r#"{"username":"ops","password":"p"}"#,
        );
        assert_eq!(one(&r), (s("ops"), "p".into(), "json"));
        let r = req(
            "/xmlrpc.php",
            &[("Content-Type", "text/xml")],
            "<?xml version=\"1.0\"?><methodCall><methodName>wp.getUsersBlogs</methodName><params>\
             <param><value><string>admin</string></value></param>\
             <param><value><string>pa&amp;ss</string></value></param></params></methodCall>",
        );
        assert_eq!(one(&r), (s("admin"), "pa&ss".into(), "xmlrpc"));
        // {"username":"bob","password":"hunter2","serveraddress":"r.io"}, base64url, unpadded
        let r = req(
            "/images/create?fromImage=r.io/x",
            &[("X-Registry-Auth", "eyJ1c2VybmFtZSI6ImJvYiIsInBhc3N3b3JkIjoiaHVudGVyMiIsInNlcnZlcmFkZHJlc3MiOiJyLmlvIn0")],
            "",
        );
        assert_eq!(one(&r), (s("bob"), "hunter2".into(), "registry"));
        assert!(credentials(&req("/", &[("X-Registry-Auth", "e30=")], "")).is_empty());
        assert!(credentials(&req("/", &[], "q=search")).is_empty());
        assert!(credentials(&req("/", &[("Authorization", "Basic !!!")], "")).is_empty());
    }

    proptest! {
        #[test]
        fn arbitrary_bodies_never_panic(body in ".{0,300}", ct in "(text/xml|application/json|)") {
            let r = req("/x?a=%", &[("Content-Type", &ct)], &body);
            let _ = credentials(&r);
            let _ = url_decode(&body);
        }
    }
}

//! The `http`/`https` web server: one [`personas::Persona`] chosen by the service config
//! (the original's `fake_app`, else from `server_header`), rendered per request.

use std::time::SystemTime;

use super::creds::Credential;
use super::personas::{self, Persona};
use super::{extra_headers, Request, Response};
use crate::log::http_date;
use crate::protocols::{Peer, ServiceCtx};
use crate::util::Rng;

/// The persona the service config selects.
pub fn persona(ctx: &ServiceCtx) -> &'static Persona {
    let named = ctx
        .config
        .line("fake_app")
        .and_then(|n| personas::by_name(&n));
    if let Some(p) = named {
        return p;
    }
    if ctx.service == crate::protocols::Service::Conpot {
        // The ICS persona's HMI names the PLC its Modbus and SNMP answers name.
        return personas::by_name("s7-hmi").unwrap_or(&personas::all()[0]);
    }
    let server = ctx
        .config
        .line("server_header")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let name = if server.contains("nginx") {
        "nginx"
    } else if server.contains("iis") {
        "iis"
    } else {
        "apache"
    };
    personas::by_name(name).unwrap_or(&personas::all()[0])
}

/// Text for HTML: `<>&"'` escaped.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#039;"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// The Host header's name if it is a plain host name or address, else `fallback`.
fn host_name(req: &Request, fallback: &str) -> String {
    let host = req.header("host").unwrap_or_default();
    let name = match host.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) && !h.ends_with(':') => h,
        _ => host,
    };
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_[]:".contains(&b));
    if ok {
        name.to_owned()
    } else {
        fallback.to_owned()
    }
}

/// The Host header's authority for the persona's own URLs (form actions, redirects): its
/// name ([`host_name`]) with the port the client gave, so a browser on another port than 80
/// posts back to the same one.
fn host_origin(req: &Request, fallback: &str) -> String {
    let name = host_name(req, fallback);
    match req.header("host").and_then(|h| h.rsplit_once(':')) {
        Some((h, p))
            if h == name
                && !p.is_empty()
                && p.len() <= 5
                && p.bytes().all(|b| b.is_ascii_digit()) =>
        {
            format!("{name}:{p}")
        }
        _ => name,
    }
}

/// Error text a login page shows after a failed attempt, by persona.
fn login_error(persona: &str) -> &'static str {
    match persona {
        "wordpress" => "\t<div id=\"login_error\">\t<strong>Error:</strong> The password you entered for the username <strong>{user}</strong> is incorrect. <a href=\"http://{origin}/wp-login.php?action=lostpassword\">Lost your password?</a><br />\n</div>\n",
        "phpmyadmin" => "<div class=\"alert alert-danger\" role=\"alert\"><img src=\"themes/dot.gif\" title=\"\" alt=\"\" class=\"icon ic_s_error\"> mysqli::real_connect(): (HY000/1045): Access denied for user '{user}'@'localhost' (using password: YES)</div>\n",
        "jenkins" => "<div class=\"alert alert-danger\">Invalid username or password</div>\n",
        "s7-hmi" => "<p class=\"error\">Login failed. User {user} or password incorrect.</p>\n",
        _ => "",
    }
}

/// Fills a template (see [`personas`] for the variables).
fn render(t: &str, vars: &[(&str, &str)]) -> String {
    if !t.contains('{') {
        return t.to_owned();
    }
    let mut out = t.to_owned();
    for (k, v) in vars {
        if out.contains(k) {
            out = out.replace(k, v);
        }
    }
    out
}

/// The persona's answer to `req`; `creds` are the credentials the request carried.
pub fn respond(req: &Request, ctx: &ServiceCtx, peer: &Peer, creds: &[Credential]) -> Response {
    let persona = persona(ctx);
    let path = req.path();
    let page = persona.page(&req.method, path);
    let server = ctx
        .config
        .line("server_header")
        .or_else(|| persona.server.map(str::to_owned));
    let host = host_name(req, &ctx.hostname);
    let origin = host_origin(req, &ctx.hostname);
    let port = peer.dst_port.to_string();
    let user = creds
        .iter()
        .find_map(|c| c.username.clone())
        .map(|u| html_escape(&u))
        .unwrap_or_default();
    let failed = creds.iter().any(|c| c.method == "form") || path.ends_with("loginError");
    let error = if failed {
        login_error(persona.name)
    } else {
        ""
    };
    let rand = Rng::new().hex(32);
    let esc_path = html_escape(path);
    let upper = ctx.hostname.to_ascii_uppercase();
    let server_text = server.clone().unwrap_or_default();
    let vars: [(&str, &str); 10] = [
        ("{error}", error),
        ("{origin}", &origin),
        ("{host}", &host),
        ("{hostname}", &ctx.hostname),
        ("{HOSTNAME}", &upper),
        ("{port}", &port),
        ("{server}", &server_text),
        ("{path}", &esc_path),
        ("{user}", &user),
        ("{rand}", &rand),
    ];
    let mut status = page.status;
    let mut body = render(page.body, &vars);
    if path == "/" {
        if let Some(code) = ctx
            .config
            .u16("response_code")
            .filter(|s| (200..=599).contains(s))
        {
            status = code;
        }
        if let Some(b) = ctx.config.string("custom_body") {
            body = b;
        }
    }
    let mut headers = vec![("Date".to_owned(), http_date(SystemTime::now()))];
    if let Some(s) = server {
        headers.push(("Server".into(), s));
    }
    for (n, v) in persona.headers.iter().chain(page.headers) {
        headers.push(((*n).to_owned(), render(v, &vars)));
    }
    let extra = extra_headers(ctx);
    if !extra
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
    {
        headers.push(("Content-Type".into(), page.content_type.to_owned()));
    }
    headers.extend(extra);
    Response {
        status,
        headers,
        body: body.into_bytes(),
    }
}

/// The persona's page for an unreadable request (400, 413, 414, 431): its 404 page with the
/// status and wording changed, under its own `Server`.
pub fn error_response(ctx: &ServiceCtx, status: u16, port: u16) -> Response {
    let persona = persona(ctx);
    let reason = super::reason(status);
    let server = ctx
        .config
        .line("server_header")
        .or_else(|| persona.server.map(str::to_owned));
    let server_text = server.clone().unwrap_or_default();
    let port = port.to_string();
    let vars: [(&str, &str); 7] = [
        ("{origin}", &ctx.hostname),
        ("{host}", &ctx.hostname),
        ("{hostname}", &ctx.hostname),
        ("{port}", &port),
        ("{server}", &server_text),
        ("{path}", "/"),
        ("{error}", ""),
    ];
    let body = render(persona.not_found.body, &vars)
        .replace(
            "The requested URL was not found on this server.",
            "Your browser sent a request that this server could not understand.<br />",
        )
        .replace(
            "404 - File or directory not found.",
            &format!("{status} - {reason}."),
        )
        .replace("Not Found", reason)
        .replace("404", &status.to_string());
    let mut headers = vec![("Date".to_owned(), http_date(SystemTime::now()))];
    if let Some(s) = server {
        headers.push(("Server".into(), s));
    }
    headers.push((
        "Content-Type".into(),
        persona.not_found.content_type.to_owned(),
    ));
    Response {
        status,
        headers,
        body: body.into_bytes(),
    }
}

//! The web personas in a real browser: Debian's headless Chromium, driven over WebDriver by
//! chromedriver, loads the wordpress, phpmyadmin, owa, jenkins and nas login pages from the
//! real `decnet-decky serve http` on a free loopback port, checks the title and form look like
//! the product, fills and submits the login form through the browser and finds the posted
//! credentials as an `auth` event on the decky's stdout; the router's Basic authentication
//! too. Every wait is on a DOM condition or an event, bounded; a screenshot of each page is
//! written under `target/tmp/browser-screens/` (never committed).
//!
//! The WebDriver client is a few JSON requests over `std::net::TcpStream` (chromedriver is
//! plain HTTP on loopback): no HTTP client crate, no async runtime in this crate's build.
//! chromium and chromium-driver are required (`scripts/setup` installs them); a missing one
//! fails the test.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// Bound of every wait on the browser (page loads, DOM conditions).
const BROWSER_WAIT: Duration = Duration::from_secs(30);
/// WebDriver's key for an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// One WebDriver request; the answer's `value`, or the WebDriver error as `Err`.
fn webdriver(port: u16, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(90)))
        .expect("timeout");
    let body = body.map(Value::to_string).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())
        .and_then(|()| s.write_all(body.as_bytes()))
        .map_err(|e| format!("send: {e}"))?;
    // chromedriver keeps the connection open whatever the request says: read by length.
    let mut raw = Vec::new();
    let mut buf = [0u8; 65536];
    let mut framing: Option<(usize, usize)> = None;
    loop {
        if let Some((start, len)) = framing {
            if raw.len() >= start + len {
                break;
            }
        }
        let n = s.read(&mut buf).map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err(format!("closed early: {}", String::from_utf8_lossy(&raw)));
        }
        raw.extend_from_slice(&buf[..n]);
        if framing.is_none() {
            if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&raw[..end]).into_owned();
                let len = head
                    .lines()
                    .find_map(|l| {
                        let (n, v) = l.split_once(':')?;
                        n.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse::<usize>().ok())
                            .flatten()
                    })
                    .ok_or_else(|| format!("no Content-Length: {head}"))?;
                framing = Some((end + 4, len));
            }
        }
    }
    let (start, len) = framing.unwrap_or_default();
    let head = String::from_utf8_lossy(&raw[..start]).into_owned();
    let body = String::from_utf8_lossy(&raw[start..start + len]).into_owned();
    let v: Value = serde_json::from_str(&body).map_err(|e| format!("not JSON ({e}): {body}"))?;
    if head.starts_with("HTTP/1.1 200") {
        Ok(v["value"].clone())
    } else {
        Err(format!("{method} {path}: {}", v["value"]))
    }
}

/// Polls `f` until it returns `Some`, at most [`BROWSER_WAIT`]; panics naming `what`.
fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + BROWSER_WAIT;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        thread::sleep(Duration::from_millis(100));
    }
}

/// A running chromedriver on a free loopback port; killed on drop.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    fn start() -> Driver {
        let port = free_tcp_port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("chromedriver is required (apt-get install chromium chromium-driver): {e}")
            });
        let d = Driver { child, port };
        wait_for("chromedriver to be ready", || {
            webdriver(port, "GET", "/status", None)
                .ok()
                .filter(|v| v["ready"] == true)
        });
        d
    }

    /// A headless Chromium session with its own profile under `profile`.
    fn session(&self, profile: &Path) -> Session<'_> {
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "acceptInsecureCerts": true,
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--no-first-run", "--window-size=1280,900",
                         format!("--user-data-dir={}", profile.display())]
            }
        }}});
        let v = webdriver(self.port, "POST", "/session", Some(&caps))
            .unwrap_or_else(|e| panic!("new Chromium session: {e}"));
        let id = v["sessionId"].as_str().expect("sessionId").to_owned();
        Session { driver: self, id }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Session<'a> {
    driver: &'a Driver,
    id: String,
}

impl Session<'_> {
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        webdriver(
            self.driver.port,
            method,
            &format!("/session/{}{path}", self.id),
            body.as_ref(),
        )
    }

    fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(json!({"url": url})))
            .unwrap_or_else(|e| panic!("navigate to {url}: {e}"));
    }

    fn title(&self) -> String {
        self.call("GET", "/title", None)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    fn source(&self) -> String {
        self.call("GET", "/source", None)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    /// The element `css` selects, waiting until the page has it.
    fn element(&self, css: &str) -> String {
        let deadline = Instant::now() + BROWSER_WAIT;
        loop {
            let found = self.call(
                "POST",
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            );
            match found {
                Ok(v) if v[ELEMENT].is_string() => {
                    return v[ELEMENT].as_str().unwrap_or_default().to_owned()
                }
                other if Instant::now() > deadline => panic!(
                    "no element {css} ({other:?}) in {:?}: {}",
                    self.title(),
                    self.source()
                ),
                _ => thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    fn type_into(&self, css: &str, text: &str) {
        let el = self.element(css);
        self.call(
            "POST",
            &format!("/element/{el}/value"),
            Some(json!({"text": text})),
        )
        .unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    fn click(&self, css: &str) {
        let el = self.element(css);
        self.call("POST", &format!("/element/{el}/click"), Some(json!({})))
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Waits until the page source contains `needle`.
    fn wait_text(&self, needle: &str) -> String {
        wait_for(&format!("the page to show {needle:?}"), || {
            Some(self.source()).filter(|s| s.contains(needle))
        })
    }

    /// Writes a PNG screenshot of the page to `path`.
    fn screenshot(&self, path: &Path) {
        let b64 = self
            .call("GET", "/screenshot", None)
            .unwrap_or_else(|e| panic!("screenshot: {e}"));
        let png = b64_decode(b64.as_str().expect("base64 PNG"));
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        std::fs::write(path, png).expect("write screenshot");
        eprintln!("screenshot: {}", path.display());
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        let _ = self.call("DELETE", "", None);
    }
}

fn b64_decode(s: &str) -> Vec<u8> {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes() {
        let Some(v) = A.iter().position(|&a| a == c) else {
            continue;
        };
        acc = (acc << 6) | u32::try_from(v).expect("6 bits");
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((acc >> bits) & 0xff).expect("byte"));
        }
    }
    out
}

/// The next `auth` event of the decky (the browser's other requests are skipped).
fn next_auth(d: &Decky) -> Value {
    loop {
        let ev = d.next_event();
        if ev["kind"] == "auth" {
            return ev;
        }
    }
}

fn assert_auth(ev: &Value, user: &str, pass: &str, method: &str) {
    assert_eq!(ev["details"]["username"], user, "{ev}");
    assert_eq!(ev["details"]["password"], pass, "{ev}");
    assert_eq!(ev["details"]["method"], method, "{ev}");
}

fn screens() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-screens");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

/// One persona in the browser: the page at `path`, its title, the form's fields filled with
/// `user`/`pass` and submitted with `submit`, then what the answer shows.
struct Login<'a> {
    persona: &'a str,
    path: &'a str,
    title: &'a str,
    /// Text of the page that only the product's login form has.
    form_marker: &'a str,
    user_field: &'a str,
    pass_field: &'a str,
    submit: &'a str,
    user: &'a str,
    pass: &'a str,
    /// What the page shows after the failed login, where the persona answers with a page.
    after: Option<&'a str>,
}

fn login_in_browser(s: &Session<'_>, l: &Login<'_>) {
    let d = Decky::serve("http", Some(&format!(r#"{{"fake_app":"{}"}}"#, l.persona)));
    let url = format!("http://127.0.0.1:{}{}", d.port, l.path);
    s.goto(&url);
    s.element(l.user_field);
    let title = s.title();
    assert_eq!(title, l.title, "{}: title of {url}", l.persona);
    s.wait_text(l.form_marker);
    s.screenshot(&screens().join(format!("{}-login.png", l.persona)));
    s.type_into(l.user_field, l.user);
    s.type_into(l.pass_field, l.pass);
    s.click(l.submit);
    let ev = next_auth(&d);
    assert_auth(&ev, l.user, l.pass, "form");
    assert_eq!(ev["src_ip"], "127.0.0.1", "{ev}");
    if let Some(text) = l.after {
        s.wait_text(text);
    }
    s.screenshot(&screens().join(format!("{}-after.png", l.persona)));
}

#[test]
fn chromium_logs_in_to_the_web_personas_and_each_login_is_recorded() {
    let driver = Driver::start();
    let profile = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("browser-profile-{}", std::process::id()));
    let s = driver.session(&profile);
    let logins = [
        Login {
            persona: "wordpress",
            path: "/wp-login.php",
            title: "Log In ‹ decoy-host — WordPress",
            form_marker: "id=\"loginform\"",
            user_field: "#user_login",
            pass_field: "#user_pass",
            submit: "#wp-submit",
            user: "admin",
            pass: "Br0wser!2026",
            after: Some("is incorrect."),
        },
        Login {
            persona: "phpmyadmin",
            path: "/",
            title: "phpMyAdmin",
            form_marker: "Welcome to",
            user_field: "#input_username",
            pass_field: "#input_password",
            submit: "#input_go",
            user: "root",
            pass: "toor#1",
            after: Some("Access denied for user 'root'@'localhost'"),
        },
        Login {
            persona: "owa",
            path: "/owa/auth/logon.aspx",
            title: "Outlook",
            form_marker: "name=\"logonForm\"",
            user_field: "#username",
            pass_field: "#password",
            submit: ".signinbutton",
            user: "CORP\\ceo",
            pass: "Winter2026$",
            after: Some("logonForm"),
        },
        // Jenkins' `/` is a 403 whose script sends the browser on to `/login`.
        Login {
            persona: "jenkins",
            path: "/",
            title: "Sign in [Jenkins]",
            form_marker: "Welcome to Jenkins!",
            user_field: "#j_username",
            pass_field: "input[name=j_password]",
            submit: "button[name=Submit]",
            user: "admin",
            pass: "jenkins123",
            after: Some("Invalid username or password"),
        },
        Login {
            persona: "nas",
            path: "/",
            title: "decoy-host\u{a0}-\u{a0}Synology DiskStation",
            form_marker: "login-form",
            user_field: "input[name=account]",
            pass_field: "input[name=passwd]",
            submit: "#login-form button[type=submit]",
            user: "admin",
            pass: "synology",
            after: Some("success"),
        },
    ];
    for l in &logins {
        eprintln!("== {}", l.persona);
        login_in_browser(&s, l);
    }

    // The router answers with HTTP basic authentication, which a browser asks for in its own
    // dialog; headless Chromium holds the page behind that dialog (no title, no screenshot)
    // and WebDriver cannot fill it, so the credentials go in the URL and the browser sends
    // them as Basic after the 401 challenge. (The 401 page itself is checked with curl.)
    let d = Decky::serve("http", Some(r#"{"fake_app":"router"}"#));
    s.goto(&format!("http://admin:netgear1@127.0.0.1:{}/", d.port));
    // The request the credentials came with is the browser's.
    let mut ua = Value::Null;
    let ev = loop {
        let ev = d.next_event();
        match ev["kind"].as_str() {
            Some("request") => ua = ev["details"]["user_agent"].clone(),
            Some("auth") => break ev,
            _ => {}
        }
    };
    assert_auth(&ev, "admin", "netgear1", "basic");
    assert!(ua.as_str().is_some_and(|u| u.contains("Chrome/")), "{ua}");
    drop(s);
    let _ = std::fs::remove_dir_all(&profile);
}

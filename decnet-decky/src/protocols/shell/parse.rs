//! Command-line parsing of the fake shell: splitting chains, words, the URLs of fetchers.

/// Splits a line into simple commands at `;`, `&&`, `||` and newlines (quotes respected).
pub fn split_commands(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => {
                quote = None;
                cur.push(c);
            }
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                cur.push(c);
            }
            (None, ';' | '\n') => out.push(std::mem::take(&mut cur)),
            (None, '&' | '|') if chars.peek() == Some(&c) => {
                chars.next();
                out.push(std::mem::take(&mut cur));
            }
            (None, c) => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Words of a simple command, quotes removed.
pub fn words(cmd: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for c in cmd.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}

/// URL-looking arguments of a fetch command (`tftp host -c get file` gives `tftp://host/file`).
pub fn fetch_urls(argv: &[String]) -> Vec<String> {
    let Some(cmd) = argv.first() else {
        return Vec::new();
    };
    let mut urls: Vec<String> = argv[1..]
        .iter()
        .filter(|a| a.contains("://"))
        .cloned()
        .collect();
    if urls.is_empty() {
        let plain: Vec<&String> = argv[1..]
            .iter()
            .enumerate()
            .filter(|(i, a)| !a.starts_with('-') && !matches!(argv[*i].as_str(), "-r" | "-l"))
            .map(|(_, a)| a)
            .collect();
        match cmd.as_str() {
            "tftp" => {
                let r_file = argv
                    .iter()
                    .position(|a| a == "-r")
                    .and_then(|i| argv.get(i + 1));
                let (host, file) = match r_file {
                    Some(f) => (plain.last().copied(), Some(f)),
                    None => (
                        plain.first().copied(),
                        plain
                            .last()
                            .copied()
                            .filter(|f| Some(*f) != plain.first().copied()),
                    ),
                };
                if let Some(host) = host {
                    urls.push(format!(
                        "tftp://{host}/{}",
                        file.map(|f| f.as_str()).unwrap_or_default()
                    ));
                }
            }
            _ => urls.extend(
                plain
                    .iter()
                    .filter(|a| a.contains('.') || a.contains('/'))
                    .map(|a| format!("http://{a}")),
            ),
        }
    }
    urls
}

pub(super) fn host_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    host.split(':').next().unwrap_or_default().to_owned()
}

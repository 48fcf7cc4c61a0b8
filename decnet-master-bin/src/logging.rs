//! Logs go to stderr; stdout carries only the command's output. `DECNET_LOG` filters
//! (default `warn`), `DECNET_LOG_FORMAT=json` switches to JSON lines.
//!
//! Colour and other terminal escapes only on a terminal and never with `NO_COLOR` (any
//! non-empty value, <https://no-color.org>) or `TERM=dumb`: a log file or a pipe never gets
//! ANSI codes.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Whether a stream may carry terminal escapes: it is a terminal, `NO_COLOR` is unset or
/// empty, and `TERM` is not `dumb`.
pub fn decorate(is_terminal: bool, no_color: Option<&str>, term: Option<&str>) -> bool {
    is_terminal && no_color.is_none_or(str::is_empty) && term != Some("dumb")
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// [`decorate`] for this process's stderr.
pub fn stderr_decorated() -> bool {
    decorate(
        std::io::stderr().is_terminal(),
        env("NO_COLOR").as_deref(),
        env("TERM").as_deref(),
    )
}

/// [`decorate`] for this process's stdout (progress drawn in place, colour).
pub fn stdout_decorated() -> bool {
    decorate(
        std::io::stdout().is_terminal(),
        env("NO_COLOR").as_deref(),
        env("TERM").as_deref(),
    )
}

pub fn init() {
    let filter = EnvFilter::try_from_env("DECNET_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(stderr_decorated())
        .with_writer(std::io::stderr);
    let json = std::env::var("DECNET_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

#[cfg(test)]
mod tests {
    use super::decorate;

    #[test]
    fn escapes_only_on_a_terminal_without_no_color() {
        let check = |tty: bool, no_color: Option<&str>, term: Option<&str>, want: bool| {
            assert_eq!(
                decorate(tty, no_color, term),
                want,
                "{tty} {no_color:?} {term:?}"
            );
        };
        check(true, None, Some("xterm"), true);
        check(true, Some(""), None, true);
        check(true, Some("1"), Some("xterm"), false);
        check(true, None, Some("dumb"), false);
        check(false, None, Some("xterm"), false);
    }
}

//! A pure INI *syntax* parser, compatible with the way the original DECNET read `decnet.ini`:
//! `configparser.ConfigParser(interpolation=None, allow_no_value=True, strict=False)` after
//! normalising CRLF and lone CR line endings to LF.
//!
//! It turns text into sections of `key → Option<value>` entries, each carrying its 1-based line
//! number so that later validation can point at the offending line. It knows nothing about what
//! the sections mean.
//!
//! Syntax, as configparser reads it:
//!
//! * `[name]` opens a section. `[DEFAULT]` (case-sensitive) holds entries every other section
//!   inherits; it is not returned as a section. A repeated section merges into the first one
//!   (`strict=False`) and keeps the line of its first header.
//! * `key = value` or `key: value`: the first `=` or `:` delimits. The key is trimmed and
//!   lowercased (configparser's `optionxform`), the value trimmed. A line without a delimiter is
//!   a key with no value (`None`). A repeated key overrides the earlier one but keeps its
//!   position; the entry carries the line of the winning occurrence.
//! * A line whose first non-blank character is `#` or `;` is a comment. There are no inline
//!   comments: `a = b # c` has the value `b # c`.
//! * A non-blank, non-comment line indented deeper than the line that started the current entry
//!   continues its value; the pieces are trimmed and joined with `\n`. Comment lines inside a
//!   value are skipped, as in configparser. A line right after a section header is never a
//!   continuation, however deeply it is indented.
//!
//! Deliberate differences from configparser (most turn a silent surprise into an error):
//!
//! * A blank line ends the value being continued, so an indented line after a blank line starts
//!   a new entry (configparser's `empty_lines_in_values=False` behaviour for blank lines).
//! * A line starting with `[` and no closing `]` (configparser reads `[web` as a key without a
//!   value) and an empty section name (`[]`, `[ ]`) are errors.
//! * Whitespace just inside the brackets is trimmed: `[ web ]` is the section `web`. As in
//!   configparser the header ends at the *last* `]` of the line and anything after it is ignored.
//!   (So `[ DEFAULT ]` is the `[DEFAULT]` section.)
//! * A continuation line under a key without a value is an error (configparser crashes).
//! * A leading byte-order mark is reported by name (configparser says "no section headers").
//! * Only the first error is reported.
//!
//! "Blank" and "trim" use Python's notion of whitespace (`str.isspace`): Unicode white space
//! plus the separators U+001C..U+001F.

use std::borrow::Cow;
use std::collections::HashMap;

/// The largest accepted input, in bytes (before line-ending normalisation).
pub const MAX_INI_BYTES: usize = 512 * 1024;

/// The section whose entries every other section inherits.
const DEFAULT_SECTION: &str = "DEFAULT";

/// How many characters of an offending line an error message quotes.
const QUOTE_MAX_CHARS: usize = 80;

/// A parsed INI file: its sections in order of first appearance, `[DEFAULT]` folded in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IniDocument {
    /// The sections, in order of first appearance (`[DEFAULT]` itself not among them).
    pub sections: Vec<IniSection>,
}

/// One section after merging repeats and inheriting `[DEFAULT]`.
///
/// `line` is the line of its first header. `entries` holds its own keys in order of first
/// appearance, then the inherited `[DEFAULT]` keys it does not set itself (in `[DEFAULT]` order,
/// carrying their line in `[DEFAULT]`), like configparser's `options()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IniSection {
    /// The header's name, trimmed (`[ web ]` is `web`); case-sensitive.
    pub name: String,
    /// The 1-based line of its first header.
    pub line: usize,
    /// Its own entries, then the inherited `[DEFAULT]` ones.
    pub entries: Vec<IniEntry>,
}

/// One `key = value` entry. `key` is lowercased; `value` is `None` for a bare `key` line and
/// holds `\n`-joined continuation lines. `line` is where the winning occurrence of the key
/// starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IniEntry {
    /// The key, lowercased.
    pub key: String,
    /// The value, continuation lines joined by `\n`; `None` for a bare `key` line.
    pub value: Option<String>,
    /// The 1-based line where the winning occurrence of the key starts.
    pub line: usize,
}

impl IniDocument {
    /// The section called exactly `name` (section names are case-sensitive).
    pub fn section(&self, name: &str) -> Option<&IniSection> {
        self.sections.iter().find(|s| s.name == name)
    }
}

impl IniSection {
    /// The entry for `key`, lowercased first as configparser does.
    pub fn get(&self, key: &str) -> Option<&IniEntry> {
        let key = key.to_lowercase();
        self.entries.iter().find(|e| e.key == key)
    }
}

/// Why a text is not a usable INI file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IniSyntaxError {
    /// The text is empty or only whitespace.
    #[error("ini: empty input")]
    Empty,
    /// The text is longer than [`MAX_INI_BYTES`].
    #[error("ini: {bytes} bytes exceeds the {max}-byte limit", max = MAX_INI_BYTES)]
    TooLarge {
        /// The text's length in bytes.
        bytes: usize,
    },
    /// The text has no `[section]` header at all.
    #[error("ini: no [section] found")]
    NoSections,
    /// A line the parser cannot read (e.g. an empty section name); `message` says why.
    #[error("ini: line {line}: {message}")]
    Syntax {
        /// The offending line, 1-based.
        line: usize,
        /// What is wrong, quoting the offending text (cut to 80 characters).
        message: String,
    },
}

impl IniSyntaxError {
    /// The 1-based line the error points at, if it points at one.
    pub fn line(&self) -> Option<usize> {
        match self {
            IniSyntaxError::Syntax { line, .. } => Some(*line),
            _ => None,
        }
    }

    fn syntax(line: usize, message: impl Into<String>) -> Self {
        IniSyntaxError::Syntax {
            line,
            message: message.into(),
        }
    }
}

/// Parses `text` (which may use LF, CRLF or CR line endings).
///
/// Fails on input larger than [`MAX_INI_BYTES`], on blank input, on the first syntax error, and
/// when no section other than `[DEFAULT]` is found.
pub fn parse_ini(text: &str) -> Result<IniDocument, IniSyntaxError> {
    if text.len() > MAX_INI_BYTES {
        return Err(IniSyntaxError::TooLarge { bytes: text.len() });
    }
    if text.trim_matches(is_py_space).is_empty() {
        return Err(IniSyntaxError::Empty);
    }
    if text.starts_with('\u{feff}') {
        return Err(IniSyntaxError::syntax(
            1,
            "unexpected byte-order mark (U+FEFF); save the file as UTF-8 without BOM",
        ));
    }
    let text: Cow<'_, str> = if text.contains('\r') {
        Cow::Owned(text.replace("\r\n", "\n").replace('\r', "\n"))
    } else {
        Cow::Borrowed(text)
    };

    let mut parser = Parser::default();
    for (index, raw) in text.split('\n').enumerate() {
        parser.line(index + 1, raw)?;
    }
    parser.finish()
}

/// Python's `str.isspace`, which configparser's `strip()` and `\s` use.
fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// `s` as a quoted, escaped string, cut to [`QUOTE_MAX_CHARS`] characters.
fn quote(s: &str) -> String {
    match s.char_indices().nth(QUOTE_MAX_CHARS) {
        Some((cut, _)) => format!("{:?}", format!("{}…", &s[..cut])),
        None => format!("{s:?}"),
    }
}

/// The entries of one section (or of `[DEFAULT]`) while parsing, with a key index so that
/// overrides stay linear on large inputs.
#[derive(Debug, Default)]
struct Table {
    entries: Vec<IniEntry>,
    index: HashMap<String, usize>,
}

impl Table {
    /// Sets `key`, keeping the position of an earlier occurrence; returns the entry's index.
    fn set(&mut self, key: String, value: Option<String>, line: usize) -> usize {
        if let Some(&i) = self.index.get(&key) {
            let entry = &mut self.entries[i];
            entry.value = value;
            entry.line = line;
            return i;
        }
        let i = self.entries.len();
        self.index.insert(key.clone(), i);
        self.entries.push(IniEntry { key, value, line });
        i
    }
}

#[derive(Debug)]
struct PendingSection {
    name: String,
    line: usize,
    table: Table,
}

#[derive(Debug, Clone, Copy)]
enum Target {
    Defaults,
    Section(usize),
}

#[derive(Debug, Default)]
struct Parser {
    defaults: Table,
    sections: Vec<PendingSection>,
    section_index: HashMap<String, usize>,
    /// The section entries go to; `None` before the first header.
    target: Option<Target>,
    /// The entry (index in the target's table) that an indented line would continue.
    current: Option<usize>,
    /// Indentation, in characters, of the line that started `current`; `None` after a blank
    /// line, which ends any value.
    indent: Option<usize>,
}

impl Parser {
    fn table(&mut self, target: Target) -> &mut Table {
        match target {
            Target::Defaults => &mut self.defaults,
            Target::Section(i) => &mut self.sections[i].table,
        }
    }

    fn line(&mut self, line: usize, raw: &str) -> Result<(), IniSyntaxError> {
        let text = raw.trim_matches(is_py_space);
        if text.starts_with('#') || text.starts_with(';') {
            // A comment neither ends nor continues a value.
            return Ok(());
        }
        if text.is_empty() {
            self.indent = None;
            return Ok(());
        }
        let indent = raw.chars().take_while(|&c| is_py_space(c)).count();

        if let (Some(target), Some(current), Some(level)) = (self.target, self.current, self.indent)
        {
            if indent > level {
                return self.continue_value(target, current, line, text);
            }
        }
        self.indent = Some(indent);

        if text.starts_with('[') {
            return self.header(line, text);
        }
        let Some(target) = self.target else {
            return Err(IniSyntaxError::syntax(line, "entry outside any [section]"));
        };
        self.entry(target, line, text)
    }

    fn continue_value(
        &mut self,
        target: Target,
        current: usize,
        line: usize,
        text: &str,
    ) -> Result<(), IniSyntaxError> {
        let entry = &mut self.table(target).entries[current];
        match &mut entry.value {
            Some(value) => {
                value.push('\n');
                value.push_str(text);
                Ok(())
            }
            None => Err(IniSyntaxError::syntax(
                line,
                format!(
                    "continuation line for key {} which has no value, got {}",
                    quote(&entry.key),
                    quote(text)
                ),
            )),
        }
    }

    fn header(&mut self, line: usize, text: &str) -> Result<(), IniSyntaxError> {
        // Like configparser's `\[(?P<header>.+)\]`: the header ends at the last `]`.
        let Some(close) = text.rfind(']') else {
            return Err(IniSyntaxError::syntax(
                line,
                format!(
                    "expected \"[section]\", \"key = value\" or \"key: value\", got {}",
                    quote(text)
                ),
            ));
        };
        let name = text[1..close].trim_matches(is_py_space);
        if name.is_empty() {
            return Err(IniSyntaxError::syntax(
                line,
                format!("empty section name in {}", quote(text)),
            ));
        }
        let target = if name == DEFAULT_SECTION {
            Target::Defaults
        } else if let Some(&i) = self.section_index.get(name) {
            Target::Section(i)
        } else {
            let i = self.sections.len();
            self.section_index.insert(name.to_string(), i);
            self.sections.push(PendingSection {
                name: name.to_string(),
                line,
                table: Table::default(),
            });
            Target::Section(i)
        };
        self.target = Some(target);
        self.current = None;
        Ok(())
    }

    fn entry(&mut self, target: Target, line: usize, text: &str) -> Result<(), IniSyntaxError> {
        let (key, value) = match text.find(['=', ':']) {
            Some(at) => (
                text[..at].trim_end_matches(is_py_space),
                Some(text[at + 1..].trim_matches(is_py_space).to_string()),
            ),
            None => (text, None),
        };
        if key.is_empty() {
            return Err(IniSyntaxError::syntax(
                line,
                format!("empty key in {}", quote(text)),
            ));
        }
        let index = self.table(target).set(key.to_lowercase(), value, line);
        self.current = Some(index);
        Ok(())
    }

    fn finish(self) -> Result<IniDocument, IniSyntaxError> {
        let defaults = self.defaults;
        let sections: Vec<IniSection> = self
            .sections
            .into_iter()
            .map(|pending| {
                let Table {
                    mut entries, index, ..
                } = pending.table;
                entries.extend(
                    defaults
                        .entries
                        .iter()
                        .filter(|d| !index.contains_key(&d.key))
                        .cloned(),
                );
                IniSection {
                    name: pending.name,
                    line: pending.line,
                    entries,
                }
            })
            .collect();
        if sections.is_empty() {
            return Err(IniSyntaxError::NoSections);
        }
        Ok(IniDocument { sections })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `(key, value, line)`
    type Ent<'a> = (&'a str, Option<&'a str>, usize);
    /// `(name, line, entries)`
    type Sec<'a> = (&'a str, usize, &'a [Ent<'a>]);
    /// The sections, or the error message.
    type Expected<'a> = Result<&'a [Sec<'a>], &'a str>;
    /// `(description, input, expected)`
    type Case<'a> = (&'a str, &'a str, Expected<'a>);

    fn doc(sections: &[Sec<'_>]) -> IniDocument {
        IniDocument {
            sections: sections
                .iter()
                .map(|(name, line, entries)| IniSection {
                    name: name.to_string(),
                    line: *line,
                    entries: entries
                        .iter()
                        .map(|(key, value, line)| IniEntry {
                            key: key.to_string(),
                            value: value.map(str::to_string),
                            line: *line,
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    /// Parses `input` and compares with the expected sections or the expected error message.
    fn check(input: &str, expected: Expected<'_>) {
        match (parse_ini(input), expected) {
            (Ok(got), Ok(want)) => assert_eq!(got, doc(want), "input: {input:?}"),
            (Err(got), Err(want)) => assert_eq!(got.to_string(), want, "input: {input:?}"),
            (got, want) => panic!("input: {input:?}\n got: {got:?}\nwant: {want:?}"),
        }
    }

    const DECNET_INI: &str = "\
[general]
net=192.168.1.0/24
gw=192.168.1.1
interface=eth0

[hostname-1]
ip=192.168.1.82
services=ssh,http
nmap_os: linux

[hostname-1.ssh]
password = hunter2

[web]
amount=3
archetype=web-server

[custom-myapp]
binary=myorg/app:1
exec=/bin/app --port 9000
ports=9000,9001
";

    #[test]
    fn decnet_example() {
        check(
            DECNET_INI,
            Ok(&[
                (
                    "general",
                    1,
                    &[
                        ("net", Some("192.168.1.0/24"), 2),
                        ("gw", Some("192.168.1.1"), 3),
                        ("interface", Some("eth0"), 4),
                    ],
                ),
                (
                    "hostname-1",
                    6,
                    &[
                        ("ip", Some("192.168.1.82"), 7),
                        ("services", Some("ssh,http"), 8),
                        ("nmap_os", Some("linux"), 9),
                    ],
                ),
                ("hostname-1.ssh", 11, &[("password", Some("hunter2"), 12)]),
                (
                    "web",
                    14,
                    &[
                        ("amount", Some("3"), 15),
                        ("archetype", Some("web-server"), 16),
                    ],
                ),
                (
                    "custom-myapp",
                    18,
                    &[
                        ("binary", Some("myorg/app:1"), 19),
                        ("exec", Some("/bin/app --port 9000"), 20),
                        ("ports", Some("9000,9001"), 21),
                    ],
                ),
            ]),
        );
    }

    #[test]
    fn accessors() {
        let parsed = parse_ini(DECNET_INI).expect("example parses");
        let web = parsed.section("web").expect("web section");
        assert_eq!(web.line, 14);
        let amount = web.get("AMOUNT").expect("lookup lowercases the key");
        assert_eq!(amount.value.as_deref(), Some("3"));
        assert_eq!(amount.line, 15);
        assert!(web.get("missing").is_none());
        assert!(
            parsed.section("WEB").is_none(),
            "section names are case-sensitive"
        );
        assert!(parsed.section("DEFAULT").is_none());
    }

    #[test]
    fn syntax_table() {
        let cases: &[Case<'_>] = &[
            (
                "both delimiters, first one wins, key lowercased and trimmed",
                "[s]\nKey One = a:b=c\nk2: x = y\nK3  :  v  \n",
                Ok(&[(
                    "s",
                    1,
                    &[
                        ("key one", Some("a:b=c"), 2),
                        ("k2", Some("x = y"), 3),
                        ("k3", Some("v"), 4),
                    ],
                )]),
            ),
            (
                "no-value keys and empty values",
                "[s]\nflag\nempty =\nalso:\nspaced key\n",
                Ok(&[(
                    "s",
                    1,
                    &[
                        ("flag", None, 2),
                        ("empty", Some(""), 3),
                        ("also", Some(""), 4),
                        ("spaced key", None, 5),
                    ],
                )]),
            ),
            (
                "full-line comments; no inline comments",
                "# top\n; top\n[s]\n  # indented comment\na = b # not a comment\nc = d ; nor this\n;e = f\n",
                Ok(&[(
                    "s",
                    3,
                    &[("a", Some("b # not a comment"), 5), ("c", Some("d ; nor this"), 6)],
                )]),
            ),
            (
                "continuation lines",
                "[s]\nexec = /bin/app\n  --port 9000\n\t--verbose\nnext = 1\n",
                Ok(&[(
                    "s",
                    1,
                    &[
                        ("exec", Some("/bin/app\n--port 9000\n--verbose"), 2),
                        ("next", Some("1"), 5),
                    ],
                )]),
            ),
            (
                "continuation keeps look-alike lines verbatim and skips comments",
                "[s]\na = 1\n  [x]\n  # c\n  b = 2\n",
                Ok(&[("s", 1, &[("a", Some("1\n[x]\nb = 2"), 2)])]),
            ),
            (
                "continuation after an empty value keeps the leading newline",
                "[s]\na =\n  x\n  y\n",
                Ok(&[("s", 1, &[("a", Some("\nx\ny"), 2)])]),
            ),
            (
                "continuation is relative to the key's indentation",
                "[s]\n  a = 1\n  b = 2\n    more\n",
                Ok(&[("s", 1, &[("a", Some("1"), 2), ("b", Some("2\nmore"), 3)])]),
            ),
            (
                "a blank line ends the value",
                "[s]\na = 1\n\n  b = 2\n",
                Ok(&[("s", 1, &[("a", Some("1"), 2), ("b", Some("2"), 4)])]),
            ),
            (
                "an indented line after a header is an entry",
                "[s]\n    a = 1\n",
                Ok(&[("s", 1, &[("a", Some("1"), 2)])]),
            ),
            (
                "CRLF input",
                "[s]\r\na = 1\r\n  more\r\n\r\nb = 2\r\n",
                Ok(&[("s", 1, &[("a", Some("1\nmore"), 2), ("b", Some("2"), 5)])]),
            ),
            (
                "lone CR input",
                "[s]\ra = 1\r\rb = 2\r",
                Ok(&[("s", 1, &[("a", Some("1"), 2), ("b", Some("2"), 4)])]),
            ),
            (
                "mixed line endings count lines after normalisation",
                "[s]\r\na = 1\rb = 2\nc = 3",
                Ok(&[(
                    "s",
                    1,
                    &[("a", Some("1"), 2), ("b", Some("2"), 3), ("c", Some("3"), 4)],
                )]),
            ),
            (
                "DEFAULT is inherited, explicit keys win, DEFAULT itself is hidden",
                "[DEFAULT]\nnmap_os = linux\nflag\n[a]\nip = 10.0.0.1\nNMAP_OS = windows\n[b]\n",
                Ok(&[
                    (
                        "a",
                        4,
                        &[
                            ("ip", Some("10.0.0.1"), 5),
                            ("nmap_os", Some("windows"), 6),
                            ("flag", None, 3),
                        ],
                    ),
                    ("b", 7, &[("nmap_os", Some("linux"), 2), ("flag", None, 3)]),
                ]),
            ),
            (
                "DEFAULT applies even when it comes last, and repeats merge",
                "[a]\nx = 1\n[DEFAULT]\ny = 2\n[DEFAULT]\ny = 3\nz\n",
                Ok(&[(
                    "a",
                    1,
                    &[("x", Some("1"), 2), ("y", Some("3"), 6), ("z", None, 7)],
                )]),
            ),
            (
                "an explicit no-value key overrides a DEFAULT value",
                "[DEFAULT]\nx = 1\n[a]\nx\n",
                Ok(&[("a", 3, &[("x", None, 4)])]),
            ),
            (
                "repeated sections merge into the first",
                "[a]\nx = 1\n[b]\ny = 2\n[a]\nz = 3\n",
                Ok(&[
                    ("a", 1, &[("x", Some("1"), 2), ("z", Some("3"), 6)]),
                    ("b", 3, &[("y", Some("2"), 4)]),
                ]),
            ),
            (
                "repeated keys: later value and line win, first position kept",
                "[a]\nx = 1\ny = 2\nX = 3\n  cont\n[a]\ny\n",
                Ok(&[("a", 1, &[("x", Some("3\ncont"), 4), ("y", None, 7)])]),
            ),
            (
                "section names: verbatim, case-sensitive, trimmed inside brackets",
                "[ Web Tier ]\n[web]\n  [custom-my.app]  \n[a]b]\n[c] trailing text\n",
                Ok(&[
                    ("Web Tier", 1, &[]),
                    ("web", 2, &[]),
                    ("custom-my.app", 3, &[]),
                    ("a]b", 4, &[]),
                    ("c", 5, &[]),
                ]),
            ),
            (
                "unicode keys and values",
                "[çé]\nNOM = Ünïcödé 🚀\nΣΑΣ = ω\n\u{3000}suite\n",
                Ok(&[(
                    "çé",
                    1,
                    &[("nom", Some("Ünïcödé 🚀"), 2), ("σας", Some("ω\nsuite"), 3)],
                )]),
            ),
            ("empty input", "", Err("ini: empty input")),
            ("blank input", " \n\t\r\n\r ", Err("ini: empty input")),
            (
                "comments only",
                "# nothing\n; here\n",
                Err("ini: no [section] found"),
            ),
            (
                "DEFAULT only",
                "[DEFAULT]\na = 1\n",
                Err("ini: no [section] found"),
            ),
            (
                "entry before any section",
                "# c\n\nnet = 10.0.0.0/8\n[general]\n",
                Err("ini: line 3: entry outside any [section]"),
            ),
            (
                "unclosed section header",
                "[general]\na = 1\n\n\n\n\n[web\n",
                Err(r#"ini: line 7: expected "[section]", "key = value" or "key: value", got "[web""#),
            ),
            (
                "unclosed header before any section",
                "[broken\n",
                Err(r#"ini: line 1: expected "[section]", "key = value" or "key: value", got "[broken""#),
            ),
            (
                "empty section name",
                "[a]\n[ ]\n",
                Err(r#"ini: line 2: empty section name in "[ ]""#),
            ),
            (
                "empty key",
                "[a]\nx = 1\n= 2\n",
                Err(r#"ini: line 3: empty key in "= 2""#),
            ),
            (
                "empty key with colon",
                "[a]\n:\n",
                Err(r#"ini: line 2: empty key in ":""#),
            ),
            (
                "continuation of a key without a value",
                "[a]\r\nflag\r\n  more\r\n",
                Err(r#"ini: line 3: continuation line for key "flag" which has no value, got "more""#),
            ),
            (
                "byte-order mark",
                "\u{feff}[a]\n",
                Err("ini: line 1: unexpected byte-order mark (U+FEFF); save the file as UTF-8 without BOM"),
            ),
        ];
        for (name, input, expected) in cases {
            eprintln!("case: {name}");
            check(input, *expected);
        }
    }

    #[test]
    fn error_variants() {
        assert_eq!(parse_ini(""), Err(IniSyntaxError::Empty));
        assert_eq!(parse_ini("# only\n"), Err(IniSyntaxError::NoSections));
        let err = parse_ini("[a]\n[b").expect_err("unclosed header");
        assert_eq!(err.line(), Some(2));
        assert!(matches!(err, IniSyntaxError::Syntax { line: 2, .. }));
        assert_eq!(IniSyntaxError::Empty.line(), None);
    }

    #[test]
    fn size_limit() {
        let at_limit = format!("[a]\nk = {}", "v".repeat(MAX_INI_BYTES - 8));
        assert_eq!(at_limit.len(), MAX_INI_BYTES);
        let parsed = parse_ini(&at_limit).expect("exactly at the limit parses");
        assert_eq!(parsed.sections[0].entries[0].line, 2);

        let too_big = "x".repeat(600_000);
        let err = parse_ini(&too_big).expect_err("too large");
        assert_eq!(err, IniSyntaxError::TooLarge { bytes: 600_000 });
        assert_eq!(
            err.to_string(),
            "ini: 600000 bytes exceeds the 524288-byte limit"
        );
    }

    #[test]
    fn long_lines_are_cut_in_messages() {
        let input = format!("[{}", "x".repeat(500));
        let message = parse_ini(&input).expect_err("unclosed").to_string();
        assert!(message.len() < 200, "{message}");
        assert!(message.ends_with("xxx…\""), "{message}");
    }

    #[test]
    fn many_keys_stay_fast() {
        // Overrides go through an index: 100k distinct and repeated keys parse quickly.
        let mut input = String::from("[a]\n");
        for i in 0..50_000 {
            input.push_str(&format!("k{i}\nk{i}=v\n"));
        }
        input.truncate(MAX_INI_BYTES);
        let parsed = parse_ini(&input).expect("parses");
        assert!(parsed.sections[0].entries.len() > 10_000);
    }

    /// Lines made of INI-ish fragments, to reach deep into the parser.
    fn ini_like() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("[".to_string()),
            Just("]".to_string()),
            Just("=".to_string()),
            Just(":".to_string()),
            Just("#".to_string()),
            Just(";".to_string()),
            Just(" ".to_string()),
            Just("\t".to_string()),
            Just("\r".to_string()),
            Just("\n".to_string()),
            Just("\r\n".to_string()),
            Just("DEFAULT".to_string()),
            Just("\u{feff}".to_string()),
            Just("\u{3000}".to_string()),
            "[a-zA-Zé€🚀0-9]{0,4}",
        ];
        prop::collection::vec(piece, 0..64).prop_map(|pieces| pieces.concat())
    }

    fn assert_sane(input: &str) {
        match parse_ini(input) {
            Ok(parsed) => {
                let lines = input.replace("\r\n", "\n").replace('\r', "\n");
                let last_line = lines.split('\n').count();
                assert!(!parsed.sections.is_empty());
                for section in &parsed.sections {
                    assert!(!section.name.is_empty());
                    assert!((1..=last_line).contains(&section.line));
                    for entry in &section.entries {
                        assert!(!entry.key.is_empty());
                        assert!((1..=last_line).contains(&entry.line));
                    }
                }
            }
            Err(IniSyntaxError::Syntax { line, message }) => {
                assert!(line >= 1);
                assert!(!message.is_empty());
            }
            Err(_) => {}
        }
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_text(input in any::<String>()) {
            assert_sane(&input);
        }

        #[test]
        fn never_panics_on_ini_like_text(input in ini_like()) {
            assert_sane(&input);
        }
    }
}

//! Terminal input: the line editor shared by the ssh pty and telnet.

use super::MAX_INPUT_LINE;

/// A key the line editor recognised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    /// Bytes to echo (when the terminal expects the server to echo).
    Echo(Vec<u8>),
    Line(String),
    /// Ctrl-C.
    Interrupt,
    /// Ctrl-D on an empty line.
    Eof,
}

/// Turns terminal input (one byte at a time or in bursts) into lines.
#[derive(Debug, Default)]
pub struct LineEditor {
    buf: Vec<u8>,
    last_cr: bool,
    escape: bool,
}

impl LineEditor {
    pub fn feed(&mut self, data: &[u8], out: &mut Vec<Key>) {
        for &b in data {
            let after_cr = std::mem::replace(&mut self.last_cr, false);
            if self.escape {
                if b.is_ascii_alphabetic() || b == b'~' {
                    self.escape = false;
                }
                continue;
            }
            match b {
                b'\r' => {
                    self.last_cr = true;
                    out.push(Key::Echo(b"\r\n".to_vec()));
                    out.push(Key::Line(
                        String::from_utf8_lossy(&std::mem::take(&mut self.buf)).into_owned(),
                    ));
                }
                b'\n' if after_cr => {}
                b'\n' => {
                    out.push(Key::Echo(b"\r\n".to_vec()));
                    out.push(Key::Line(
                        String::from_utf8_lossy(&std::mem::take(&mut self.buf)).into_owned(),
                    ));
                }
                0 => {}
                0x7f | 0x08 => {
                    if self.buf.pop().is_some() {
                        out.push(Key::Echo(b"\x08 \x08".to_vec()));
                    }
                }
                0x03 => {
                    self.buf.clear();
                    out.push(Key::Echo(b"^C\r\n".to_vec()));
                    out.push(Key::Interrupt);
                }
                0x04 if self.buf.is_empty() => out.push(Key::Eof),
                0x15 => self.buf.clear(),
                0x1b => self.escape = true,
                b if b < 0x20 && b != b'\t' => {}
                b => {
                    if self.buf.len() < MAX_INPUT_LINE {
                        self.buf.push(b);
                        out.push(Key::Echo(vec![b]));
                    }
                }
            }
        }
    }
}

/// `\n` → `\r\n` for a terminal.
pub fn crlf(text: &str) -> String {
    text.replace('\n', "\r\n")
}

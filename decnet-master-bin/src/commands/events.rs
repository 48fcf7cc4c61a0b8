//! `decnet events [--follow] [--json]`: the master's bus events (PRODUCT §9) from
//! `GET /api/v1/events`. Without `--follow` it prints the events the master still keeps and
//! exits; with it, it goes on printing live ones until the master stops or Ctrl-C. One line per
//! event: `<id> <topic> <body>`, or with `--json` one object `{"id","topic","body"}` per line.

use std::io::Write;

use anyhow::Context;
use serde_json::{json, Value};

use crate::cli::EventsArgs;
use crate::client::MasterClient;
use crate::error::CliError;

/// One server-sent event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: String,
    pub data: String,
}

/// An incremental SSE parser (the subset the master sends: `id`, `event`, `data`, comments).
/// Bytes go in as they arrive; complete events come out.
#[derive(Debug, Default)]
pub struct SseParser {
    buf: Vec<u8>,
    id: Option<String>,
    event: Option<String>,
    data: Vec<String>,
}

impl SseParser {
    pub fn push(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(nl) = self.buf.iter().position(|b| *b == b'\n') {
            let raw: Vec<u8> = self.buf.drain(..=nl).collect();
            let line = String::from_utf8_lossy(&raw[..raw.len() - 1]);
            let line = line.strip_suffix('\r').unwrap_or(&line);
            if line.is_empty() {
                if !self.data.is_empty() || self.event.is_some() {
                    out.push(SseEvent {
                        id: self.id.take(),
                        event: self.event.take().unwrap_or_else(|| "message".into()),
                        data: std::mem::take(&mut self.data).join("\n"),
                    });
                }
                self.id = None;
                continue;
            }
            if line.starts_with(':') {
                continue; // a comment: the keep-alive
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value).to_string();
            match field {
                "id" => self.id = Some(value),
                "event" => self.event = Some(value),
                "data" => self.data.push(value),
                _ => {}
            }
        }
        out
    }
}

/// The printed form of one event.
pub fn render(e: &SseEvent, as_json: bool) -> String {
    let body: Value =
        serde_json::from_str(&e.data).unwrap_or_else(|_| Value::String(e.data.clone()));
    if as_json {
        let id: Value =
            e.id.as_deref()
                .and_then(|i| i.parse::<u64>().ok())
                .map_or(Value::Null, Value::from);
        json!({"id": id, "topic": e.event, "body": body}).to_string()
    } else {
        format!("{} {} {}", e.id.as_deref().unwrap_or("-"), e.event, body)
    }
}

pub async fn run(
    data_dir: &std::path::Path,
    args: &EventsArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let c = &args.client;
    let client = MasterClient::discover(data_dir, c.master.clone(), c.token.clone(), c.ca.clone())?;
    let mut path = format!("/api/v1/events?follow={}", args.follow);
    if let Some(since) = args.since {
        path.push_str(&format!("&since={since}"));
    }
    let mut resp = client.stream(&path).await?;
    let mut parser = SseParser::default();
    let follow = async {
        while let Some(chunk) = client.next_chunk(&mut resp).await? {
            for e in parser.push(&chunk) {
                writeln!(out, "{}", render(&e, args.json)).context("write")?;
            }
            out.flush().ok();
        }
        Ok::<(), CliError>(())
    };
    tokio::select! {
        r = follow => r,
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_and_comments() {
        let mut p = SseParser::default();
        assert!(p
            .push(b": keep-alive\n\nid: 4\nevent: decky.a.lifec")
            .is_empty());
        let got = p.push(b"ycle\ndata: {\"status\":\"running\"}\n\nevent: x\r\ndata: 1\r\n\r\n");
        assert_eq!(
            got,
            [
                SseEvent {
                    id: Some("4".into()),
                    event: "decky.a.lifecycle".into(),
                    data: "{\"status\":\"running\"}".into()
                },
                SseEvent {
                    id: None,
                    event: "x".into(),
                    data: "1".into()
                }
            ]
        );
        assert_eq!(
            render(&got[0], false),
            "4 decky.a.lifecycle {\"status\":\"running\"}"
        );
        assert_eq!(
            render(&got[0], true),
            r#"{"body":{"status":"running"},"id":4,"topic":"decky.a.lifecycle"}"#
        );
    }
}

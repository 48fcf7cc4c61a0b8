//! `--wait`: follows the master's lifecycle rows (PRODUCT §7, §8) until every one is terminal.
//!
//! The master is polled every [`POLL_EVERY`]; a [`Tracker`] (pure) turns successive snapshots
//! into printed changes. On a terminal a progress bar is redrawn in place; otherwise one plain
//! line is printed per status change (`decky-01 deploy running`, `decky-02 deploy failed: …`).
//! The end is a summary; any failed row makes the command fail (exit 1), and so does running
//! out of `--wait-timeout`.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use decnet_core::model::{LifecycleRow, LifecycleStatus};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::client::{answer, MasterClient};
use crate::error::CliError;

/// The lifecycle route of the operator API.
pub const LIFECYCLE: &str = "/api/v1/deckies/lifecycle";
/// How often the master is asked.
pub const POLL_EVERY: Duration = Duration::from_millis(500);
/// Polls in a row that may fail (master restarting, network blip) before giving up.
const MAX_POLL_FAILURES: u32 = 10;
/// Ids per request (keeps the URL short for big fleets).
const IDS_PER_REQUEST: usize = 64;
/// Width of the progress bar, in cells.
const BAR_WIDTH: usize = 24;
/// Longest error text on a plain line or in a table.
const ERROR_CHARS: usize = 300;

/// One row of `GET /api/v1/deckies/lifecycle` (the fields the CLI shows).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowView {
    pub id: String,
    pub decky_name: String,
    pub operation: String,
    pub status: String,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub updated_at: Option<String>,
}

/// The answer of `GET /api/v1/deckies/lifecycle`.
#[derive(Debug, Clone, Deserialize)]
pub struct Rows<R = RowView> {
    pub rows: Vec<R>,
}

impl From<&LifecycleRow> for RowView {
    fn from(r: &LifecycleRow) -> Self {
        Self {
            id: r.id.to_string(),
            decky_name: r.decky_name.to_string(),
            operation: r.operation.to_string(),
            status: r.status.to_string(),
            error: r.error.clone(),
            updated_at: Some(r.updated_at.to_rfc3339()),
        }
    }
}

impl RowView {
    /// `succeeded` or `failed`: the row never changes again.
    pub fn is_terminal(&self) -> bool {
        status_of(&self.status).is_some_and(LifecycleStatus::is_terminal)
    }

    pub fn is_failed(&self) -> bool {
        status_of(&self.status) == Some(LifecycleStatus::Failed)
    }

    /// `decky-01 deploy running`, `decky-02 deploy failed: <error>`.
    pub fn line(&self) -> String {
        match self
            .error
            .as_deref()
            .map(one_line)
            .filter(|e| !e.is_empty())
        {
            Some(e) if self.is_failed() => {
                format!("{} {} failed: {e}", self.decky_name, self.operation)
            }
            _ => format!("{} {} {}", self.decky_name, self.operation, self.status),
        }
    }
}

fn status_of(s: &str) -> Option<LifecycleStatus> {
    s.parse().ok()
}

/// An error on one line, at most `ERROR_CHARS` long.
pub fn one_line(text: &str) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > ERROR_CHARS {
        let mut s: String = flat.chars().take(ERROR_CHARS - 1).collect();
        s.push('…');
        s
    } else {
        flat
    }
}

/// A status change worth showing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The line to print (see [`RowView::line`]).
    pub line: String,
    /// The row reached `succeeded` or `failed`.
    pub terminal: bool,
}

/// How many rows stand where.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub total: usize,
    /// Not reported by the master yet, or `pending`.
    pub pending: usize,
    pub running: usize,
    pub succeeded: usize,
    pub failed: usize,
}

impl Counts {
    pub fn done(&self) -> usize {
        self.succeeded + self.failed
    }
}

/// What is known about the followed rows. Pure: snapshots in, changes out.
#[derive(Debug, Clone)]
pub struct Tracker {
    order: Vec<String>,
    rows: BTreeMap<String, RowView>,
}

impl Tracker {
    /// Follows `ids` (in this order; repeats are followed once).
    pub fn new<I: IntoIterator<Item = S>, S: ToString>(ids: I) -> Self {
        let mut order: Vec<String> = Vec::new();
        for id in ids {
            let id = id.to_string();
            if !order.contains(&id) {
                order.push(id);
            }
        }
        Self {
            order,
            rows: BTreeMap::new(),
        }
    }

    /// Takes one snapshot; returns the changes in the followed order. Rows start `pending`
    /// (so a first `pending` is no change), rows that are not followed are ignored, and a row
    /// that was seen terminal never changes again.
    pub fn observe(&mut self, snapshot: &[RowView]) -> Vec<Change> {
        let fresh: BTreeMap<&str, &RowView> = snapshot.iter().map(|r| (r.id.as_str(), r)).collect();
        let mut changes = Vec::new();
        for id in &self.order {
            let Some(new) = fresh.get(id.as_str()) else {
                continue;
            };
            let before = self.rows.get(id);
            if before.is_some_and(RowView::is_terminal) {
                continue;
            }
            let old_status = before.map_or("pending", |r| r.status.as_str());
            if new.status != old_status {
                changes.push(Change {
                    line: new.line(),
                    terminal: new.is_terminal(),
                });
            }
            self.rows.insert(id.clone(), (*new).clone());
        }
        changes
    }

    pub fn counts(&self) -> Counts {
        let mut c = Counts {
            total: self.order.len(),
            ..Counts::default()
        };
        for id in &self.order {
            match self.rows.get(id).and_then(|r| status_of(&r.status)) {
                Some(LifecycleStatus::Succeeded) => c.succeeded += 1,
                Some(LifecycleStatus::Failed) => c.failed += 1,
                Some(LifecycleStatus::Running) => c.running += 1,
                Some(LifecycleStatus::Pending) | None => c.pending += 1,
            }
        }
        c
    }

    /// Every followed row is terminal.
    pub fn done(&self) -> bool {
        self.order
            .iter()
            .all(|id| self.rows.get(id).is_some_and(RowView::is_terminal))
    }

    /// The failed rows, in the followed order.
    pub fn failed(&self) -> Vec<&RowView> {
        self.order
            .iter()
            .filter_map(|id| self.rows.get(id))
            .filter(|r| r.is_failed())
            .collect()
    }

    /// The rows still open, described (`decky-01 deploy running`, or the id when the master
    /// has not reported it yet).
    pub fn open(&self) -> Vec<String> {
        self.order
            .iter()
            .filter_map(|id| match self.rows.get(id) {
                Some(r) if r.is_terminal() => None,
                Some(r) => Some(r.line()),
                None => Some(format!("{id} (not reported yet)")),
            })
            .collect()
    }

    /// The names of the rows running now.
    fn running(&self) -> Vec<&str> {
        self.order
            .iter()
            .filter_map(|id| self.rows.get(id))
            .filter(|r| status_of(&r.status) == Some(LifecycleStatus::Running))
            .map(|r| r.decky_name.as_str())
            .collect()
    }

    /// `[#########---------------] 3/8 done, 1 failed · running: decky-04, decky-05`.
    pub fn bar(&self) -> String {
        let c = self.counts();
        let filled = (c.done() * BAR_WIDTH)
            .checked_div(c.total)
            .unwrap_or(BAR_WIDTH);
        let mut s = format!(
            "[{}{}] {}/{} done",
            "#".repeat(filled),
            "-".repeat(BAR_WIDTH - filled),
            c.done(),
            c.total
        );
        if c.failed > 0 {
            s.push_str(&format!(", {} failed", c.failed));
        }
        let running = self.running();
        if !running.is_empty() {
            const SHOWN: usize = 3;
            s.push_str(" · running: ");
            s.push_str(&running[..running.len().min(SHOWN)].join(", "));
            if running.len() > SHOWN {
                s.push_str(&format!(" (+{})", running.len() - SHOWN));
            }
        }
        s
    }

    /// The last line: `3 succeeded, 0 failed` (plus the failed deckies).
    pub fn summary(&self) -> String {
        let c = self.counts();
        let mut s = format!("{} succeeded, {} failed", c.succeeded, c.failed);
        let failed = self.failed();
        if !failed.is_empty() {
            let names: Vec<String> = failed
                .iter()
                .map(|r| format!("{} ({})", r.decky_name, r.operation))
                .collect();
            s.push_str(&format!(": {}", names.join(", ")));
        }
        s
    }

    /// The command's result once done: an error naming every failed row.
    pub fn outcome(&self) -> Result<(), CliError> {
        let failed = self.failed();
        if failed.is_empty() {
            return Ok(());
        }
        let what: Vec<String> = failed.iter().map(|r| r.line()).collect();
        Err(CliError::Failed(anyhow::anyhow!(
            "{} of {} operation(s) failed: {}",
            failed.len(),
            self.order.len(),
            what.join("; ")
        )))
    }
}

/// `GET /api/v1/deckies/lifecycle?ids=A&ids=B…`, in chunks: the rows as the master sent them.
pub async fn fetch_values(client: &MasterClient, ids: &[Uuid]) -> Result<Vec<Value>, CliError> {
    let mut rows = Vec::new();
    for chunk in ids.chunks(IDS_PER_REQUEST) {
        let body = client.get(&lifecycle_path(chunk)).await?;
        rows.extend(answer::<Rows<Value>>(body, "GET /api/v1/deckies/lifecycle")?.rows);
    }
    Ok(rows)
}

/// The rows' fields the CLI shows, each parsed as the typed row first.
pub fn views(rows: &[Value]) -> Result<Vec<RowView>, CliError> {
    rows.iter()
        .map(|r| {
            answer::<LifecycleRow>(r.clone(), "GET /api/v1/deckies/lifecycle")
                .map(|r| RowView::from(&r))
        })
        .collect()
}

/// `GET /api/v1/deckies/lifecycle?ids=A&ids=B…`, in chunks.
pub async fn fetch(client: &MasterClient, ids: &[Uuid]) -> Result<Vec<RowView>, CliError> {
    views(&fetch_values(client, ids).await?)
}

/// `/api/v1/deckies/lifecycle?ids=A&ids=B`.
pub fn lifecycle_path(ids: &[Uuid]) -> String {
    let query: Vec<String> = ids.iter().map(|id| format!("ids={id}")).collect();
    format!("{LIFECYCLE}?{}", query.join("&"))
}

/// Where the progress goes.
struct Printer<'a> {
    out: &'a mut dyn Write,
    tty: bool,
    /// The bar on screen now, if any.
    bar: Option<String>,
}

/// Back to the start of the line, and clear it.
const CLEAR: &str = "\r\x1b[2K";

impl Printer<'_> {
    fn changes(&mut self, tracker: &Tracker, changes: &[Change]) -> std::io::Result<()> {
        if !self.tty {
            for c in changes {
                writeln!(self.out, "{}", c.line)?;
            }
            return self.out.flush();
        }
        let bar = tracker.bar();
        let mut terminal = changes.iter().filter(|c| c.terminal).peekable();
        if terminal.peek().is_none() && self.bar.as_deref() == Some(bar.as_str()) {
            return Ok(());
        }
        for c in terminal {
            writeln!(self.out, "{CLEAR}{}", c.line)?;
        }
        write!(self.out, "{CLEAR}{bar}")?;
        self.bar = Some(bar);
        self.out.flush()
    }

    /// Ends the bar's line, so what follows starts on a line of its own.
    fn finish(&mut self) -> std::io::Result<()> {
        if self.bar.take().is_some() {
            write!(self.out, "{CLEAR}")?;
        }
        self.out.flush()
    }
}

/// Follows `ids` until every row is terminal, at most `timeout`. `tty`: draw a progress bar
/// instead of plain lines. Errors: any failed row (exit 1), the timeout (exit 1), a master
/// that keeps failing (exit 1) or refuses the token (exit 2).
pub async fn follow(
    client: &MasterClient,
    ids: &[Uuid],
    timeout: Duration,
    tty: bool,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    if ids.is_empty() {
        writeln!(out, "nothing to wait for: the master started no operation").context("write")?;
        return Ok(());
    }
    let mut tracker = Tracker::new(ids);
    let mut printer = Printer {
        out,
        tty,
        bar: None,
    };
    let deadline = tokio::time::Instant::now() + timeout;
    let mut failures = 0u32;
    loop {
        match fetch(client, ids).await {
            Ok(rows) => {
                failures = 0;
                let changes = tracker.observe(&rows);
                printer.changes(&tracker, &changes).context("write")?;
            }
            Err(e @ (CliError::Usage(_) | CliError::NotFound(_))) => {
                printer.finish().context("write")?;
                return Err(e);
            }
            Err(e) => {
                failures += 1;
                if failures >= MAX_POLL_FAILURES {
                    printer.finish().context("write")?;
                    return Err(CliError::Failed(anyhow::anyhow!(
                        "gave up waiting: {e} ({failures} polls in a row failed); the \
                         operations go on: follow them with `decnet lifecycle {}`",
                        ids_text(ids)
                    )));
                }
                tracing::warn!(error = %e, "lifecycle poll failed; retrying");
            }
        }
        if tracker.done() {
            break;
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            printer.finish().context("write")?;
            let open = tracker.open();
            return Err(CliError::Failed(anyhow::anyhow!(
                "timed out after {} s (--wait-timeout) with {} of {} operation(s) still open: {}; \
                 they go on: follow them with `decnet lifecycle {}`",
                timeout.as_secs(),
                open.len(),
                ids.len(),
                open.join(", "),
                ids_text(ids)
            )));
        }
        tokio::time::sleep(POLL_EVERY.min(deadline - now)).await;
    }
    printer.finish().context("write")?;
    writeln!(printer.out, "{}", tracker.summary()).context("write")?;
    tracker.outcome()
}

fn ids_text(ids: &[Uuid]) -> String {
    ids.iter()
        .map(Uuid::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, name: &str, op: &str, status: &str, error: Option<&str>) -> RowView {
        RowView {
            id: id.into(),
            decky_name: name.into(),
            operation: op.into(),
            status: status.into(),
            error: error.map(str::to_string),
            updated_at: None,
        }
    }

    fn lines(changes: &[Change]) -> Vec<&str> {
        changes.iter().map(|c| c.line.as_str()).collect()
    }

    #[test]
    fn successive_snapshots_become_one_line_per_status_change() {
        let mut t = Tracker::new(["a", "b", "c"]);
        assert_eq!(t.counts().pending, 3);
        // Nothing reported yet, then pending rows: no change.
        assert!(t.observe(&[]).is_empty());
        assert!(t
            .observe(&[row("a", "decky-01", "deploy", "pending", None)])
            .is_empty());
        assert!(!t.done());

        let c = t.observe(&[
            row("a", "decky-01", "deploy", "running", None),
            row("b", "decky-02", "deploy", "running", None),
            row("c", "decky-03", "deploy", "pending", None),
            // Not followed: ignored.
            row("z", "decky-99", "deploy", "failed", Some("x")),
        ]);
        assert_eq!(
            lines(&c),
            ["decky-01 deploy running", "decky-02 deploy running"]
        );
        assert!(c.iter().all(|c| !c.terminal));
        // The same snapshot again: nothing new.
        assert!(t
            .observe(&[row("a", "decky-01", "deploy", "running", None)])
            .is_empty());

        let c = t.observe(&[
            row("a", "decky-01", "deploy", "succeeded", None),
            row(
                "b",
                "decky-02",
                "deploy",
                "failed",
                Some("image pull\nfailed:  boom"),
            ),
            // pending → succeeded without a running in between is one change.
            row("c", "decky-03", "deploy", "succeeded", None),
        ]);
        assert_eq!(
            lines(&c),
            [
                "decky-01 deploy succeeded",
                "decky-02 deploy failed: image pull failed: boom",
                "decky-03 deploy succeeded"
            ]
        );
        assert!(c.iter().all(|c| c.terminal));
        assert!(t.done());
        assert_eq!(
            t.counts(),
            Counts {
                total: 3,
                pending: 0,
                running: 0,
                succeeded: 2,
                failed: 1
            }
        );
        // Terminal rows never change again.
        assert!(t
            .observe(&[row("a", "decky-01", "deploy", "running", None)])
            .is_empty());
        assert_eq!(t.summary(), "2 succeeded, 1 failed: decky-02 (deploy)");
        let e = t.outcome().unwrap_err();
        assert_eq!(e.exit_code(), 1);
        assert_eq!(
            e.to_string(),
            "1 of 3 operation(s) failed: decky-02 deploy failed: image pull failed: boom"
        );
    }

    #[test]
    fn done_needs_every_row_reported_and_terminal() {
        let mut t = Tracker::new(["a", "b", "a"]);
        assert_eq!(t.counts().total, 2, "repeats are followed once");
        t.observe(&[row("a", "decky-01", "teardown", "succeeded", None)]);
        assert!(!t.done());
        assert_eq!(t.open(), ["b (not reported yet)"]);
        t.observe(&[row("b", "decky-02", "mutate", "running", None)]);
        assert_eq!(t.open(), ["decky-02 mutate running"]);
        t.observe(&[row("b", "decky-02", "mutate", "succeeded", None)]);
        assert!(t.done());
        assert!(t.outcome().is_ok());
        assert_eq!(t.summary(), "2 succeeded, 0 failed");
        assert!(Tracker::new(Vec::<String>::new()).done());
    }

    #[test]
    fn failed_without_an_error_and_unknown_statuses() {
        assert_eq!(
            row("a", "d", "deploy", "failed", None).line(),
            "d deploy failed"
        );
        assert_eq!(
            row("a", "d", "deploy", "failed", Some("  ")).line(),
            "d deploy failed"
        );
        // A status this CLI does not know is shown, and is not terminal.
        let r = row("a", "d", "deploy", "queued", None);
        assert!(!r.is_terminal());
        assert_eq!(r.line(), "d deploy queued");
        let long = "x".repeat(1000);
        assert_eq!(one_line(&long).chars().count(), ERROR_CHARS);
    }

    #[test]
    fn the_bar_shows_progress_failures_and_who_runs() {
        let mut t = Tracker::new(["a", "b", "c", "d", "e", "f"]);
        assert_eq!(t.bar(), format!("[{}] 0/6 done", "-".repeat(BAR_WIDTH)));
        t.observe(&[
            row("a", "decky-01", "deploy", "succeeded", None),
            row("b", "decky-02", "deploy", "failed", Some("boom")),
            row("c", "decky-03", "deploy", "running", None),
            row("d", "decky-04", "deploy", "running", None),
            row("e", "decky-05", "deploy", "running", None),
            row("f", "decky-06", "deploy", "running", None),
        ]);
        assert_eq!(
            t.bar(),
            format!(
                "[{}{}] 2/6 done, 1 failed · running: decky-03, decky-04, decky-05 (+1)",
                "#".repeat(8),
                "-".repeat(16)
            )
        );
    }

    #[test]
    fn the_printer_draws_plain_lines_or_a_bar() {
        let mut t = Tracker::new(["a"]);
        let changes = t.observe(&[row("a", "decky-01", "deploy", "running", None)]);
        let mut buf = Vec::new();
        let mut p = Printer {
            out: &mut buf,
            tty: false,
            bar: None,
        };
        p.changes(&t, &changes).unwrap();
        p.finish().unwrap();
        assert_eq!(String::from_utf8(buf).unwrap(), "decky-01 deploy running\n");

        let mut buf = Vec::new();
        let mut p = Printer {
            out: &mut buf,
            tty: true,
            bar: None,
        };
        p.changes(&t, &changes).unwrap();
        // An unchanged bar is not redrawn.
        p.changes(&t, &[]).unwrap();
        let changes = t.observe(&[row("a", "decky-01", "deploy", "succeeded", None)]);
        p.changes(&t, &changes).unwrap();
        p.finish().unwrap();
        let text = String::from_utf8(buf).unwrap();
        // Running shows only in the bar; the terminal change gets a line of its own.
        assert_eq!(
            text,
            format!(
                "{CLEAR}[{}] 0/1 done · running: decky-01\
                 {CLEAR}decky-01 deploy succeeded\n{CLEAR}[{}] 1/1 done{CLEAR}",
                "-".repeat(BAR_WIDTH),
                "#".repeat(BAR_WIDTH)
            )
        );
    }

    #[test]
    fn lifecycle_paths_repeat_the_ids_key() {
        let a = Uuid::from_u128(1);
        let b = Uuid::from_u128(2);
        assert_eq!(
            lifecycle_path(&[a, b]),
            format!("/api/v1/deckies/lifecycle?ids={a}&ids={b}")
        );
    }
}

//! `GET /api/v1/events` (PRODUCT §7, §9): the bus as server-sent events, for any token.
//!
//! Each event is `id: <n>` / `event: <topic>` / `data: <JSON body>`. The stream first replays
//! the events the bus still keeps (those after `Last-Event-ID`, or after `?since=N`), then
//! follows live ones; `?follow=false` ends after the replay. A subscriber too slow for the bus
//! gets `event: bus.lagged` with `{"missed": n}` instead of the events it lost. Streams end when
//! the master shuts down; a comment every 15 s keeps idle connections open.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::RawQuery;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use decnet_web::ApiError;
use futures_util::stream::{self, Stream, StreamExt};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use super::auth::Caller;
use super::state::{BroadcastBus, Master, Numbered};

/// The topic of the notice sent in place of events a slow subscriber lost.
pub const LAGGED_TOPIC: &str = "bus.lagged";

/// The body of a [`LAGGED_TOPIC`] event: how many events this subscriber missed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Lagged {
    /// Events dropped because the subscriber read too slowly.
    pub missed: u64,
}
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// What the events route needs besides the master: the bus itself and the shutdown signal.
#[derive(Debug, Clone)]
pub struct EventsHub {
    pub bus: BroadcastBus,
    pub shutdown: CancellationToken,
}

pub fn routes() -> Router<Arc<Master>> {
    Router::new().route("/api/v1/events", get(events))
}

/// The stream's options, from the query string and `Last-Event-ID`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamOptions {
    pub follow: bool,
    pub after: Option<u64>,
}

/// Parses `follow=true|false|1|0` and `since=N`; `Last-Event-ID` (an SSE client's resume)
/// wins over `since`. Errors name the parameter.
pub fn parse_options(
    query: Option<&str>,
    last_event_id: Option<&str>,
) -> Result<StreamOptions, String> {
    let mut opts = StreamOptions {
        follow: true,
        after: None,
    };
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "follow" => {
                opts.follow = match v {
                    "true" | "1" | "" => true,
                    "false" | "0" => false,
                    _ => return Err(format!("follow: {v:?} is not true or false")),
                }
            }
            "since" => {
                opts.after = Some(
                    v.parse()
                        .map_err(|_| format!("since: {v:?} is not an event id (a whole number)"))?,
                )
            }
            _ => {
                return Err(format!(
                    "{k}: unknown query parameter (use follow=, since=)"
                ))
            }
        }
    }
    if let Some(id) = last_event_id.map(str::trim).filter(|s| !s.is_empty()) {
        opts.after = Some(
            id.parse()
                .map_err(|_| format!("Last-Event-ID: {id:?} is not an event id"))?,
        );
    }
    Ok(opts)
}

fn sse_event((id, e): Numbered) -> Event {
    Event::default()
        .id(id.to_string())
        .event(e.topic)
        .data(e.body.to_string())
}

type EventStream = Pin<Box<dyn Stream<Item = Result<Event, Infallible>> + Send>>;

async fn events(
    _caller: Caller,
    Extension(hub): Extension<EventsHub>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let last = headers
        .get("last-event-id")
        .map(|v| v.to_str().unwrap_or("\u{fffd}"));
    let opts = parse_options(query.as_deref(), last).map_err(ApiError::unprocessable)?;
    let (replay, rx) = hub.bus.replay_and_subscribe(opts.after);
    let replay = stream::iter(replay.into_iter().map(|n| Ok(sse_event(n))));
    let stream: EventStream = if opts.follow {
        let live = stream::unfold((rx, hub.shutdown), |(mut rx, shutdown)| async move {
            let next = tokio::select! {
                _ = shutdown.cancelled() => return None,
                r = rx.recv() => r,
            };
            let event = match next {
                Ok(n) => sse_event(n),
                Err(RecvError::Lagged(missed)) => Event::default()
                    .event(LAGGED_TOPIC)
                    .data(serde_json::to_string(&Lagged { missed }).unwrap_or_default()),
                Err(RecvError::Closed) => return None,
            };
            Some((Ok(event), (rx, shutdown)))
        });
        Box::pin(replay.chain(live))
    } else {
        Box::pin(replay)
    };
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options() {
        let o = |q: &str, h: Option<&str>| parse_options(Some(q), h);
        assert_eq!(
            o("", None).unwrap(),
            StreamOptions {
                follow: true,
                after: None
            }
        );
        assert_eq!(
            o("follow=false&since=7", None).unwrap(),
            StreamOptions {
                follow: false,
                after: Some(7)
            }
        );
        assert_eq!(o("since=7", Some("9")).unwrap().after, Some(9));
        assert!(o("follow=maybe", None).unwrap_err().starts_with("follow:"));
        assert!(o("since=-1", None).unwrap_err().starts_with("since:"));
        assert!(o("bogus=1", None).unwrap_err().starts_with("bogus:"));
        assert!(o("", Some("x")).unwrap_err().starts_with("Last-Event-ID:"));
    }
}

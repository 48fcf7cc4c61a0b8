#![allow(clippy::unwrap_used)]
//! The heartbeat loop under paused time, against a scripted in-memory master.

use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use decnet_agent::heartbeat::{HeartbeatLoop, StatusSource};
use decnet_agent::outbox::{Outbox, OutboxSink};
use decnet_core::model::{
    AgentStatus, DeckyName, HeartbeatBody, HostUuid, LifecycleDelta, Operation,
};
use decnet_core::traits::{HeartbeatAck, HeartbeatTransport, LifecycleSink, TransportError};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::{sleep, Instant};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const INTERVAL: Duration = Duration::from_secs(30);

/// One heartbeat the fake master received.
#[derive(Clone)]
struct Call {
    at: Instant,
    body: HeartbeatBody,
    accepted: bool,
}

type Hook = Box<dyn Fn(&HeartbeatBody) + Send + Sync>;

/// The master: up (204) or down (unreachable, or a fixed rejection status).
#[derive(Default)]
struct FakeMaster {
    up: AtomicBool,
    reject_with: AtomicU16,
    calls: Mutex<Vec<Call>>,
    /// Runs inside `send`, while the heartbeat is "in flight".
    hook: Mutex<Option<Hook>>,
}

impl FakeMaster {
    fn new(up: bool) -> Arc<Self> {
        let m = Self::default();
        m.up.store(up, Ordering::SeqCst);
        Arc::new(m)
    }
    fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
    }
    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
    fn gaps(&self) -> Vec<Duration> {
        let c = self.calls();
        c.windows(2).map(|w| w[1].at - w[0].at).collect()
    }
    /// Delta ids the master accepted, in order, with repetitions.
    fn accepted_ids(&self) -> Vec<Uuid> {
        self.calls()
            .iter()
            .filter(|c| c.accepted)
            .flat_map(|c| c.body.lifecycle.iter().map(|d| d.id))
            .collect()
    }
}

#[async_trait::async_trait]
impl HeartbeatTransport for FakeMaster {
    async fn send(&self, body: &HeartbeatBody) -> Result<HeartbeatAck, TransportError> {
        if let Some(h) = self.hook.lock().unwrap().as_ref() {
            h(body);
        }
        // Some network time, so "in flight" is a real interval.
        sleep(Duration::from_millis(50)).await;
        let up = self.up.load(Ordering::SeqCst);
        let reject = self.reject_with.load(Ordering::SeqCst);
        let accepted = up && reject == 0;
        self.calls.lock().unwrap().push(Call {
            at: Instant::now(),
            body: body.clone(),
            accepted,
        });
        match (up, reject) {
            (true, 0) => Ok(HeartbeatAck::Accepted),
            (true, status) => Ok(HeartbeatAck::Rejected { status }),
            (false, _) => Err(TransportError::unreachable("connection refused")),
        }
    }
}

struct FixedStatus;

#[async_trait::async_trait]
impl StatusSource for FixedStatus {
    async fn snapshot(&self) -> AgentStatus {
        AgentStatus::not_deployed(Utc::now(), vec![])
    }
}

fn delta(name: &str, secs: i64) -> LifecycleDelta {
    let at: DateTime<Utc> = DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap();
    LifecycleDelta::new(
        Some(Uuid::new_v4()),
        DeckyName::new(name).unwrap(),
        Operation::Deploy,
        Ok(()),
        at,
    )
}

struct Agent {
    outbox: Arc<Outbox>,
    sink: OutboxSink,
    shutdown: CancellationToken,
    handle: JoinHandle<()>,
}

impl Agent {
    fn start(
        master: &Arc<FakeMaster>,
        dir: &std::path::Path,
        host: HostUuid,
        tweak: impl FnOnce(&mut HeartbeatLoop),
    ) -> Agent {
        let outbox = Arc::new(Outbox::open(dir).unwrap());
        let wake = Arc::new(Notify::new());
        let shutdown = CancellationToken::new();
        let mut hb =
            HeartbeatLoop::new(master.clone(), outbox.clone(), Arc::new(FixedStatus), host);
        tweak(&mut hb);
        let handle = tokio::spawn(hb.run(wake.clone(), shutdown.clone()));
        Agent {
            sink: OutboxSink::new(outbox.clone(), wake.clone()),
            outbox,
            shutdown,
            handle,
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(1), self.handle)
            .await
            .expect("the loop exits promptly on shutdown")
            .unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn start_up_beat_then_jittered_interval() {
    let tmp = tempfile::tempdir().unwrap();
    let master = FakeMaster::new(true);
    let host = HostUuid::new_v4();
    let t0 = Instant::now();
    let agent = Agent::start(&master, tmp.path(), host, |_| {});

    sleep(Duration::from_secs(1)).await;
    let calls = master.calls();
    assert_eq!(calls.len(), 1, "one heartbeat at start-up");
    assert!(calls[0].at - t0 < Duration::from_secs(1));
    let body = &calls[0].body;
    assert_eq!(body.host_uuid, host);
    assert_eq!(
        body.agent_version.as_deref(),
        Some(env!("CARGO_PKG_VERSION"))
    );
    assert!(body.lifecycle.is_empty());

    // Nothing before 90 % of the interval.
    sleep(Duration::from_secs(25)).await;
    assert_eq!(master.calls().len(), 1);

    sleep(Duration::from_secs(600)).await;
    let gaps = master.gaps();
    assert!(gaps.len() >= 18, "{} heartbeats in 10 min", gaps.len() + 1);
    for g in &gaps {
        assert!(
            *g >= INTERVAL.mul_f64(0.9) && *g <= INTERVAL.mul_f64(1.1) + Duration::from_secs(1),
            "gap {g:?} outside 30 s ± 10 %"
        );
    }
    // Jitter: the gaps are not all the same.
    assert!(gaps.iter().any(|g| *g != gaps[0]), "{gaps:?}");
    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn finished_work_is_pushed_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let master = FakeMaster::new(true);
    let agent = Agent::start(&master, tmp.path(), HostUuid::new_v4(), |_| {});
    sleep(Duration::from_secs(5)).await;
    assert_eq!(master.calls().len(), 1);

    let d = delta("decky-01", 0);
    agent.sink.record(vec![d.clone()]).await.unwrap();
    sleep(Duration::from_secs(1)).await;
    let calls = master.calls();
    assert_eq!(calls.len(), 2, "pushed immediately, not after the interval");
    assert_eq!(calls[1].body.lifecycle, vec![d.clone()]);
    assert!(agent.outbox.is_empty(), "204 acknowledged it");

    // Later heartbeats do not carry it again.
    sleep(Duration::from_secs(100)).await;
    assert_eq!(master.accepted_ids(), vec![d.id]);
    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn deltas_recorded_during_an_outage_arrive_exactly_once_across_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let host = HostUuid::new_v4();
    let master = FakeMaster::new(false);

    // First life of the agent: the master is down.
    let agent = Agent::start(&master, tmp.path(), host, |_| {});
    let (d1, d2) = (delta("decky-01", 1), delta("decky-02", 2));
    agent
        .sink
        .record(vec![d1.clone(), d2.clone()])
        .await
        .unwrap();
    sleep(Duration::from_secs(120)).await;
    let failed = master.calls();
    assert!(failed.len() > 3, "retried while down");
    assert!(failed.iter().all(|c| !c.accepted));
    // Every attempt carried the pending deltas.
    assert!(failed
        .iter()
        .skip(1)
        .all(|c| c.body.lifecycle == vec![d1.clone(), d2.clone()]));
    agent.stop().await;

    // Second life: same directory, one more delta, and then the master comes back.
    let agent = Agent::start(&master, tmp.path(), host, |_| {});
    assert_eq!(agent.outbox.len(), 2, "the outbox survived the restart");
    let d3 = delta("decky-03", 3);
    agent.sink.record(vec![d3.clone()]).await.unwrap();
    sleep(Duration::from_secs(10)).await;
    master.set_up(true);
    // Within one interval of the master's return.
    sleep(INTERVAL + Duration::from_secs(1)).await;
    assert!(agent.outbox.is_empty());
    sleep(Duration::from_secs(300)).await;

    let mut got = master.accepted_ids();
    let mut want = vec![d1.id, d2.id, d3.id];
    got.sort();
    want.sort();
    assert_eq!(got, want, "each delta acknowledged exactly once");
    agent.stop().await;
    // And nothing is pending after yet another restart.
    assert!(Outbox::open(tmp.path()).unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_long_outage_never_stretches_retries_beyond_the_interval() {
    let tmp = tempfile::tempdir().unwrap();
    let master = FakeMaster::new(false);
    let agent = Agent::start(&master, tmp.path(), HostUuid::new_v4(), |_| {});
    agent.sink.record(vec![delta("decky-01", 0)]).await.unwrap();
    sleep(Duration::from_secs(3 * 3600)).await;

    let gaps = master.gaps();
    assert!(gaps.len() > 300, "{}", gaps.len());
    let limit = INTERVAL + Duration::from_millis(100); // + the fake's network time
    for (i, g) in gaps.iter().enumerate() {
        assert!(*g <= limit, "gap {i} is {g:?}");
    }
    // It backs off (starting at about a second) rather than hammering the master...
    assert!(
        gaps[..4].iter().all(|g| *g < Duration::from_secs(10)),
        "{gaps:?}"
    );
    // ...up to the interval (minus jitter), where it stays.
    for g in &gaps[gaps.len() - 50..] {
        assert!(*g >= INTERVAL.mul_f64(0.9), "{g:?}");
    }
    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_rejection_keeps_the_deltas() {
    let tmp = tempfile::tempdir().unwrap();
    let master = FakeMaster::new(true);
    master.reject_with.store(403, Ordering::SeqCst);
    let agent = Agent::start(&master, tmp.path(), HostUuid::new_v4(), |_| {});
    let d = delta("decky-01", 0);
    agent.sink.record(vec![d.clone()]).await.unwrap();
    sleep(Duration::from_secs(90)).await;
    assert_eq!(agent.outbox.pending(10), vec![d.clone()]);
    master.reject_with.store(0, Ordering::SeqCst);
    sleep(Duration::from_secs(31)).await;
    assert!(agent.outbox.is_empty());
    assert_eq!(master.accepted_ids(), vec![d.id]);
    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn no_heartbeat_carries_more_than_max_deltas() {
    let tmp = tempfile::tempdir().unwrap();
    let master = FakeMaster::new(false);
    let agent = Agent::start(&master, tmp.path(), HostUuid::new_v4(), |hb| {
        hb.max_deltas = 100;
    });
    let all: Vec<LifecycleDelta> = (0..250).map(|i| delta(&format!("d-{i}"), i)).collect();
    agent.sink.record(all.clone()).await.unwrap();
    sleep(Duration::from_secs(5)).await;
    master.set_up(true);
    sleep(INTERVAL).await;

    let calls = master.calls();
    assert!(calls.iter().all(|c| c.body.lifecycle.len() <= 100));
    let accepted: Vec<&Call> = calls.iter().filter(|c| c.accepted).collect();
    let sizes: Vec<usize> = accepted.iter().map(|c| c.body.lifecycle.len()).collect();
    assert_eq!(&sizes[..3], [100, 100, 50], "{sizes:?}");
    // Oldest first, and the follow-ups went out at once, not an interval later.
    assert_eq!(
        master.accepted_ids(),
        all.iter().map(|d| d.id).collect::<Vec<_>>()
    );
    assert!(accepted[2].at - accepted[0].at < Duration::from_secs(1));
    assert!(agent.outbox.is_empty());
    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn only_the_deltas_a_heartbeat_carried_are_acknowledged() {
    let tmp = tempfile::tempdir().unwrap();
    let master = FakeMaster::new(true);
    let agent = Agent::start(&master, tmp.path(), HostUuid::new_v4(), |_| {});
    sleep(Duration::from_secs(1)).await;

    // While the heartbeat carrying `first` is in flight, another job finishes.
    let late = delta("decky-late", 0);
    let outbox = agent.outbox.clone();
    let late_c = late.clone();
    let fired = Arc::new(AtomicBool::new(false));
    let fired_c = fired.clone();
    *master.hook.lock().unwrap() = Some(Box::new(move |body: &HeartbeatBody| {
        if !body.lifecycle.is_empty() && !fired_c.swap(true, Ordering::SeqCst) {
            outbox.record(vec![late_c.clone()]).unwrap();
        }
    }));
    let first = delta("decky-first", 5);
    agent.sink.record(vec![first.clone()]).await.unwrap();
    sleep(Duration::from_secs(2)).await;

    let calls: Vec<Call> = master.calls().into_iter().filter(|c| c.accepted).collect();
    let carried: Vec<Vec<Uuid>> = calls
        .iter()
        .map(|c| c.body.lifecycle.iter().map(|d| d.id).collect())
        .filter(|v: &Vec<Uuid>| !v.is_empty())
        .collect();
    // The first heartbeat carried only `first` (though `late` sorts before it), and `late`
    // was not acknowledged by it: it went out in the next heartbeat, at once.
    assert_eq!(carried, vec![vec![first.id], vec![late.id]]);
    assert!(agent.outbox.is_empty());
    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_interrupts_a_hanging_send() {
    struct Hang;
    #[async_trait::async_trait]
    impl HeartbeatTransport for Hang {
        async fn send(&self, _: &HeartbeatBody) -> Result<HeartbeatAck, TransportError> {
            std::future::pending().await
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let outbox = Arc::new(Outbox::open(tmp.path()).unwrap());
    let shutdown = CancellationToken::new();
    let hb = HeartbeatLoop::new(
        Arc::new(Hang),
        outbox,
        Arc::new(FixedStatus),
        HostUuid::new_v4(),
    );
    let handle = tokio::spawn(hb.run(Arc::new(Notify::new()), shutdown.clone()));
    sleep(Duration::from_secs(5)).await;
    let t = Instant::now();
    shutdown.cancel();
    handle.await.unwrap();
    assert!(Instant::now() - t < Duration::from_millis(10));
}

#[test]
fn defaults() {
    let tmp = tempfile::tempdir().unwrap();
    let hb = HeartbeatLoop::new(
        FakeMaster::new(true),
        Arc::new(Outbox::open(tmp.path()).unwrap()),
        Arc::new(FixedStatus),
        HostUuid::new_v4(),
    );
    assert_eq!(hb.interval, INTERVAL);
    assert_eq!(hb.max_deltas, 100);
    assert_eq!(hb.agent_version, env!("CARGO_PKG_VERSION"));
    assert!((hb.jitter - 0.1).abs() < f64::EPSILON);
}

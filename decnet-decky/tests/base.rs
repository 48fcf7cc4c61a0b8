//! `decnet-decky base`: PID-1 mode exits 0 promptly on SIGTERM and SIGINT.

mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

fn start(args: &[&str]) -> std::process::Child {
    let mut child = command(args, None).spawn().expect("spawn");
    // Still running after a moment: it sleeps rather than exiting.
    thread::sleep(Duration::from_millis(300));
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "base exited on its own"
    );
    child
}

#[test]
fn base_exits_zero_on_sigterm() {
    let mut child = start(&["base"]);
    let t = Instant::now();
    let status = terminate(&mut child, Signal::SIGTERM);
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert!(t.elapsed() < Duration::from_secs(2), "prompt exit");
}

#[test]
fn default_mode_is_base_and_exits_zero_on_sigint() {
    let mut child = start(&[]);
    let status = terminate(&mut child, Signal::SIGINT);
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[test]
fn base_survives_sigchld_and_sighup_noise() {
    let mut child = start(&["base"]);
    let pid = Pid::from_raw(child.id() as i32);
    kill(pid, Signal::SIGCHLD).expect("kill");
    thread::sleep(Duration::from_millis(100));
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "SIGCHLD must not stop base"
    );
    let status = terminate(&mut child, Signal::SIGTERM);
    assert_eq!(status.code(), Some(0));
}

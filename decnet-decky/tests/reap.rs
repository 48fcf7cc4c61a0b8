//! Zombie reaping used by PID 1. Its own test binary: `waitpid(-1)` would
//! steal the exit status of children that other tests wait for.

use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

#[test]
fn reaps_exited_children() {
    assert_eq!(decnet_decky::base::reap_zombies(), 0, "no children yet");
    // Exited but never waited for: zombies until reaped.
    let spawned: Vec<_> = (0..3)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_decnet-decky"))
                .arg("--version")
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("spawn")
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut reaped = 0;
    while reaped < spawned.len() && Instant::now() < deadline {
        reaped += decnet_decky::base::reap_zombies();
        thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(reaped, 3);
    assert_eq!(decnet_decky::base::reap_zombies(), 0);
}

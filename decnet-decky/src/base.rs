//! `base` mode: PID 1 of a decky's base container.
//!
//! The base container only holds the decky's network namespace (IP, MAC,
//! sysctls). Its PID 1 sleeps, reaps whatever gets re-parented to it, and
//! exits 0 promptly when asked to stop. The kernel drops SIGTERM for PID 1
//! unless a handler is installed: `main` installs one (signal-hook) and feeds
//! the delivered signals to [`run`].

use std::os::raw::c_int;

use nix::errno::Errno;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use signal_hook::consts::{SIGCHLD, SIGINT, SIGTERM};

/// Signals the base (and serve) loops listen for.
pub const SIGNALS: [c_int; 3] = [SIGTERM, SIGINT, SIGCHLD];

/// Consumes delivered signals until SIGTERM or SIGINT; reaps on SIGCHLD.
/// Returns the stopping signal, or `None` if the stream of signals ended.
pub fn run<I, R>(signals: I, mut reap: R) -> Option<c_int>
where
    I: IntoIterator<Item = c_int>,
    R: FnMut(),
{
    // Children may have exited before the handler was in place.
    reap();
    for sig in signals {
        match sig {
            SIGTERM | SIGINT => return Some(sig),
            SIGCHLD => reap(),
            _ => {}
        }
    }
    None
}

/// Reaps every exited child without blocking; returns how many were reaped.
pub fn reap_zombies() -> usize {
    let mut n = 0;
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => return n,
            Ok(_) => n += 1,
            Err(Errno::EINTR) => continue,
            // ECHILD: no children at all.
            Err(_) => return n,
        }
    }
}

/// [`reap_zombies`] for [`run`]'s callback.
pub fn reap_zombies_quietly() {
    reap_zombies();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_on_term_and_int_and_reaps_on_chld() {
        let mut reaps = 0;
        let stop = run([SIGCHLD, SIGCHLD, SIGTERM, SIGCHLD], || reaps += 1);
        assert_eq!(stop, Some(SIGTERM));
        assert_eq!(reaps, 3, "once at start, once per SIGCHLD before SIGTERM");

        let mut reaps = 0;
        assert_eq!(run([SIGINT], || reaps += 1), Some(SIGINT));
        assert_eq!(reaps, 1);
    }

    #[test]
    fn ignores_other_signals_and_returns_none_when_stream_ends() {
        assert_eq!(run([signal_hook::consts::SIGHUP], || {}), None);
    }
}

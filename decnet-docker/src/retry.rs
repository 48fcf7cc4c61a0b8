//! Bounded retries of daemon calls: transient errors (connection trouble, the daemon saying it
//! is busy or timed out) are retried with backoff; permanent ones (4xx, unknown image, invalid
//! parameters) are not.

use std::future::Future;
use std::time::Duration;

use bollard::errors::Error;

use crate::DockerError;

/// Attempts per call, and the first backoff (doubled each time).
pub const ATTEMPTS: u32 = 4;
pub const FIRST_BACKOFF: Duration = Duration::from_millis(200);

/// Whether an error is worth retrying.
pub fn is_transient(e: &Error) -> bool {
    match e {
        Error::DockerResponseServerError {
            status_code,
            message,
        } => {
            let m = message.to_ascii_lowercase();
            *status_code >= 500
                && [
                    "timeout",
                    "timed out",
                    "temporar",
                    "try again",
                    "connection reset",
                    "resource busy",
                    "device or resource busy",
                    "eof",
                ]
                .iter()
                .any(|k| m.contains(k))
        }
        Error::IOError { .. } | Error::HyperResponseError { .. } | Error::RequestTimeoutError => {
            true
        }
        _ => false,
    }
}

/// Runs `op` until it succeeds, fails permanently, or runs out of attempts.
pub async fn retry<T, F, Fut>(what: &str, mut op: F) -> Result<T, DockerError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let mut backoff = FIRST_BACKOFF;
    let mut attempt = 1;
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) if attempt < ATTEMPTS && is_transient(&e) => {
                tracing::warn!(what, attempt, error = %e, "transient docker error; retrying");
                tokio::time::sleep(backoff).await;
                backoff *= 2;
                attempt += 1;
            }
            Err(e) => {
                return Err(DockerError::Api {
                    what: what.to_string(),
                    source: e,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn server(code: u16, msg: &str) -> Error {
        Error::DockerResponseServerError {
            status_code: code,
            message: msg.into(),
        }
    }

    #[test]
    fn classification() {
        assert!(is_transient(&server(
            500,
            "context deadline exceeded: timeout"
        )));
        assert!(is_transient(&server(503, "Resource busy")));
        assert!(!is_transient(&server(500, "invalid sysctl")));
        assert!(!is_transient(&server(404, "No such image: x")));
        assert!(!is_transient(&server(409, "Conflict. timeout")));
        assert!(is_transient(&Error::RequestTimeoutError));
    }

    #[tokio::test(start_paused = true)]
    async fn transient_errors_are_retried_then_given_up() {
        let calls = AtomicU32::new(0);
        let r: Result<(), _> = retry("x", || {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err(server(500, "timeout")) }
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), ATTEMPTS);

        let calls = AtomicU32::new(0);
        let r: Result<(), _> = retry("x", || {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err(server(404, "no such image")) }
        })
        .await;
        assert!(r.is_err());
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "permanent errors are not retried"
        );

        let calls = AtomicU32::new(0);
        let r = retry("x", || {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    Err(server(500, "timeout"))
                } else {
                    Ok(7)
                }
            }
        })
        .await;
        assert_eq!(r.unwrap(), 7);
    }
}

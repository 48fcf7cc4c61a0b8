//! A tiny `join_all`: the core has no async runtime dependency, so the suite cannot spawn.
//! Every future is polled in turn from one task; each suspends on its own I/O, so a real
//! store sees the calls in flight at the same time (each pooled connection runs its own).

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

/// A boxed future the suite runs concurrently with others.
pub(crate) type Task<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Polls every future until all are done; results in input order.
pub(crate) async fn join_all<T>(tasks: Vec<Task<'_, T>>) -> Vec<T> {
    let mut slots: Vec<(Task<'_, T>, Option<T>)> = tasks.into_iter().map(|t| (t, None)).collect();
    std::future::poll_fn(move |cx| {
        let mut pending = false;
        for (task, out) in slots.iter_mut() {
            if out.is_none() {
                match task.as_mut().poll(cx) {
                    Poll::Ready(v) => *out = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(slots.iter_mut().filter_map(|(_, out)| out.take()).collect())
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn joins_in_order() {
        let tasks: Vec<Task<'_, usize>> = (0..4usize)
            .map(|i| -> Task<'_, usize> {
                Box::pin(async move {
                    for _ in 0..(4 - i) {
                        tokio::task::yield_now().await;
                    }
                    i
                })
            })
            .collect();
        assert_eq!(join_all(tasks).await, vec![0, 1, 2, 3]);
    }
}

//! Requests to the target at bounded concurrency that stop at the first sign it does not answer.
//!
//! A target that refuses connections fails every request at once; one that hangs (a dropped
//! route, a frozen API server) fails each only when the client's timeout runs out. Waiting for
//! every request of a pass would then hold the replicator — its status, its RPO gauge, the probe
//! that tells when the target is back — for a timeout per round of concurrent requests: minutes
//! for a backlog of a few hundred changes. So the first request that finds the target silent ends
//! the pass: the requests still in flight are dropped and what was not answered is handed back
//! to be tried once the target answers again.

use std::future::Future;

use futures::{StreamExt, stream};

use super::super::target::Failure;

/// What a pass of requests came to.
pub(super) struct Pass<T> {
    /// The answers, by the index of the request, of the requests that were answered (refusals
    /// included); the others are to be tried again.
    pub(super) answered: Vec<(usize, Result<T, Failure>)>,
    /// Why the pass stopped early: the first request that found the target silent.
    pub(super) unreachable: Option<String>,
}

/// Makes the requests `0..count` (`request(i)`), at most `concurrency` at once, until all are
/// answered or one finds the target unreachable.
pub(super) async fn until_unreachable<T, F, Fut>(
    count: usize,
    concurrency: usize,
    request: F,
) -> Pass<T>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<T, Failure>>,
{
    let mut answered = Vec::with_capacity(count);
    let mut results = std::pin::pin!(
        stream::iter(0..count)
            .map(|index| {
                let sent = request(index);
                async move { (index, sent.await) }
            })
            .buffer_unordered(concurrency.max(1))
    );
    while let Some((index, result)) = results.next().await {
        if let Err(Failure::Unreachable(message)) = result {
            return Pass {
                answered,
                unreachable: Some(message),
            };
        }
        answered.push((index, result));
    }
    Pass {
        answered,
        unreachable: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_silent_target_ends_the_pass_without_waiting_for_the_other_requests() {
        // Request 3 finds the target silent after a moment; the others would hang for a minute.
        let started = std::time::Instant::now();
        let pass = until_unreachable(100, 4, |index| async move {
            match index {
                0 | 1 => Ok(index),
                2 => Err(Failure::Rejected {
                    reason: "Invalid",
                    message: "bad".into(),
                }),
                3 => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Err(Failure::Unreachable("no answer in time".into()))
                }
                _ => {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    Ok(index)
                }
            }
        })
        .await;
        assert_eq!(pass.unreachable.as_deref(), Some("no answer in time"));
        assert!(started.elapsed() < Duration::from_secs(10));
        let mut answered: Vec<usize> = pass.answered.iter().map(|(i, _)| *i).collect();
        answered.sort_unstable();
        assert_eq!(answered, vec![0, 1, 2], "a refusal is an answer");
    }

    #[tokio::test]
    async fn every_request_is_answered_when_the_target_answers() {
        let pass =
            until_unreachable(50, 8, |index| async move { Ok::<_, Failure>(index * 2) }).await;
        assert!(pass.unreachable.is_none());
        assert_eq!(pass.answered.len(), 50);
    }
}

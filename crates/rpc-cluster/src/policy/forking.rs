//! Forking: several providers at once, the first success wins.

use std::sync::Arc;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use rpc_core::{BoxFuture, Outcome, Response, RpcError};

use super::{Policy, combine, deadline_passed};
use crate::call::Call;
use crate::select::Select;

/// Calls `forks` different providers (default 2; fewer when fewer exist) at
/// once (different provider processes: one exporting two protocols is called
/// once). The first success is the answer and the other attempts are
/// cancelled (their responses are discarded); when all fail, the error of
/// the last to fail, unless an earlier one's outcome was unknown: then that
/// one, for the call may have run. Every attempt ends by the call's deadline, so a call
/// that no provider answers in time fails with a timeout, never an empty
/// success. For reads where latency matters more than load.
#[derive(Clone, Copy, Debug, Default)]
pub struct Forking;

impl Policy for Forking {
    fn call(&self, call: Call, select: &Arc<dyn Select>) -> BoxFuture<Result<Response, RpcError>> {
        let forks = call.settings.forks;
        let mut chosen = Vec::new();
        for _ in 0..forks {
            match select.select(&call, &chosen) {
                // Select answers a tried provider once all were tried: stop there.
                Ok(endpoint) if chosen.iter().any(|c: &crate::Endpoint| c.same_process(&endpoint)) => {
                    break;
                }
                Ok(endpoint) => chosen.push(endpoint),
                Err(error) => return Box::pin(async move { Err(error) }),
            }
        }
        let mut attempts: FuturesUnordered<_> = chosen
            .iter()
            .map(|e| e.call(call.invocation.clone(), &call.settings))
            .collect();
        let forks = chosen.len();
        let invocation = call.invocation;
        Box::pin(async move {
            let mut last = None;
            let mut uncertain = None;
            while let Some(result) = attempts.next().await {
                match result {
                    // Returning drops the other attempts: they are cancelled.
                    Ok(response) => return Ok(response),
                    Err(error) => {
                        if uncertain.is_none() && error.outcome() == Outcome::Unknown {
                            uncertain = Some(error.clone());
                        }
                        last = Some(error);
                    }
                }
            }
            Err(match last {
                Some(last) => combine(uncertain, last, format_args!("all {forks} forks failed")),
                None => deadline_passed(&invocation, None),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rpc_core::ErrorKind;

    use crate::config::MethodConfig;
    use tower::ServiceExt;

    use super::*;
    use crate::policy::test_util::*;

    #[tokio::test(start_paused = true)]
    async fn the_fastest_success_wins_and_the_others_are_cancelled() {
        let slow = Provider::new(1, Behaviour::Answer(Duration::from_millis(300)));
        let fast = Provider::new(2, Behaviour::Answer(Duration::from_millis(20)));
        let unused = Provider::new(3, Behaviour::Answer(Duration::ZERO));
        let started = tokio::time::Instant::now();
        let response = bind(Forking, InOrder::new(&[&slow, &fast, &unused]))
            .oneshot(invocation(MethodConfig::new(), Duration::from_secs(1)))
            .await
            .unwrap();
        assert_eq!(port(&response), 2);
        assert_eq!(started.elapsed(), Duration::from_millis(20));
        assert_eq!((slow.calls(), fast.calls(), unused.calls()), (1, 1, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_waits_for_the_other_fork() {
        let failing = Provider::new(1, Behaviour::Fail(not_sent(), Duration::ZERO));
        let slow = Provider::new(2, Behaviour::Answer(Duration::from_millis(100)));
        let response = bind(Forking, InOrder::new(&[&failing, &slow]))
            .oneshot(invocation(MethodConfig::new(), Duration::from_secs(1)))
            .await
            .unwrap();
        assert_eq!(port(&response), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn all_failing_gives_the_last_error() {
        let a = Provider::new(1, Behaviour::Fail(not_sent(), Duration::ZERO));
        let b = Provider::new(2, Behaviour::Fail(remote_bad_request(), Duration::from_millis(10)));
        let error = bind(Forking, InOrder::new(&[&a, &b]))
            .oneshot(invocation(MethodConfig::new().with_forks(3), Duration::from_secs(1)))
            .await
            .unwrap_err();
        assert_eq!(error.address(), Some("127.0.0.1:2"));
        assert_eq!((a.calls(), b.calls()), (1, 1), "two providers, two forks");
    }

    #[tokio::test(start_paused = true)]
    async fn nobody_answering_in_time_is_a_timeout() {
        let a = Provider::new(1, Behaviour::Hang);
        let b = Provider::new(2, Behaviour::Answer(Duration::from_secs(10)));
        let started = tokio::time::Instant::now();
        let error = bind(Forking, InOrder::new(&[&a, &b]))
            .oneshot(invocation(MethodConfig::new(), Duration::from_millis(500)))
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Timeout);
        assert_eq!(started.elapsed(), Duration::from_millis(500));
    }

    /// Defect: when every fork failed, the last error was the call's, even
    /// when an earlier fork's outcome was unknown.
    #[tokio::test(start_paused = true)]
    async fn an_unknown_outcome_among_the_forks_is_the_calls() {
        let a = Provider::new(1, Behaviour::Fail(unknown(), Duration::ZERO));
        let b = Provider::new(2, Behaviour::Fail(not_sent(), Duration::from_millis(10)));
        let error = bind(Forking, InOrder::new(&[&a, &b]))
            .oneshot(invocation(MethodConfig::new(), Duration::from_secs(1)))
            .await
            .unwrap_err();
        assert_eq!(error.outcome(), rpc_core::Outcome::Unknown, "{error}");
    }

    /// Defect: a process exporting two protocols was forked to twice.
    #[tokio::test(start_paused = true)]
    async fn one_process_is_one_fork_whatever_it_exports() {
        let rpc = Provider::at(
            "rpc://127.0.0.1:1/a.B?pid=7",
            Behaviour::Answer(Duration::from_millis(50)),
        );
        let tri = Provider::at(
            "tri://127.0.0.1:2/a.B?pid=7",
            Behaviour::Answer(Duration::from_millis(50)),
        );
        let other = Provider::at(
            "rpc://127.0.0.1:3/a.B?pid=8",
            Behaviour::Answer(Duration::from_millis(50)),
        );
        bind(Forking, InOrder::new(&[&rpc, &tri, &other]))
            .oneshot(invocation(MethodConfig::new(), Duration::from_secs(1)))
            .await
            .unwrap();
        assert_eq!((rpc.calls(), tri.calls(), other.calls()), (1, 0, 1));
    }
}

//! Broadcast: every provider.

use std::sync::Arc;

use futures::future::join_all;
use rpc_core::{BoxFuture, Outcome, Response, RpcError, Status};

use super::Policy;
use crate::call::Call;
use crate::select::Select;

/// Calls every provider process at once (once each, whatever protocols it
/// exports) and waits for all of them. The call succeeds (with the last
/// provider's answer) only when every provider succeeded; otherwise it
/// fails, after all have answered or timed out, naming each provider that
/// failed and why, with the kind of a failure whose outcome is unknown when
/// there is one (the call may have run there), else the first failure's.
/// Providers shutting down are not called, nor counted when they refuse
/// because they started shutting down during the call: they are leaving.
/// For cache invalidation and configuration pushes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Broadcast;

impl Policy for Broadcast {
    fn call(&self, call: Call, select: &Arc<dyn Select>) -> BoxFuture<Result<Response, RpcError>> {
        let endpoints = match select.select_all(&call) {
            Ok(endpoints) => endpoints,
            Err(error) => return Box::pin(async move { Err(error) }),
        };
        let calls = join_all(
            endpoints
                .iter()
                .map(|e| e.call(call.invocation.clone(), &call.settings)),
        );
        let invocation = call.invocation;
        let total = endpoints.len();
        Box::pin(async move {
            let results = calls.await;
            let mut last = None;
            let mut failures: Vec<(String, RpcError)> = Vec::new();
            for (endpoint, result) in endpoints.iter().zip(results) {
                match result {
                    Ok(response) => last = Some(response),
                    // It started shutting down after it was chosen: it is
                    // leaving the cluster, and ran nothing.
                    Err(error) if error.status() == Some(Status::ChannelInactive) => {
                        tracing::debug!(%error, "broadcast: a provider left during the call");
                    }
                    Err(error) => failures.push((endpoint.address().to_string(), error)),
                }
            }
            // The call's kind: one whose outcome is unknown when there is
            // one (the call may have run there), else the first failure's.
            let decisive = failures
                .iter()
                .find(|(_, e)| e.outcome() == Outcome::Unknown)
                .or(failures.first());
            match (decisive, last) {
                (None, Some(response)) => Ok(response),
                (Some((_, first)), _) => {
                    let list: Vec<String> = failures
                        .iter()
                        .map(|(address, error)| format!("{address}: {}", error.message()))
                        .collect();
                    let failed = failures.len();
                    let mut error = RpcError::new(
                        first.kind(),
                        format!("broadcast failed on {failed} of {total} providers: {}", list.join("; ")),
                    )
                    .with_service(invocation.service())
                    .with_method(invocation.method());
                    if failed == 1 {
                        error = error.with_address(&failures[0].0);
                    }
                    Err(error)
                }
                (None, None) => Err(
                    RpcError::new(rpc_core::ErrorKind::NoProvider, "no provider to broadcast to")
                        .with_service(invocation.service())
                        .with_method(invocation.method()),
                ),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::config::MethodConfig;
    use tower::ServiceExt;

    use super::*;
    use crate::policy::test_util::*;

    #[tokio::test(start_paused = true)]
    async fn reaches_every_provider() {
        let providers: Vec<Provider> = (1..=4)
            .map(|p| Provider::new(p, Behaviour::Answer(Duration::from_millis(u64::from(p) * 10))))
            .collect();
        let refs: Vec<&Provider> = providers.iter().collect();
        let started = tokio::time::Instant::now();
        bind(Broadcast, InOrder::new(&refs))
            .oneshot(invocation(MethodConfig::new(), Duration::from_secs(1)))
            .await
            .unwrap();
        assert!(providers.iter().all(|p| p.calls() == 1));
        assert_eq!(started.elapsed(), Duration::from_millis(40), "in parallel");
    }

    #[tokio::test(start_paused = true)]
    async fn any_failure_fails_the_call_after_all_answered_naming_each() {
        let a = Provider::new(1, Behaviour::Fail(not_sent(), Duration::ZERO));
        let b = Provider::new(2, Behaviour::Answer(Duration::from_millis(50)));
        let c = Provider::new(3, Behaviour::Fail(remote_bad_request(), Duration::from_millis(10)));
        let started = tokio::time::Instant::now();
        let error = bind(Broadcast, InOrder::new(&[&a, &b, &c]))
            .oneshot(invocation(MethodConfig::new(), Duration::from_secs(1)))
            .await
            .unwrap_err();
        assert_eq!(
            started.elapsed(),
            Duration::from_millis(50),
            "waited for every provider"
        );
        assert_eq!(error.status(), Some(rpc_core::Status::ServerOverloaded));
        let text = error.to_string();
        assert!(text.contains("failed on 2 of 3 providers"), "{text}");
        assert!(
            text.contains("127.0.0.1:1: refused") && text.contains("127.0.0.1:3: bad"),
            "{text}"
        );
        assert_eq!(b.calls(), 1);
    }

    /// Defect: the call's kind was the first failure's, even when another
    /// provider's outcome was unknown.
    #[tokio::test(start_paused = true)]
    async fn an_unknown_outcome_anywhere_is_the_calls() {
        let a = Provider::new(1, Behaviour::Fail(not_sent(), Duration::ZERO));
        let b = Provider::new(2, Behaviour::Fail(unknown(), Duration::from_millis(10)));
        let error = bind(Broadcast, InOrder::new(&[&a, &b]))
            .oneshot(invocation(MethodConfig::new(), Duration::from_secs(1)))
            .await
            .unwrap_err();
        assert_eq!(error.outcome(), rpc_core::Outcome::Unknown, "{error}");
        assert!(error.to_string().contains("failed on 2 of 2"), "{error}");
    }

    /// Defect: a process exporting two protocols was called twice.
    #[tokio::test(start_paused = true)]
    async fn one_process_is_called_once_whatever_it_exports() {
        let rpc = Provider::at("rpc://127.0.0.1:1/a.B?pid=7", Behaviour::Answer(Duration::ZERO));
        let tri = Provider::at("tri://127.0.0.1:2/a.B?pid=7", Behaviour::Answer(Duration::ZERO));
        let other = Provider::at("rpc://127.0.0.1:3/a.B?pid=8", Behaviour::Answer(Duration::ZERO));
        let unnamed = Provider::at("tri://127.0.0.1:4/a.B", Behaviour::Answer(Duration::ZERO));
        let select = crate::Picker::new(directory(&[&rpc, &tri, &other, &unnamed]).await);
        bind(Broadcast, select)
            .oneshot(invocation(MethodConfig::new(), Duration::from_secs(1)))
            .await
            .unwrap();
        assert_eq!(rpc.calls() + tri.calls(), 1, "one call to process 7");
        assert_eq!((other.calls(), unnamed.calls()), (1, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_provider_that_starts_shutting_down_during_the_call_is_not_a_failure() {
        let a = Provider::new(1, Behaviour::Fail(shutting_down(), Duration::ZERO));
        let b = Provider::new(2, Behaviour::Answer(Duration::ZERO));
        let response = bind(Broadcast, InOrder::new(&[&a, &b]))
            .oneshot(invocation(MethodConfig::new(), Duration::from_secs(1)))
            .await
            .unwrap();
        assert_eq!(port(&response), 2);
    }
}

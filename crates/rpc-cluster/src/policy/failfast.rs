//! Failfast: one attempt.

use std::sync::Arc;

use rpc_core::{BoxFuture, Response, RpcError};

use super::{Policy, send};
use crate::call::Call;
use crate::select::Select;

/// One attempt on one provider; its error is the call's. For writes that must
/// not run twice. (A provider that refuses the call before running it, being
/// unreachable or shutting down, is passed over for another, as under every
/// policy: the call was not sent.)
#[derive(Clone, Copy, Debug, Default)]
pub struct Failfast;

impl Policy for Failfast {
    fn call(&self, call: Call, select: &Arc<dyn Select>) -> BoxFuture<Result<Response, RpcError>> {
        let select = select.clone();
        Box::pin(async move { send(&*select, &call, &mut Vec::new()).await })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rpc_core::Outcome;

    use crate::config::MethodConfig;
    use tower::ServiceExt;

    use super::*;
    use crate::policy::test_util::*;

    #[tokio::test]
    async fn one_attempt_and_its_error() {
        let a = Provider::new(1, Behaviour::Fail(not_sent(), Duration::ZERO));
        let b = Provider::new(2, Behaviour::Answer(Duration::ZERO));
        let error = bind(Failfast, InOrder::new(&[&a, &b]))
            .oneshot(invocation(MethodConfig::new(), Duration::from_secs(5)))
            .await
            .unwrap_err();
        assert_eq!(error.status(), Some(rpc_core::Status::ServerOverloaded));
        assert_eq!(error.address(), Some("127.0.0.1:1"));
        assert_eq!(b.calls(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_provider_is_an_unknown_outcome_at_the_deadline() {
        let a = Provider::new(1, Behaviour::Hang);
        let started = tokio::time::Instant::now();
        let error = bind(Failfast, InOrder::new(&[&a]))
            .oneshot(invocation(MethodConfig::new(), Duration::from_millis(300)))
            .await
            .unwrap_err();
        assert_eq!(error.outcome(), Outcome::Unknown);
        assert_eq!(started.elapsed(), Duration::from_millis(300));
    }

    #[tokio::test]
    async fn an_unreachable_provider_is_passed_over_not_retried() {
        let a = Provider::new(1, Behaviour::Fail(unreachable(), Duration::ZERO));
        let b = Provider::new(2, Behaviour::Answer(Duration::ZERO));
        let response = bind(Failfast, InOrder::new(&[&a, &b]))
            .oneshot(invocation(MethodConfig::new(), Duration::from_secs(5)))
            .await
            .unwrap();
        assert_eq!(port(&response), 2, "the call never reached provider 1: it moved on");
        assert_eq!((a.calls(), b.calls()), (1, 1));
    }

    #[tokio::test]
    async fn a_provider_shutting_down_is_passed_over() {
        let a = Provider::new(1, Behaviour::Fail(shutting_down(), Duration::ZERO));
        let b = Provider::new(2, Behaviour::Answer(Duration::ZERO));
        let response = bind(Failfast, InOrder::new(&[&a, &b]))
            .oneshot(invocation(MethodConfig::new(), Duration::from_secs(5)))
            .await
            .unwrap();
        assert_eq!(port(&response), 2);
    }
}

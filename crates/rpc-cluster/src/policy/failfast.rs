//! Failfast: one attempt.

use std::task::{Context, Poll};

use rpc_core::{BoxFuture, Invocation, Response, RpcError};
use tower::{Layer, Service};

use super::send;
use crate::select::Select;

/// One attempt on one provider; its error is the call's. For writes that must
/// not run twice. (A provider that refuses the call before running it, being
/// unreachable or shutting down, is passed over for another, as under every
/// policy: the call was not sent.)
#[derive(Clone, Debug)]
pub struct Failfast<S> {
    select: S,
}

impl<S> Failfast<S> {
    /// Failfast over `select`.
    pub fn new(select: S) -> Self {
        Failfast { select }
    }
}

/// Builds [`Failfast`].
#[derive(Clone, Copy, Debug, Default)]
pub struct FailfastLayer;

impl<S> Layer<S> for FailfastLayer {
    type Service = Failfast<S>;

    fn layer(&self, select: S) -> Failfast<S> {
        Failfast::new(select)
    }
}

impl<S: Select> Service<Invocation> for Failfast<S> {
    type Response = Response;
    type Error = RpcError;
    type Future = BoxFuture<Result<Response, RpcError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), RpcError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, invocation: Invocation) -> Self::Future {
        let select = self.select.clone();
        Box::pin(async move { send(&select, &invocation, &mut Vec::new()).await })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rpc_core::{MethodConfig, Outcome};
    use tower::ServiceExt;

    use super::*;
    use crate::policy::test_util::*;

    #[tokio::test]
    async fn one_attempt_and_its_error() {
        let a = Provider::new(1, Behaviour::Fail(not_sent(), Duration::ZERO));
        let b = Provider::new(2, Behaviour::Answer(Duration::ZERO));
        let error = Failfast::new(InOrder::new(&[&a, &b]))
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
        let error = Failfast::new(InOrder::new(&[&a]))
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
        let response = Failfast::new(InOrder::new(&[&a, &b]))
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
        let response = Failfast::new(InOrder::new(&[&a, &b]))
            .oneshot(invocation(MethodConfig::new(), Duration::from_secs(5)))
            .await
            .unwrap();
        assert_eq!(port(&response), 2);
    }
}

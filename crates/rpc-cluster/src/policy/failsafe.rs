//! Failsafe: failures become the zero value.

use std::task::{Context, Poll};

use rpc_core::{BoxFuture, Invocation, Response, RpcError};
use tower::{Layer, Service};

use super::send;
use crate::select::Select;

/// One attempt; on failure, log a warning and answer the zero value of the
/// method's return type ([`Response::zero`]): numbers 0, strings and
/// collections empty, `Option` `None`, structs field by field, enums their
/// first variant (so `Result<T, E>` gives `Ok` of T's zero). A return type
/// whose deserializer refuses its zero (say `NonZeroU32`) has none: the call
/// then returns the original error. For calls whose result does not matter,
/// such as audit logs.
#[derive(Clone, Debug)]
pub struct Failsafe<S> {
    select: S,
}

impl<S> Failsafe<S> {
    /// Failsafe over `select`.
    pub fn new(select: S) -> Self {
        Failsafe { select }
    }
}

/// Builds [`Failsafe`].
#[derive(Clone, Copy, Debug, Default)]
pub struct FailsafeLayer;

impl<S> Layer<S> for FailsafeLayer {
    type Service = Failsafe<S>;

    fn layer(&self, select: S) -> Failsafe<S> {
        Failsafe::new(select)
    }
}

impl<S: Select> Service<Invocation> for Failsafe<S> {
    type Response = Response;
    type Error = RpcError;
    type Future = BoxFuture<Result<Response, RpcError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), RpcError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, invocation: Invocation) -> Self::Future {
        let select = self.select.clone();
        Box::pin(async move {
            let result = send(&select, &invocation, &mut Vec::new()).await;
            Ok(result.unwrap_or_else(|error| {
                tracing::warn!(%error, "failsafe: ignoring a failed call, answering the zero value");
                Response::zero(error)
            }))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rpc_core::MethodConfig;
    use tower::ServiceExt;

    use super::*;
    use crate::policy::test_util::*;

    #[tokio::test]
    async fn failures_become_the_zero_value() {
        let a = Provider::new(1, Behaviour::Fail(unknown(), Duration::ZERO));
        let b = Provider::new(2, Behaviour::Answer(Duration::ZERO));
        let response = Failsafe::new(InOrder::new(&[&a, &b]))
            .oneshot(invocation(MethodConfig::new(), Duration::from_secs(5)))
            .await
            .unwrap();
        assert!(response.is_zero());
        assert_eq!(b.calls(), 0, "one attempt only");
        let value: Vec<String> = response.decode(rpc_core::Serialization::Bincode).unwrap();
        assert!(value.is_empty());
    }

    #[tokio::test]
    async fn successes_pass_through() {
        let a = Provider::new(1, Behaviour::Answer(Duration::ZERO));
        let response = Failsafe::new(InOrder::new(&[&a]))
            .oneshot(invocation(MethodConfig::new(), Duration::from_secs(5)))
            .await
            .unwrap();
        assert!(!response.is_zero());
        assert_eq!(port(&response), 1);
    }
}

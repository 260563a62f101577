//! Failsafe: failures become the zero value.

use std::sync::Arc;

use rpc_core::{BoxFuture, Response, RpcError};

use super::{Policy, send};
use crate::call::Call;
use crate::select::Select;

/// One attempt; on failure, log a warning and answer the zero value of the
/// method's return type ([`Response::zero_instead_of`]): numbers 0, strings and
/// collections empty, `Option` `None`, structs field by field, enums their
/// first variant (so `Result<T, E>` gives `Ok` of T's zero). A return type
/// whose deserializer refuses its zero (say `NonZeroU32`) has none: the call
/// then returns the original error. For calls whose result does not matter,
/// such as audit logs.
#[derive(Clone, Copy, Debug, Default)]
pub struct Failsafe;

impl Policy for Failsafe {
    fn call(&self, call: Call, select: &Arc<dyn Select>) -> BoxFuture<Result<Response, RpcError>> {
        let select = select.clone();
        Box::pin(async move {
            let result = send(&*select, &call, &mut Vec::new()).await;
            Ok(result.unwrap_or_else(|error| {
                tracing::warn!(%error, "failsafe: ignoring a failed call, answering the zero value");
                Response::zero_instead_of(error)
            }))
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

    #[tokio::test]
    async fn failures_become_the_zero_value() {
        let a = Provider::new(1, Behaviour::Fail(unknown(), Duration::ZERO));
        let b = Provider::new(2, Behaviour::Answer(Duration::ZERO));
        let response = bind(Failsafe, InOrder::new(&[&a, &b]))
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
        let response = bind(Failsafe, InOrder::new(&[&a]))
            .oneshot(invocation(MethodConfig::new(), Duration::from_secs(5)))
            .await
            .unwrap();
        assert!(!response.is_zero());
        assert_eq!(port(&response), 1);
    }
}

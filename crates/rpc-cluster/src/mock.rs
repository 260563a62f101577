//! Degradation: [`Mock`] answers when providers cannot.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use rpc_core::{BoxFuture, Invocation, Response, RpcError, ServiceHandler};
use tower::{Layer, Service, ServiceExt};

/// What a reference answers instead of calling, or when a call fails.
///
/// Parsed from Dubbo's `mock` strings by [`Mock::parse`]:
///
/// | string | behaviour |
/// |---|---|
/// | `return <json>` (or `fail:return <json>`) | when the call fails, answer the JSON value |
/// | `return` | when the call fails, answer the return type's zero value |
/// | `force:return <json>` | never call; answer the JSON value |
/// | `force:return` | never call; answer the zero value |
///
/// Or a fallback implementation of the service trait, [`Mock::fallback`]
/// (e.g. `Mock::fallback(GreeterServer::new(CachedGreeter))`), called with
/// the same arguments when the call fails.
///
/// "Fails" means an [`RpcError`] (no provider, timeout, connection lost,
/// provider error) after the cluster policy gave up; a method's own business
/// error is an answer and is returned as is. The JSON value is decoded as the
/// method's return type by the stub; a value that does not fit fails the call
/// with a decode error naming the mock.
#[derive(Clone)]
pub struct Mock {
    force: bool,
    answer: Answer,
}

#[derive(Clone)]
enum Answer {
    Json(Bytes),
    Zero,
    Fallback(Arc<dyn ServiceHandler>),
}

impl fmt::Debug for Mock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let answer = match &self.answer {
            Answer::Json(json) => format!("return {}", String::from_utf8_lossy(json)),
            Answer::Zero => "return".into(),
            Answer::Fallback(handler) => format!("fallback {}", handler.descriptor().interface),
        };
        write!(f, "Mock({}{answer})", if self.force { "force:" } else { "" })
    }
}

impl Mock {
    /// Parses a Dubbo `mock` string (see the table above).
    pub fn parse(mock: &str) -> Result<Mock, String> {
        let text = mock.trim();
        let (force, rest) = if let Some(rest) = text.strip_prefix("force:") {
            (true, rest)
        } else if let Some(rest) = text.strip_prefix("fail:") {
            (false, rest)
        } else {
            (false, text)
        };
        let Some(value) = rest.trim_start().strip_prefix("return") else {
            return Err(format!(
                "unsupported mock `{mock}`: expected `return <json>`, `force:return <json>` or `fail:return <json>` \
                 (for a fallback implementation use Mock::fallback)"
            ));
        };
        let value = value.trim();
        if value.is_empty() {
            return Ok(Mock {
                force,
                answer: Answer::Zero,
            });
        }
        if let Err(e) = serde_json::from_str::<serde_json::Value>(value) {
            return Err(format!("mock `{mock}`: the value is not valid JSON: {e}"));
        }
        Ok(Mock {
            force,
            answer: Answer::Json(Bytes::copy_from_slice(value.as_bytes())),
        })
    }

    /// On failure, call `fallback` (an implementation of the same service,
    /// such as `GreeterServer::new(MyFallback)`) with the same arguments.
    pub fn fallback(fallback: impl ServiceHandler) -> Mock {
        Mock {
            force: false,
            answer: Answer::Fallback(Arc::new(fallback)),
        }
    }

    /// Whether the mock answers without calling providers.
    pub fn is_forced(&self) -> bool {
        self.force
    }

    pub(crate) fn answer(
        &self,
        invocation: Invocation,
        error: Option<RpcError>,
    ) -> BoxFuture<Result<Response, RpcError>> {
        match &self.answer {
            Answer::Json(json) => {
                let json = json.clone();
                Box::pin(async move { Ok(Response::json(json)) })
            }
            Answer::Zero => {
                let error = error.unwrap_or_else(|| {
                    RpcError::new(rpc_core::ErrorKind::NoProvider, "forced mock: no provider was called")
                        .with_service(invocation.service())
                        .with_method(invocation.method())
                });
                Box::pin(async move { Ok(Response::zero_instead_of(error)) })
            }
            Answer::Fallback(handler) => {
                let answered = handler.call(invocation);
                Box::pin(async move { answered.await.map(Response::into_degraded) })
            }
        }
    }
}

/// The mocks of one reference: one for every method, and per method.
#[derive(Clone, Debug, Default)]
pub struct Mocks {
    all: Option<Mock>,
    methods: HashMap<String, Mock>,
}

impl Mocks {
    /// No mock.
    pub fn new() -> Self {
        Self::default()
    }

    /// `mock` for every method without one of its own.
    pub fn with_default(mut self, mock: Mock) -> Self {
        self.all = Some(mock);
        self
    }

    /// `mock` for the method with wire name `method`.
    pub fn with_method(mut self, method: impl Into<String>, mock: Mock) -> Self {
        self.methods.insert(method.into(), mock);
        self
    }

    /// Whether no mock is set.
    pub fn is_empty(&self) -> bool {
        self.all.is_none() && self.methods.is_empty()
    }

    fn get(&self, method: &str) -> Option<&Mock> {
        self.methods.get(method).or(self.all.as_ref())
    }
}

/// Builds [`MockService`].
#[derive(Clone, Debug)]
pub struct MockLayer {
    mocks: Arc<Mocks>,
}

impl MockLayer {
    /// A layer answering with `mocks`.
    pub fn new(mocks: Mocks) -> Self {
        MockLayer { mocks: Arc::new(mocks) }
    }
}

impl<S> Layer<S> for MockLayer {
    type Service = MockService<S>;

    fn layer(&self, inner: S) -> MockService<S> {
        MockService {
            inner,
            mocks: self.mocks.clone(),
        }
    }
}

/// The degradation layer: above the cluster policy, it answers from the
/// call's [`Mock`] when the call fails or when the mock is forced.
///
/// Always ready: each call waits for the readiness of its own clone of the
/// service below (tower's `oneshot`), so a forced mock answers without
/// waiting on a limit below it. Its futures are boxed, so
/// [`BoxInvoker::always_ready`](rpc_core::BoxInvoker::always_ready) may wrap it.
#[derive(Clone, Debug)]
pub struct MockService<S> {
    inner: S,
    mocks: Arc<Mocks>,
}

impl<S> Service<Invocation> for MockService<S>
where
    S: Service<Invocation, Response = Response, Error = RpcError> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = RpcError;
    type Future = BoxFuture<Result<Response, RpcError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), RpcError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, invocation: Invocation) -> Self::Future {
        let Some(mock) = self.mocks.get(invocation.method()).cloned() else {
            let inner = self.inner.clone();
            return Box::pin(inner.oneshot(invocation));
        };
        if mock.force {
            return mock.answer(invocation, None);
        }
        let inner = self.inner.clone();
        Box::pin(async move {
            match inner.oneshot(invocation.clone()).await {
                Ok(response) => Ok(response),
                Err(error) => {
                    tracing::warn!(%error, ?mock, "the call failed; answering from the mock");
                    mock.answer(invocation, Some(error)).await
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use rpc_core::{ErrorKind, Serialization, ServiceKey};

    use super::*;

    fn invocation() -> Invocation {
        Invocation::new(
            ServiceKey::new("a.B", None, None),
            "m",
            Bytes::new(),
            Serialization::Bincode,
        )
    }

    fn failing(calls: Arc<AtomicUsize>) -> rpc_core::BoxInvoker {
        rpc_core::BoxInvoker::new(tower::service_fn(move |_| {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err::<Response, _>(RpcError::new(ErrorKind::Connect, "refused")) }
        }))
    }

    #[test]
    fn parses_dubbo_mock_strings() {
        assert!(!Mock::parse("return {\"a\": 1}").unwrap().is_forced());
        assert!(!Mock::parse("fail:return 1").unwrap().is_forced());
        assert!(Mock::parse("force:return \"x\"").unwrap().is_forced());
        assert!(matches!(Mock::parse("return").unwrap().answer, Answer::Zero));
        assert!(Mock::parse("return {oops").unwrap_err().contains("not valid JSON"));
        assert!(Mock::parse("true").unwrap_err().contains("unsupported mock"));
    }

    #[tokio::test]
    async fn answers_on_failure_only() {
        let calls = Arc::new(AtomicUsize::new(0));
        let mocks = Mocks::new().with_default(Mock::parse("return [1, 2]").unwrap());
        let service = MockLayer::new(mocks).layer(failing(calls.clone()));
        let response = service.oneshot(invocation()).await.unwrap();
        let value: Vec<u32> = response.decode(Serialization::Bincode).unwrap();
        assert_eq!(value, [1, 2]);
        assert_eq!(calls.load(Ordering::SeqCst), 1, "the call was tried first");
    }

    #[tokio::test]
    async fn forced_mocks_never_call() {
        let calls = Arc::new(AtomicUsize::new(0));
        let mocks = Mocks::new().with_method("m", Mock::parse("force:return \"cached\"").unwrap());
        let service = MockLayer::new(mocks).layer(failing(calls.clone()));
        let response = service.oneshot(invocation()).await.unwrap();
        let value: String = response.decode(Serialization::Bincode).unwrap();
        assert_eq!(value, "cached");
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn methods_without_a_mock_pass_errors_through() {
        let calls = Arc::new(AtomicUsize::new(0));
        let mocks = Mocks::new().with_method("other", Mock::parse("return 1").unwrap());
        let service = MockLayer::new(mocks).layer(failing(calls.clone()));
        let error = service.oneshot(invocation()).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Connect);
    }
}

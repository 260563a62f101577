//! Failover: retry on other providers.

use std::sync::Arc;

use rpc_core::{BoxFuture, Outcome, Response, RpcError};

use super::{Policy, combine, deadline_passed, expired, send};
use crate::call::Call;
use crate::select::Select;

/// Dubbo's default policy: up to `retries` extra attempts, each on a provider
/// not tried yet by this call when one exists.
///
/// Only retryable failures are retried (see
/// [`RpcError::is_retryable`]): a call that was not sent, always; an unknown
/// outcome (timeout, connection lost after sending) only when the method is
/// idempotent; a provider answering "service not found" or "overloaded".
/// Anything else, and business errors, return at once. No attempt starts
/// after the call's deadline; the error of the last attempt says how many
/// were made and on which providers.
#[derive(Clone, Copy, Debug, Default)]
pub struct Failover;

impl Policy for Failover {
    fn call(&self, call: Call, select: &Arc<dyn Select>) -> BoxFuture<Result<Response, RpcError>> {
        let select = select.clone();
        Box::pin(async move {
            let attempts = call.settings.retries.saturating_add(1);
            let idempotent = call.settings.idempotent;
            let invocation = &call.invocation;
            let mut tried = Vec::new();
            let mut last: Option<RpcError> = None;
            let mut uncertain: Option<RpcError> = None;
            for attempt in 1..=attempts {
                if attempt > 1 && expired(invocation) {
                    let error = deadline_passed(invocation, last);
                    return Err(combine(
                        uncertain,
                        error,
                        format_args!("after {} attempts", attempt - 1),
                    ));
                }
                let error = match send(&*select, &call, &mut tried).await {
                    Ok(response) => {
                        if let Some(error) = last {
                            tracing::debug!(attempt, %error, "failover: succeeded after retrying");
                        }
                        return Ok(response);
                    }
                    Err(error) => error,
                };
                if !error.is_retryable(idempotent) {
                    return Err(match uncertain {
                        None => error,
                        uncertain => combine(uncertain, error, format_args!("attempt {attempt}")),
                    });
                }
                tracing::debug!(attempt, attempts, %error, "failover: attempt failed");
                if uncertain.is_none() && error.outcome() == Outcome::Unknown {
                    uncertain = Some(error.clone());
                }
                last = Some(error);
            }
            let mut providers: Vec<String> = tried.iter().map(|e| e.address().to_string()).collect();
            providers.dedup();
            let note = format_args!("{attempts} attempts, on {}", providers.join(", "));
            Err(match last {
                Some(last) => combine(uncertain, last, note),
                None => deadline_passed(invocation, None),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rpc_core::ErrorKind;

    use crate::config::MethodConfig;
    use tower::{Service, ServiceExt};

    use super::*;
    use crate::policy::test_util::*;

    const LONG: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn retries_not_sent_errors_on_untried_providers() {
        let a = Provider::new(1, Behaviour::Fail(not_sent(), Duration::ZERO));
        let b = Provider::new(2, Behaviour::Fail(not_sent(), Duration::ZERO));
        let c = Provider::new(3, Behaviour::Answer(Duration::ZERO));
        let response = bind(Failover, InOrder::new(&[&a, &b, &c]))
            .oneshot(invocation(MethodConfig::new(), LONG))
            .await
            .unwrap();
        assert_eq!(port(&response), 3);
        assert_eq!((a.calls(), b.calls(), c.calls()), (1, 1, 1));
    }

    #[tokio::test]
    async fn stops_after_retries_and_names_the_providers() {
        let a = Provider::new(1, Behaviour::Fail(not_sent(), Duration::ZERO));
        let b = Provider::new(2, Behaviour::Fail(not_sent(), Duration::ZERO));
        let c = Provider::new(3, Behaviour::Answer(Duration::ZERO));
        let error = bind(Failover, InOrder::new(&[&a, &b, &c]))
            .oneshot(invocation(MethodConfig::new().with_retries(1), LONG))
            .await
            .unwrap_err();
        assert_eq!(error.status(), Some(rpc_core::Status::ServerOverloaded));
        assert!(
            error.to_string().contains("2 attempts, on 127.0.0.1:1, 127.0.0.1:2"),
            "{error}"
        );
        assert_eq!(c.calls(), 0);
    }

    #[tokio::test]
    async fn retries_zero_means_one_attempt() {
        let a = Provider::new(1, Behaviour::Fail(not_sent(), Duration::ZERO));
        let b = Provider::new(2, Behaviour::Answer(Duration::ZERO));
        let result = bind(Failover, InOrder::new(&[&a, &b]))
            .oneshot(invocation(MethodConfig::new().with_retries(0), LONG))
            .await;
        assert!(result.is_err());
        assert_eq!(b.calls(), 0);
    }

    #[tokio::test]
    async fn unknown_outcomes_are_retried_only_for_idempotent_methods() {
        let a = Provider::new(1, Behaviour::Fail(unknown(), Duration::ZERO));
        let b = Provider::new(2, Behaviour::Answer(Duration::ZERO));
        let ok = bind(Failover, InOrder::new(&[&a, &b]))
            .oneshot(invocation(MethodConfig::new(), LONG))
            .await
            .unwrap();
        assert_eq!(port(&ok), 2);
        let error = bind(Failover, InOrder::new(&[&a, &b]))
            .oneshot(invocation(MethodConfig::new().with_idempotent(false), LONG))
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::ConnectionLost);
        assert_eq!(b.calls(), 1, "the non-idempotent call was not retried");
    }

    #[tokio::test]
    async fn an_unknown_outcome_stays_unknown_whatever_later_attempts_say() {
        let a = Provider::new(1, Behaviour::Fail(unknown(), Duration::ZERO));
        let b = Provider::new(2, Behaviour::Fail(not_sent(), Duration::ZERO));
        let error = bind(Failover, InOrder::new(&[&a, &b]))
            .oneshot(invocation(MethodConfig::new().with_retries(1), LONG))
            .await
            .unwrap_err();
        assert_eq!(error.outcome(), rpc_core::Outcome::Unknown, "{error}");
        assert!(error.to_string().contains("last: provider overloaded"), "{error}");
    }

    #[tokio::test]
    async fn a_bad_request_is_not_retried() {
        let a = Provider::new(1, Behaviour::Fail(remote_bad_request(), Duration::ZERO));
        let b = Provider::new(2, Behaviour::Answer(Duration::ZERO));
        let error = bind(Failover, InOrder::new(&[&a, &b]))
            .oneshot(invocation(MethodConfig::new(), LONG))
            .await
            .unwrap_err();
        assert_eq!(error.status(), Some(rpc_core::Status::BadRequest));
        assert_eq!(b.calls(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_bounds_all_attempts() {
        // Each attempt hangs; the whole call ends at its 1 s deadline.
        let a = Provider::new(1, Behaviour::Hang);
        let b = Provider::new(2, Behaviour::Hang);
        let started = tokio::time::Instant::now();
        let error = bind(Failover, InOrder::new(&[&a, &b]))
            .oneshot(invocation(MethodConfig::new(), Duration::from_secs(1)))
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Timeout);
        assert_eq!(started.elapsed(), Duration::from_secs(1));
        assert_eq!(b.calls(), 0, "no attempt after the deadline");
    }

    #[tokio::test(start_paused = true)]
    async fn an_attempt_timeout_moves_on_within_the_deadline() {
        let a = Provider::new(1, Behaviour::Hang);
        let b = Provider::new(2, Behaviour::Answer(Duration::from_millis(10)));
        let started = tokio::time::Instant::now();
        let config = MethodConfig::new().with_attempt_timeout(Duration::from_millis(200));
        let response = bind(Failover, InOrder::new(&[&a, &b]))
            .oneshot(invocation(config, Duration::from_secs(1)))
            .await
            .unwrap();
        assert_eq!(port(&response), 2);
        assert_eq!(started.elapsed(), Duration::from_millis(210));
    }

    /// A `dubbo://` provider's published `timeout` is per attempt (Java
    /// Dubbo's meaning), so it caps attempts there even when the consumer set
    /// the whole call's budget; then the call moves on within that budget.
    #[tokio::test(start_paused = true)]
    async fn a_dubbo_providers_published_timeout_caps_its_attempts_within_the_consumers_budget() {
        let a = Provider::at("dubbo://127.0.0.1:1/a.B?timeout=200", Behaviour::Hang);
        let b = Provider::new(2, Behaviour::Answer(Duration::from_millis(10)));
        let started = tokio::time::Instant::now();
        let response = bind(Failover, InOrder::new(&[&a, &b]))
            .oneshot(invocation(MethodConfig::new(), Duration::from_secs(1)))
            .await
            .unwrap();
        assert_eq!(port(&response), 2);
        assert_eq!(started.elapsed(), Duration::from_millis(210));
    }

    /// The protocol preference chooses among one process's endpoints only:
    /// a process without an endpoint of the preferred protocol (a Java
    /// provider, `dubbo` and `tri`, beside ours on `rpc`) still gets calls.
    #[tokio::test(start_paused = true)]
    async fn the_preferred_protocol_is_chosen_within_a_process_not_across_the_pool() {
        let rpc = Provider::at("rpc://127.0.0.1:1/a.B?pid=7", Behaviour::Answer(Duration::ZERO));
        let tri = Provider::at("tri://127.0.0.1:2/a.B?pid=7", Behaviour::Answer(Duration::ZERO));
        let other = Provider::at("tri://127.0.0.1:3/a.B?pid=8", Behaviour::Answer(Duration::ZERO));
        let select = crate::Picker::new(directory(&[&rpc, &tri, &other]).await).prefer_protocol("rpc");
        let mut service = bind(Failover, select);
        for _ in 0..200 {
            service
                .ready()
                .await
                .unwrap()
                .call(invocation(MethodConfig::new(), LONG))
                .await
                .unwrap();
        }
        assert_eq!(tri.calls(), 0, "process 7 is called on its preferred protocol");
        assert!(
            rpc.calls() > 0 && other.calls() > 0,
            "rpc {} other {}",
            rpc.calls(),
            other.calls()
        );
    }

    /// A Java process exports `dubbo` and `tri`, both reading Hessian2 (`tri`
    /// in Triple's wrapper form): it is called over `dubbo` unless `tri` is
    /// the preference, then over `tri`; never over both. Java Dubbo 3
    /// registers no `pid`: its URLs go together by host and application.
    #[tokio::test(start_paused = true)]
    async fn a_java_process_is_called_over_dubbo_unless_tri_is_preferred() {
        let forms = ["pid=7", "application=java-greeter-provider&timestamp=1"];
        for (prefer, process) in [
            ("rpc", forms[0]),
            ("tri", forms[0]),
            ("rpc", forms[1]),
            ("tri", forms[1]),
        ] {
            let answer = || Behaviour::Answer(Duration::ZERO);
            let dubbo = Provider::at(
                &format!("dubbo://127.0.0.1:1/a.B?{process}&serialization=hessian2"),
                answer(),
            );
            let tri = Provider::at(
                &format!("tri://127.0.0.1:2/a.B?{process}&serialization=hessian2"),
                answer(),
            );
            let ours = Provider::at("rpc://127.0.0.1:3/a.B?pid=8", answer());
            let select = crate::Picker::new(directory(&[&dubbo, &tri, &ours]).await).prefer_protocol(prefer);
            let mut service = bind(Failover, select);
            for _ in 0..100 {
                let mut call = invocation(MethodConfig::new(), LONG);
                call.invocation
                    .set_alternate(rpc_core::Serialization::Hessian2, bytes::Bytes::from_static(b"N"));
                service.ready().await.unwrap().call(call).await.unwrap();
            }
            let (over_dubbo, over_tri) = (dubbo.calls(), tri.calls());
            let java = if prefer == "tri" {
                (0, over_tri)
            } else {
                (over_dubbo, 0)
            };
            assert!(
                (over_dubbo, over_tri) == java && java != (0, 0) && ours.calls() > 0,
                "prefer {prefer}, {process}: dubbo {over_dubbo}, tri {over_tri}, ours {}",
                ours.calls()
            );
        }
    }

    /// Java Dubbo 3 registers no `pid`: a Java process's `dubbo://` and
    /// `tri://` URLs are one provider (same host and `application`). A retry
    /// after its `dubbo` endpoint failed goes to another process, not to its
    /// `tri` endpoint as if that were another provider.
    #[tokio::test(start_paused = true)]
    async fn a_failed_java_process_is_not_retried_over_its_other_protocol() {
        let java = "127.0.0.1:{}/a.B?application=java-greeter-provider&serialization=hessian2&timestamp";
        let dead = || Behaviour::Fail(not_sent(), Duration::ZERO);
        let dubbo = Provider::at(&format!("dubbo://{}=1", java.replace("{}", "1")), dead());
        let tri = Provider::at(&format!("tri://{}=2", java.replace("{}", "2")), dead());
        let ours = Provider::at("rpc://127.0.0.1:3/a.B?pid=8", Behaviour::Answer(Duration::ZERO));
        let select = crate::Picker::new(directory(&[&dubbo, &tri, &ours]).await).prefer_protocol("rpc");
        let mut service = bind(Failover, select);
        for i in 0..100 {
            let mut call = invocation(MethodConfig::new().with_retries(1), LONG);
            call.invocation
                .set_alternate(rpc_core::Serialization::Hessian2, bytes::Bytes::from_static(b"N"));
            let result = service.ready().await.unwrap().call(call).await;
            assert!(result.is_ok(), "call {i}: {:?}", result.err());
        }
        assert!(dubbo.calls() > 0, "round robin reached the Java process");
        assert_eq!(tri.calls(), 0, "the Java process's other protocol was retried");
    }

    /// The outlier detector ejects the endpoint a Java process is called on
    /// (`dubbo`): the process is out, and its `tri` endpoint takes no calls
    /// in its stead.
    #[tokio::test(start_paused = true)]
    async fn an_ejected_endpoint_takes_its_whole_process_out() {
        let answer = || Behaviour::Answer(Duration::ZERO);
        let java = "127.0.0.1:{}/a.B?application=java-greeter-provider&serialization=hessian2";
        let dubbo = Provider::at(&format!("dubbo://{}", java.replace("{}", "1")), answer());
        let tri = Provider::at(&format!("tri://{}", java.replace("{}", "2")), answer());
        let ours = Provider::at("rpc://127.0.0.1:3/a.B?pid=8", answer());
        dubbo.endpoint.stats().set_ejected(true);
        let select = crate::Picker::new(directory(&[&dubbo, &tri, &ours]).await).prefer_protocol("rpc");
        let mut service = bind(Failover, select);
        for _ in 0..100 {
            let mut call = invocation(MethodConfig::new(), LONG);
            call.invocation
                .set_alternate(rpc_core::Serialization::Hessian2, bytes::Bytes::from_static(b"N"));
            service.ready().await.unwrap().call(call).await.unwrap();
        }
        assert_eq!(
            (dubbo.calls(), tri.calls(), ours.calls()),
            (0, 0, 100),
            "the ejected Java process took calls"
        );
    }

    /// A call carrying alternate arguments reaches a provider that reads only
    /// the alternate (Java's `dubbo://`, Hessian2) with them, and its answer
    /// says so; a provider reading the call's own serialization gets those.
    #[tokio::test]
    async fn a_provider_reading_only_the_alternate_gets_the_alternate_arguments() {
        use rpc_core::{BoxInvoker, Invocation, Serialization};
        use std::sync::Mutex;
        let seen: Arc<Mutex<Vec<(Serialization, bytes::Bytes)>>> = Arc::default();
        let endpoint = |url: &str, answer: &'static [u8]| {
            let seen = seen.clone();
            let invoker = BoxInvoker::new(tower::service_fn(move |inv: Invocation| {
                seen.lock().unwrap().push((inv.serialization(), inv.args().clone()));
                async move { Ok::<_, RpcError>(Response::new(bytes::Bytes::from_static(answer))) }
            }));
            crate::Endpoint::new(rpc_core::Url::parse(url).unwrap(), invoker, || true)
        };
        // A Hessian2 reply (flag 1, "hi"), and a JSON one.
        let java = endpoint("dubbo://127.0.0.1:1/a.B?serialization=hessian2", b"\x91\x02hi");
        let ours = endpoint("rpc://127.0.0.1:2/a.B?serialization=json", b"\"json\"");
        let mut call = invocation(MethodConfig::new(), LONG);
        call.invocation
            .set_alternate(Serialization::Hessian2, bytes::Bytes::from_static(b"H2"));
        let java_answer = java.call(call.invocation.clone(), &call.settings).await.unwrap();
        let our_answer = ours.call(call.invocation.clone(), &call.settings).await.unwrap();
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen[0], (Serialization::Hessian2, bytes::Bytes::from_static(b"H2")));
        assert_eq!(seen[1].0, Serialization::Json);
        // The Java answer is read as Hessian2, ours as the call's JSON.
        assert_eq!(java_answer.decode::<String>(Serialization::Json).unwrap(), "hi");
        assert_eq!(our_answer.decode::<String>(Serialization::Json).unwrap(), "json");
    }

    /// Defect: the deadline path returned the last error even when an earlier
    /// attempt's outcome was unknown.
    #[tokio::test(start_paused = true)]
    async fn an_unknown_outcome_stays_unknown_when_the_deadline_ends_the_call() {
        let a = Provider::new(1, Behaviour::Fail(unknown(), Duration::ZERO));
        // Fails (not sent) exactly at the deadline: no time for another attempt.
        let b = Provider::new(2, Behaviour::Fail(not_sent(), Duration::from_millis(500)));
        let c = Provider::new(3, Behaviour::Answer(Duration::ZERO));
        let error = bind(Failover, InOrder::new(&[&a, &b, &c]))
            .oneshot(invocation(MethodConfig::new(), Duration::from_millis(500)))
            .await
            .unwrap_err();
        assert_eq!(error.outcome(), rpc_core::Outcome::Unknown, "{error}");
        assert_eq!(c.calls(), 0);
    }

    /// Defect: an error that cannot be retried, after an attempt whose
    /// outcome was unknown, was returned as the call's: "not run".
    #[tokio::test]
    async fn an_unknown_outcome_stays_unknown_when_a_later_attempt_is_refused() {
        let a = Provider::new(1, Behaviour::Fail(unknown(), Duration::ZERO));
        let b = Provider::new(2, Behaviour::Fail(remote_bad_request(), Duration::ZERO));
        let error = bind(Failover, InOrder::new(&[&a, &b]))
            .oneshot(invocation(MethodConfig::new(), LONG))
            .await
            .unwrap_err();
        assert_eq!(error.outcome(), rpc_core::Outcome::Unknown, "{error}");
        assert!(error.to_string().contains("bad request"), "{error}");
    }

    #[tokio::test]
    async fn retries_zero_still_passes_over_a_provider_that_cannot_take_the_call() {
        let a = Provider::new(1, Behaviour::Fail(unreachable(), Duration::ZERO));
        let b = Provider::new(2, Behaviour::Answer(Duration::ZERO));
        let response = bind(Failover, InOrder::new(&[&a, &b]))
            .oneshot(invocation(
                MethodConfig::new().with_retries(0).with_idempotent(false),
                LONG,
            ))
            .await
            .unwrap();
        assert_eq!(port(&response), 2);
    }

    #[tokio::test]
    async fn untried_means_another_process_not_another_protocol_of_the_same_one() {
        let rpc = Provider::at(
            "rpc://127.0.0.1:1/a.B?pid=7",
            Behaviour::Fail(not_sent(), Duration::ZERO),
        );
        let tri = Provider::at(
            "tri://127.0.0.1:2/a.B?pid=7",
            Behaviour::Fail(not_sent(), Duration::ZERO),
        );
        let other = Provider::at("rpc://127.0.0.1:3/a.B?pid=8", Behaviour::Answer(Duration::ZERO));
        let response = bind(Failover, InOrder::new(&[&rpc, &tri, &other]))
            .oneshot(invocation(MethodConfig::new().with_retries(1), LONG))
            .await
            .unwrap();
        assert_eq!(port(&response), 3);
        assert_eq!(tri.calls(), 0);
    }
}

//! Generic invocation (`$invoke`) and `$echo` over real TCP on every
//! protocol a provider speaks (`rpc`, `tri`, `dubbo`), called by
//! `rpc::GenericClient`, which has no stub of the service: JSON values on
//! `rpc` and `tri`, Hessian2 on `dubbo`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rpc::{Outcome, Status};
use rpc_examples::{GreeterImpl, GreeterServer};
use serde_json::json;
use tower::util::MapRequestLayer;

async fn provider(protocol: &str) -> rpc::RunningProvider {
    rpc::Provider::builder()
        .registry(format!("memory://generic-{protocol}"))
        .protocol(protocol, 0)
        .serve(GreeterServer::new(GreeterImpl::new(Some(protocol.into()))))
        .start()
        .await
        .unwrap()
}

async fn generic_client(protocol: &str, address: std::net::SocketAddr) -> rpc::GenericClient {
    let consumer = rpc::Consumer::builder()
        // Direct (no registry) where a direct URL exists; dubbo's through the registry.
        .registry(if protocol == "dubbo" {
            format!("memory://generic-{protocol}")
        } else {
            format!("{protocol}://{address}")
        })
        .build()
        .await
        .unwrap();
    consumer
        .generic("org.example.Greeter")
        .version("1.0.0")
        .protocol(Some(protocol))
        .timeout(Duration::from_secs(5))
        .build()
        .await
        .unwrap()
}

/// Every protocol: a string, a struct argument and a `Result` answer, a
/// `$echo`, and the refusals (unknown method, wrong arity, wrong types)
/// naming service, method and problem, the method not run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generic_calls_and_echo_on_every_protocol() {
    for protocol in ["rpc", "tri", "dubbo"] {
        let provider = provider(protocol).await;
        let address = provider.local_addr(protocol).unwrap();
        let greeter = generic_client(protocol, address).await;

        let hello = greeter.call("sayHello", vec![json!("world")]).await;
        assert_eq!(
            hello.unwrap(),
            json!(format!("Hello, world from {protocol}")),
            "{protocol}"
        );

        let order = json!({"item": "apple", "quantity": 3});
        let placed = greeter.call("placeOrder", vec![order]).await.unwrap();
        assert!(placed["Ok"].is_u64(), "{protocol}: {placed}");
        let refused = greeter
            .call("placeOrder", vec![json!({"item": "unobtainium", "quantity": 1})])
            .await
            .unwrap();
        assert_eq!(
            refused,
            json!({"Err": {"OutOfStock": {"item": "unobtainium"}}}),
            "{protocol}"
        );

        let echoed = json!({"nested": [1, "two", null, {"three": 3.5}]});
        assert_eq!(greeter.echo(&echoed).await.unwrap(), echoed, "{protocol}");
        assert_eq!(greeter.echo(&json!("ping")).await.unwrap(), json!("ping"), "{protocol}");

        let unknown = greeter.call("nope", vec![]).await.unwrap_err();
        assert_eq!(unknown.status(), Some(Status::ServiceNotFound), "{protocol}: {unknown}");
        assert_eq!(unknown.kind().outcome(), Outcome::Remote, "{protocol}: {unknown}");
        let text = unknown.to_string();
        assert!(
            text.contains("nope") && text.contains("org.example.Greeter") && text.contains("sayHello"),
            "{protocol}: {text}"
        );

        let arity = greeter
            .call("sayHello", vec![json!("a"), json!("b")])
            .await
            .unwrap_err();
        assert_eq!(arity.status(), Some(Status::BadRequest), "{protocol}: {arity}");
        assert!(
            arity.to_string().contains("takes 1 argument, the call passed 2"),
            "{protocol}: {arity}"
        );
        assert_eq!(arity.method(), Some("sayHello"), "{protocol}: {arity}");

        let types = greeter.call("placeOrder", vec![json!({"item": 7})]).await.unwrap_err();
        assert_eq!(types.status(), Some(Status::BadRequest), "{protocol}: {types}");
        assert!(
            types.to_string().contains("cannot decode the arguments"),
            "{protocol}: {types}"
        );
        assert_eq!(types.method(), Some("placeOrder"), "{protocol}: {types}");

        // Nothing above ran the greeting but the one call.
        assert_eq!(
            greeter.call("sayHello", vec![json!("again")]).await.unwrap(),
            json!(format!("Hello, again from {protocol}"))
        );
        provider.shutdown().await;
    }
}

/// A generic call is not retried unless asked: with two providers that
/// each answer "service not found" (which failover retries elsewhere), the
/// default makes one attempt, `retries(1)` two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generic_calls_are_not_retried_by_default() {
    let registry = "memory://generic-retries";
    let mut providers = Vec::new();
    for _ in 0..2 {
        providers.push(
            rpc::Provider::builder()
                .registry(registry)
                .protocol("rpc", 0)
                .serve(GreeterServer::new(GreeterImpl::new(None)))
                .start()
                .await
                .unwrap(),
        );
    }
    let attempts = Arc::new(AtomicUsize::new(0));
    let counted = attempts.clone();
    // Each attempt asks for a version nobody serves: the provider answers
    // "service not found", a failure failover may retry on another provider.
    let consumer = rpc::Consumer::builder()
        .registry(registry)
        .attempt_layer(MapRequestLayer::new(move |mut invocation: rpc::Invocation| {
            counted.fetch_add(1, Ordering::SeqCst);
            invocation.set_service(rpc::ServiceKey::new("org.example.Greeter", Some("9.9.9"), None));
            invocation
        }))
        .build()
        .await
        .unwrap();
    let by_default = consumer
        .generic("org.example.Greeter")
        .version("1.0.0")
        .build()
        .await
        .unwrap();
    let error = by_default.call("sayHello", vec![json!("x")]).await.unwrap_err();
    assert_eq!(error.status(), Some(Status::ServiceNotFound), "{error}");
    assert_eq!(attempts.swap(0, Ordering::SeqCst), 1, "no retry by default");

    let retried = consumer
        .generic("org.example.Greeter")
        .version("1.0.0")
        .retries(1)
        .build()
        .await
        .unwrap();
    retried.call("sayHello", vec![json!("x")]).await.unwrap_err();
    assert_eq!(attempts.load(Ordering::SeqCst), 2, "retries(1): a second attempt");
    for provider in providers {
        provider.shutdown().await;
    }
}

/// A Java Apache Dubbo `GenericService` consumer (`generic=true`, Hessian2
/// over `dubbo://`) calls the Rust provider it has no interface for: a
/// string, a POJO argument written as a map with its `class`, `$echo`
/// (Java's `EchoService`), and an unknown method. Needs the Java peers
/// (`tests/java/build.sh`) and a network namespace (`rpc_tests::netns`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_java_generic_service_consumer_calls_a_rust_provider_over_dubbo() {
    use rpc_tests::java::JavaPeer;
    use rpc_tests::java_greeter::{CALLS_TIMEOUT, GreeterServer, RustGreeter};
    use rpc_tests::netns;

    // Java's dubbo client replaces a loopback address (see tests/tests/dubbo.rs):
    // the test runs in a network namespace of its own, on its address.
    let Some(net) = netns::isolate() else { return };
    let host = net.address().to_string();
    let provider = rpc::Provider::builder()
        .registry("memory://generic-java")
        .host(&host)
        .protocol("dubbo", 0)
        .serve(GreeterServer::new(RustGreeter))
        .start()
        .await
        .unwrap();
    let direct = format!("dubbo://{}/org.example.Greeter", provider.urls()[0].address());
    let calls = [
        "echo ping",
        "generic-hello world",
        "generic-order apple 3",
        "generic-nope",
    ];
    let results = tokio::task::spawn_blocking(move || {
        let args = ["--url", direct.as_str(), "--protocol", "dubbo", "--generic", "true"];
        JavaPeer::run_consumer(&args, &calls, CALLS_TIMEOUT)
    })
    .await
    .unwrap();
    assert_eq!(
        results[..3],
        ["ok ping", "ok Hello, world from rust", "ok {Ok={id=3000}}"],
        "{results:?}"
    );
    let nope = &results[3];
    assert!(
        nope.starts_with("err ") && nope.contains("nope") && nope.contains("org.example.Greeter"),
        "{nope}"
    );
    provider.shutdown().await;
}

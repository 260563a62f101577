//! Triple's Java form (`TripleRequestWrapper`/`TripleResponseWrapper` of
//! Hessian2 values) with real Java Apache Dubbo 3.3.6 peers (`tests/java/`,
//! see `rpc_tests::java`) through a real ZooKeeper: a Java consumer calling a
//! Rust provider over `tri`, and a Rust consumer calling a Java provider over
//! `tri`, on the Java `org.example.Greeter` interface.
//!
//! Java's client replaces a loopback provider address with the machine's
//! first non-loopback one (no Dubbo setting turns that off), so the tests with
//! Java peers run in a network namespace of their own (`rpc_tests::netns`),
//! where the Rust provider Java calls registers the namespace's `10.77.0.1`,
//! as the Java provider does; the others stay on 127.0.0.1.
//!
//! Needs the peers built by `tests/java/build.sh` (`./scripts/test.sh` builds them).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rpc::{Consumer, ErrorKind, Export, OutlierConfig, Provider, RunningProvider, Serialization};
use rpc_tests::free_port;
use rpc_tests::java::JavaPeer;
use rpc_tests::java_greeter::{
    CALLS_TIMEOUT, GreeterClient, GreeterPlusClient, GreeterServer, Order, OrderId, OrderRejected, RustGreeter,
    check_java_provider_answers,
};
use rpc_tests::netns;
use rpc_tests::zk::ZooKeeper;
use tower::util::MapRequestLayer;

/// The same interface with `placeOrder` declared without its exception: a
/// Java exception then has no `Err` to go to.
#[rpc::service(interface = "org.example.Greeter", version = "1.0.0")]
pub trait GreeterStrict {
    /// `placeOrder(Order)`, its `OrderRejected` not declared here.
    async fn place_order(&self, order: Order) -> OrderId;
}

/// The same interface missing methods the Java one has.
#[rpc::service(interface = "org.example.Greeter", version = "1.0.0")]
pub trait GreeterLite {
    /// `sayHello(String)`.
    async fn say_hello(&self, name: String) -> String;
}

struct LiteGreeter;

impl GreeterLite for LiteGreeter {
    async fn say_hello(&self, name: String) -> String {
        format!("Hello, {name} from lite")
    }
}

async fn rust_provider(registry: &str, host: &str, export: Export) -> RunningProvider {
    Provider::builder()
        .application("rust-greeter-provider")
        .registry(registry)
        .host(host)
        .protocol("tri", 0)
        .export(export)
        .start()
        .await
        .unwrap()
}

/// Runs a Java consumer with `args` over `calls` off the async runtime.
async fn java_calls(args: Vec<String>, calls: &[&'static str]) -> Vec<String> {
    let calls = calls.to_vec();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        JavaPeer::run_consumer(&args, &calls, CALLS_TIMEOUT)
    })
    .await
    .unwrap()
}

/// A Java consumer finds the Rust provider's `tri://` URL in ZooKeeper and
/// calls it in the wrapper form: a string, a struct argument, the declared
/// exception, `void`, a list, a map, a null, a timeout; at direct URLs, a
/// wrong version and a method the Rust provider does not have.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_java_consumer_calls_a_rust_provider_over_tri() {
    let Some(net) = netns::isolate() else { return };
    let zk = ZooKeeper::start();
    let host = net.address().to_string();
    let provider = rust_provider(&zk.url(), &host, Export::new(GreeterServer::new(RustGreeter))).await;
    let url = provider.urls()[0].clone();
    assert_eq!(url.protocol(), "tri", "{url}");
    // Java's consumer uses the first serialization offered: Hessian2.
    assert_eq!(
        url.param("prefer.serialization"),
        Some("hessian2,bincode,json"),
        "{url}"
    );

    let calls = [
        "hello world",
        "order apple 3 red,big",
        "order apple 0",
        "sleep 10",
        "list a,b",
        "list",
        "map k=1,j=2",
        "nullable -",
        "nullable x",
        "sleep 1500",
    ];
    let args = ["--registry", &zk.url(), "--protocol", "tri", "--timeout", "1000"];
    let results = java_calls(args.map(String::from).to_vec(), &calls).await;
    let expected = [
        "ok Hello, world from rust",
        "ok OrderId{id=3002}",
        "err org.example.OrderRejected: quantity must be positive, got 0 for apple",
        "ok void",
        "ok [a, b]",
        "ok []",
        "ok {j=2, k=1}",
        "ok null",
        "ok x",
    ];
    assert_eq!(results[..expected.len()], expected, "{results:?}");
    let timeout = &results[expected.len()];
    assert!(
        timeout.starts_with("err org.apache.dubbo.rpc.RpcException: ") && timeout.to_lowercase().contains("timeout"),
        "`sleep 1500` with a 1000 ms timeout: {timeout}"
    );

    // A version the Rust provider does not serve, at its direct URL.
    let direct = format!("tri://{}/org.example.Greeter", url.address());
    let args = ["--url", &direct, "--protocol", "tri", "--version", "2.0.0"];
    let wrong = java_calls(args.map(String::from).to_vec(), &["hello world"])
        .await
        .remove(0);
    assert!(
        wrong.starts_with("err org.apache.dubbo.rpc.RpcException: ")
            && wrong.contains("UNIMPLEMENTED")
            && wrong.contains("org.example.Greeter:2.0.0"),
        "{wrong}"
    );
    provider.shutdown().await;

    // A method the Rust provider does not have (Java's `echoMap`).
    let lite = rust_provider(&zk.url(), &host, Export::new(GreeterLiteServer::new(LiteGreeter))).await;
    let direct = format!("tri://{}/org.example.Greeter", lite.urls()[0].address());
    let args = ["--url", &direct, "--protocol", "tri"];
    let results = java_calls(args.map(String::from).to_vec(), &["hello world", "map k=1"]).await;
    assert_eq!(results[0], "ok Hello, world from lite", "{results:?}");
    assert!(
        results[1].starts_with("err org.apache.dubbo.rpc.RpcException: ")
            && results[1].contains("UNIMPLEMENTED")
            && results[1].contains("echoMap"),
        "{results:?}"
    );
    lite.shutdown().await;
}

/// A Rust consumer finds the Java provider's `tri://` URL in ZooKeeper and
/// calls it in the wrapper form with Hessian2: every case, the declared
/// exception as the method's `Err`, other failures as clear `RpcError`s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rust_consumer_calls_a_java_provider_over_tri() {
    let Some(_net) = netns::isolate() else { return };
    let zk = ZooKeeper::start();
    let registry = zk.url();
    let tri_port = free_port();
    let java = tokio::task::spawn_blocking(move || JavaPeer::provider(&registry, free_port(), tri_port, &[]))
        .await
        .unwrap();
    // Each attempt's provider protocol, port and serialization.
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let record = seen.clone();
    // Outlier detection off: a JVM may answer a method's first call slowly
    // (class loading), and an ejection would hold the Java process (its only
    // provider) out; this test checks that every attempt is tri.
    let consumer = Consumer::builder()
        .application("rust-greeter-consumer")
        .registry(zk.url())
        .outlier_detection(OutlierConfig {
            enabled: false,
            ..OutlierConfig::default()
        })
        .attempt_layer(MapRequestLayer::new(move |invocation: rpc::Invocation| {
            let provider = invocation
                .provider()
                .map(|url| format!("{}:{}", url.protocol(), url.port()));
            let line = format!("{} {}", provider.unwrap_or_default(), invocation.serialization());
            record.lock().unwrap().push(line);
            invocation
        }))
        .build()
        .await
        .unwrap();
    // No serialization set: the Java provider's URLs list only hessian2, so
    // calls are encoded in it, and over tri wrapped (the per-URL choice).
    let reference = || consumer.reference::<GreeterClient>().protocol(Some("tri"));
    let greeter: GreeterClient = reference().timeout(Duration::from_secs(5)).build().await.unwrap();

    check_java_provider_answers(&greeter).await;

    // A method the Java interface does not have: Java's answer, said clearly.
    let plus: GreeterPlusClient = consumer
        .reference::<GreeterPlusClient>()
        .protocol(Some("tri"))
        .serialization(Serialization::Hessian2)
        .timeout(Duration::from_secs(5))
        .retries(0)
        .build()
        .await
        .unwrap();
    assert_eq!(plus.say_hello("plus".into()).await.unwrap(), "Hello, plus from java");
    // Java 3.3.6 fails its own lookup of the unknown method in the wrapper
    // form (a NullPointerException, grpc-status 2 UNKNOWN): the error says
    // so, with the method and the provider.
    let error = plus.shout("x".into()).await.unwrap_err();
    let text = error.to_string();
    assert!(
        error.message().contains("grpc-status 2") && text.contains("method shout") && text.contains("provider "),
        "{error}"
    );
    assert_eq!(error.outcome(), rpc::Outcome::Remote, "{error}");

    // The Java exception where the method has no `Err` for it: an RpcError
    // naming the Java class and its message, from the provider.
    let strict: GreeterStrictClient = consumer
        .reference::<GreeterStrictClient>()
        .protocol(Some("tri"))
        .timeout(Duration::from_secs(5))
        .retries(0)
        .build()
        .await
        .unwrap();
    let zero = Order {
        item: "plum".into(),
        quantity: 0,
        tags: vec![],
    };
    let error = strict.place_order(zero).await.unwrap_err();
    assert!(
        error
            .message()
            .contains("org.example.OrderRejected: quantity must be positive, got 0 for plum"),
        "{error}"
    );
    assert_eq!(error.outcome(), rpc::Outcome::Remote, "{error}");

    // Every attempt so far went to the Java provider's tri:// URL, in Hessian2.
    let attempts = seen.lock().unwrap().clone();
    assert!(
        !attempts.is_empty() && attempts.iter().all(|a| a == &format!("tri:{tri_port} hessian2")),
        "{attempts:?}"
    );

    // A timeout: the call's budget ends before the Java provider answers.
    let quick: GreeterClient = reference()
        .timeout(Duration::from_millis(500))
        .retries(0)
        .build()
        .await
        .unwrap();
    let error = quick.sleep(1500).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error}");

    // A version nobody serves: no provider, not sent.
    let wrong = reference().version("2.0.0").check(false).build().await.unwrap();
    let error = wrong.say_hello("x".into()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NoProvider, "{error}");
    drop(java);
}

/// Our consumer and our provider in Java's form: a reference set to Hessian2
/// sends wrappers over `tri`, our provider answers in kind (the declared
/// exception as the method's `Err`), on loopback, without Java.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rust_consumer_calls_a_rust_provider_in_the_wrapper_form() {
    let registry = "memory://tri-java-rust";
    let provider = rust_provider(registry, "127.0.0.1", Export::new(GreeterServer::new(RustGreeter))).await;
    let consumer = Consumer::builder().registry(registry).build().await.unwrap();
    let greeter: GreeterClient = consumer
        .reference::<GreeterClient>()
        .serialization(Serialization::Hessian2)
        .timeout(Duration::from_secs(5))
        .build()
        .await
        .unwrap();
    assert_eq!(greeter.say_hello("rust".into()).await.unwrap(), "Hello, rust from rust");
    let order = Order {
        item: "pear".into(),
        quantity: 2,
        tags: vec!["ripe".into()],
    };
    assert_eq!(greeter.place_order(order).await.unwrap(), Ok(OrderId { id: 2001 }));
    let rejected = Order {
        item: "pear".into(),
        quantity: -1,
        tags: vec![],
    };
    assert_eq!(
        greeter.place_order(rejected).await.unwrap(),
        Err(OrderRejected {
            message: "quantity must be positive, got -1 for pear".into()
        })
    );
    greeter.sleep(1).await.unwrap();
    let map: BTreeMap<String, i32> = [("a".to_string(), -7)].into();
    assert_eq!(greeter.echo_map(map.clone()).await.unwrap(), map);
    assert_eq!(greeter.echo_nullable(None).await.unwrap(), None);
    provider.shutdown().await;
}

/// Wrappers that cannot be read get INVALID_ARGUMENT with the reason, and
/// the connection keeps serving; a good one is answered with a response
/// wrapper, as Java's provider answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_wrappers_get_clear_statuses_and_good_ones_wrapped_answers() {
    use http_body_util::BodyExt;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use rpc::protocol::tri::wrapper::{RequestWrapper, ResponseWrapper};

    let provider = rust_provider(
        "memory://tri-java-bad",
        "127.0.0.1",
        Export::new(GreeterServer::new(RustGreeter)),
    )
    .await;
    let addr = provider.local_addr("tri").unwrap();
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (sender, connection) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    // Java's headers, then one gRPC message: (grpc-status, grpc-message, response headers, body).
    let call = |message: bytes::Bytes| {
        let mut sender = sender.clone();
        let mut body = vec![0u8];
        body.extend_from_slice(&(message.len() as u32).to_be_bytes());
        body.extend_from_slice(&message);
        let request = http::Request::post(format!("http://{addr}/org.example.Greeter/sayHello"))
            .header("content-type", "application/grpc+proto")
            .header("te", "trailers")
            .header("tri-service-version", "1.0.0")
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .unwrap();
        async move {
            sender.ready().await.unwrap();
            let response = tokio::time::timeout(Duration::from_secs(10), sender.send_request(request))
                .await
                .unwrap()
                .unwrap();
            let headers = response.headers().clone();
            let collected = response.into_body().collect().await.unwrap();
            let trailers = collected.trailers().cloned().unwrap_or_default();
            let field = |name: &str| {
                headers
                    .get(name)
                    .or_else(|| trailers.get(name))
                    .map(|v| v.to_str().unwrap().to_string())
            };
            let status = field("grpc-status");
            let message = field("grpc-message").unwrap_or_default();
            (status, message, headers, collected.to_bytes())
        }
    };
    let wrapper = |serialize_type: &str, args: &[&'static [u8]], types: &[&str]| {
        RequestWrapper {
            serialize_type: serialize_type.into(),
            args: args.iter().map(|a| bytes::Bytes::from_static(a)).collect(),
            arg_types: types.iter().map(|t| t.to_string()).collect(),
        }
        .encode()
    };
    let world: &'static [u8] = b"\x05world";
    let cases = [
        (wrapper("fastjson2", &[world], &["java.lang.String"]), "fastjson2"),
        (bytes::Bytes::from_static(b"\x0a\x08hes"), "not a Triple wrapper"),
        (wrapper("hessian4", &[world], &[]).slice(..12), "not a Triple wrapper"),
        (
            wrapper("hessian4", &[world], &["a", "b"]),
            "1 arguments but 2 argument types",
        ),
        (
            wrapper("hessian4", &[b"\x05wor"], &["java.lang.String"]),
            "cannot decode the arguments",
        ),
    ];
    for (message, why) in cases {
        let (status, text, _, _) = call(message).await;
        assert_eq!(status.as_deref(), Some("3"), "{why}: {text}");
        assert!(text.contains(why), "expected `{why}` in: {text}");
    }
    let (status, text, headers, body) = call(wrapper("hessian4", &[world], &["java.lang.String"])).await;
    assert_eq!(status.as_deref(), Some("0"), "{text}");
    assert_eq!(headers.get("content-type").unwrap(), "application/grpc");
    assert!(headers.get("tri-exception-code").is_none(), "{headers:?}");
    let answer = ResponseWrapper::decode(&body.slice(5..)).unwrap();
    assert_eq!(answer.serialize_type, "hessian4");
    assert_eq!(answer.r#type, "java.lang.String");
    assert_eq!(&answer.data[..], b"\x16Hello, world from rust");
    provider.shutdown().await;
}

//! The Triple protocol over real HTTP/2 and HTTP/1.1 connections: calls in
//! both serializations, error mapping, deadlines, limits, `curl`, a
//! multi-protocol export, and clients that never finish their streams.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rpc::protocol::server::ServerConfig;
use rpc::{ErrorKind, Serialization, Status};
use rpc_examples::{GreeterClient, GreeterImpl, GreeterServer, Order, OrderError};
use rpc_tests::probe::{ProbeClient, ProbeImpl, ProbeServer};
use rpc_tests::wait_until;
use tokio::time::Instant;

async fn tri_provider(registry: &str) -> rpc::RunningProvider {
    rpc::Provider::builder()
        .registry(registry)
        .protocol("tri", 0)
        .server_config(ServerConfig {
            max_payload: 64 * 1024,
            ..ServerConfig::default()
        })
        .serve(GreeterServer::new(GreeterImpl::new(Some("tri".into()))))
        .serve(ProbeServer::new(ProbeImpl::default()))
        .start()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_over_tri_in_both_serializations_with_errors_mapped() {
    let registry = "memory://tri-calls";
    let provider = tri_provider(registry).await;
    assert!(provider.urls().iter().all(|u| u.protocol() == "tri"));
    let consumer = rpc::Consumer::builder().registry(registry).build().await.unwrap();
    for serialization in Serialization::ALL {
        let greeter: GreeterClient = consumer
            .reference::<GreeterClient>()
            .serialization(serialization)
            .build()
            .await
            .unwrap();
        assert_eq!(greeter.say_hello("x".into()).await.unwrap(), "Hello, x from tri");
        let refused = greeter
            .place_order(Order {
                item: "unobtainium".into(),
                quantity: 1,
            })
            .await
            .unwrap();
        assert_eq!(
            refused,
            Err(OrderError::OutOfStock {
                item: "unobtainium".into()
            })
        );

        let probe: ProbeClient = consumer
            .reference::<ProbeClient>()
            .serialization(serialization)
            .timeout(Duration::from_secs(10))
            .retries(0)
            .build()
            .await
            .unwrap();
        assert_eq!(probe.add(40, 2).await.unwrap(), 42);
        probe.ping().await.unwrap();
        // A panicking handler: INTERNAL on the wire, a service error here.
        // (Its own budget: with RUST_BACKTRACE=1 the panic takes a while.)
        let error = probe.boom().await.unwrap_err();
        assert_eq!(error.status(), Some(Status::ServiceError), "{error}");
        // The deadline travels as grpc-timeout; whichever side notices first reports it.
        let hurried: ProbeClient = consumer
            .reference::<ProbeClient>()
            .serialization(serialization)
            .timeout(Duration::from_millis(300))
            .retries(0)
            .build()
            .await
            .unwrap();
        let started = Instant::now();
        let error = hurried.sleep(5_000).await.unwrap_err();
        assert!(
            matches!(
                error.kind(),
                ErrorKind::Timeout | ErrorKind::Remote(Status::ServerTimeout)
            ),
            "{error}"
        );
        assert!(started.elapsed() < Duration::from_secs(2));
        // The provider's payload limit (64 KiB) holds: RESOURCE_EXHAUSTED.
        let error = probe.size(vec![7; 100 * 1024]).await.unwrap_err();
        assert_eq!(error.status(), Some(Status::ServerOverloaded), "{error}");
        assert!(error.to_string().contains("payload limit"), "{error}");
        assert_eq!(probe.size(vec![7; 1024]).await.unwrap(), 1024);
    }
    // A version nobody exports: UNIMPLEMENTED on the wire, not found here.
    let addr = provider.local_addr("tri").unwrap();
    let direct = rpc::Consumer::builder()
        .registry(format!("tri://{addr}"))
        .build()
        .await
        .unwrap();
    let wrong: GreeterClient = direct
        .reference::<GreeterClient>()
        .version("9.9.9")
        .build()
        .await
        .unwrap();
    let error = wrong.say_hello("x".into()).await.unwrap_err();
    assert_eq!(error.status(), Some(Status::ServiceNotFound), "{error}");
    assert!(error.to_string().contains("9.9.9"), "{error}");
    provider.shutdown().await;
}

fn curl(url: &str, body: &str) -> (u16, String) {
    let out = std::process::Command::new("curl")
        .args([
            "-sS",
            "-X",
            "POST",
            "-H",
            "content-type: application/json",
            "--data-binary",
            body,
        ])
        .args(["-w", "\n%{http_code}", "--max-time", "10", url])
        .output()
        .unwrap_or_else(|e| panic!("cannot run curl (install it: apt-get install -y curl): {e}"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or((&text, "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_calls_any_service_over_http1_json() {
    let provider = tri_provider("memory://tri-curl").await;
    let base = format!("http://{}", provider.local_addr("tri").unwrap());
    let greeter = format!("{base}/org.example.Greeter");
    let results = tokio::task::spawn_blocking(move || {
        [
            curl(&format!("{greeter}/sayHello"), r#"["world"]"#),
            curl(&format!("{greeter}/sayHello"), r#""bare""#),
            curl(&format!("{greeter}/placeOrder"), r#"[{"item":"tea","quantity":0}]"#),
            curl(&format!("{greeter}/noSuchMethod"), "[]"),
            curl(&format!("{greeter}/sayHello"), "[1, 2"),
        ]
    })
    .await
    .unwrap();
    assert_eq!(results[0], (200, r#""Hello, world from tri""#.to_string()));
    assert_eq!(results[1], (200, r#""Hello, bare from tri""#.to_string()));
    assert_eq!(results[2], (200, r#"{"Err":{"InvalidQuantity":0}}"#.to_string()));
    let (status, body) = &results[3];
    assert_eq!(*status, 404, "{body}");
    let error: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(error["code"], 12, "UNIMPLEMENTED: {body}");
    assert!(error["message"].as_str().unwrap().contains("noSuchMethod"), "{body}");
    assert_eq!(results[4].0, 400, "{:?}", results[4]);
    provider.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_native_port_speaks_tri_too() {
    // A provider exporting only `rpc` answers HTTP on the same port.
    let provider = rpc::Provider::builder()
        .registry("memory://tri-sniff")
        .protocol("rpc", 0)
        .serve(GreeterServer::new(GreeterImpl::new(None)))
        .start()
        .await
        .unwrap();
    let url = format!(
        "http://{}/org.example.Greeter/sayHello",
        provider.local_addr("rpc").unwrap()
    );
    let (status, body) = tokio::task::spawn_blocking(move || curl(&url, r#"["port"]"#))
        .await
        .unwrap();
    assert_eq!((status, body.as_str()), (200, r#""Hello, port""#));
    provider.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_protocol_export_prefers_rpc_and_falls_back_to_tri() {
    let registry = "memory://tri-multi";
    let provider = rpc::Provider::builder()
        .registry(registry)
        .protocol("rpc", 0)
        .protocol("tri", 0)
        .serve(GreeterServer::new(GreeterImpl::new(Some("both".into()))))
        .start()
        .await
        .unwrap();
    let schemes: Vec<&str> = provider.urls().iter().map(|u| u.protocol()).collect();
    assert_eq!(schemes, ["rpc", "tri"], "one URL per protocol");
    let consumer = rpc::Consumer::builder().registry(registry).build().await.unwrap();
    // Default: native preferred.
    let native: GreeterClient = consumer.reference::<GreeterClient>().build().await.unwrap();
    for _ in 0..5 {
        native.say_hello("a".into()).await.unwrap();
    }
    assert_eq!((provider.connections_on("rpc"), provider.connections_on("tri")), (1, 0));
    // Preferring tri.
    let tri: GreeterClient = consumer
        .reference::<GreeterClient>()
        .protocol(Some("tri"))
        .build()
        .await
        .unwrap();
    for _ in 0..5 {
        tri.say_hello("b".into()).await.unwrap();
    }
    assert_eq!(provider.connections_on("tri"), 1);
    drop((native, tri));

    // The native endpoint is dead (a stale URL, say): calls fall back to tri.
    let rpc_url = provider.urls()[0].clone();
    let tri_url = provider.urls()[1].clone();
    let dead = rpc::Url::new("rpc", "127.0.0.1", rpc_tests::free_port())
        .with_path(rpc_url.path())
        .with_param("interface", "org.example.Greeter")
        .with_param("version", "1.0.0");
    let stale = rpc::registry::MemoryRegistry::named("tri-stale");
    use rpc::registry::Registry;
    stale.register(&dead).await.unwrap();
    stale.register(&tri_url).await.unwrap();
    let consumer = rpc::Consumer::builder()
        .registry("memory://tri-stale")
        .build()
        .await
        .unwrap();
    let greeter: GreeterClient = consumer.reference::<GreeterClient>().build().await.unwrap();
    for _ in 0..5 {
        assert_eq!(greeter.say_hello("c".into()).await.unwrap(), "Hello, c from both");
    }
    provider.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_that_never_finish_cannot_exhaust_the_server() {
    let provider = tri_provider("memory://tri-stall").await;
    let addr = provider.local_addr("tri").unwrap();
    // A raw HTTP/2 client opens many calls whose bodies never end.
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (sender, connection) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let mut stalled = Vec::new();
    for _ in 0..200 {
        let mut sender = sender.clone();
        stalled.push(tokio::spawn(async move {
            let body = StreamBody::new(futures::stream::pending::<Result<Frame<Bytes>, Infallible>>());
            let request = http::Request::post(format!("http://{addr}/org.example.Greeter/sayHello"))
                .header("content-type", "application/grpc+json")
                .header("te", "trailers")
                .header("grpc-timeout", "500m")
                .body(body)
                .unwrap();
            sender.ready().await.unwrap();
            let response = sender.send_request(request).await.unwrap();
            response
                .headers()
                .get("grpc-status")
                .map(|v| v.to_str().unwrap().to_string())
        }));
    }
    wait_until("the stalled calls to reach the server", Duration::from_secs(5), || {
        provider.connections() == 1
    })
    .await;
    // Meanwhile a well-behaved consumer is served at once.
    let consumer = rpc::Consumer::builder()
        .registry(format!("tri://{addr}"))
        .build()
        .await
        .unwrap();
    let greeter: GreeterClient = consumer.reference::<GreeterClient>().build().await.unwrap();
    let started = Instant::now();
    assert_eq!(greeter.say_hello("ok".into()).await.unwrap(), "Hello, ok from tri");
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "served while 200 streams stall"
    );
    // Every stalled call is answered by its deadline: DEADLINE_EXCEEDED.
    for call in stalled {
        let status = tokio::time::timeout(Duration::from_secs(5), call)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(status.as_deref(), Some("4"));
    }
    assert_eq!(provider.in_flight(), 0);
    provider.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_grpc_requests_get_clear_statuses() {
    let provider = tri_provider("memory://tri-bad").await;
    let addr = provider.local_addr("tri").unwrap();
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (sender, connection) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let call = |path: &str, content_type: &str, body: Vec<u8>| {
        let mut sender = sender.clone();
        let request = http::Request::post(format!("http://{addr}{path}"))
            .header("content-type", content_type)
            .header("te", "trailers")
            .body(http_body_util::Full::new(Bytes::from(body)))
            .unwrap();
        async move {
            sender.ready().await.unwrap();
            let response = sender.send_request(request).await.unwrap();
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let collected = response.into_body().collect().await.unwrap();
            let trailers = collected.trailers().cloned().unwrap_or_default();
            let grpc = headers
                .get("grpc-status")
                .or_else(|| trailers.get("grpc-status"))
                .map(|v| v.to_str().unwrap().to_string());
            let message = headers
                .get("grpc-message")
                .or_else(|| trailers.get("grpc-message"))
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default();
            (status, grpc, message)
        }
    };
    let framed = |payload: &[u8]| {
        let mut out = vec![0u8];
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        out.extend_from_slice(payload);
        out
    };
    let greeter = "/org.example.Greeter/sayHello";
    // Truncated frame, compressed flag, undecodable JSON, unknown method, unknown service.
    let (_, status, message) = call(greeter, "application/grpc", vec![0, 0, 0, 0, 9, 1]).await;
    assert_eq!(status.as_deref(), Some("3"), "{message}");
    let mut compressed = framed(b"\"x\"");
    compressed[0] = 1;
    let (_, status, message) = call(greeter, "application/grpc", compressed).await;
    assert_eq!(status.as_deref(), Some("3"), "{message}");
    assert!(message.contains("compress"), "{message}");
    let (_, status, message) = call(greeter, "application/grpc+json", framed(b"{nope")).await;
    assert_eq!(status.as_deref(), Some("3"), "{message}");
    assert!(message.contains("decode"), "{message}");
    let (_, status, _) = call("/org.example.Greeter/nope", "application/grpc", framed(b"[]")).await;
    assert_eq!(status.as_deref(), Some("12"));
    let (_, status, message) = call("/no.Such/thing", "application/grpc", framed(b"[]")).await;
    assert_eq!(status.as_deref(), Some("12"));
    assert!(message.contains("no.Such"), "{message}");
    // An oversized message is refused without reading it all: RESOURCE_EXHAUSTED.
    let (_, status, _) = call(greeter, "application/grpc", framed(&vec![b' '; 200 * 1024])).await;
    assert_eq!(status.as_deref(), Some("8"));
    // A content type nobody speaks.
    let (http, _, _) = call(greeter, "text/plain", b"hi".to_vec()).await;
    assert_eq!(http, 415);
    // And the server still serves.
    let (_, status, _) = call(greeter, "application/grpc", framed(b"\"fine\"")).await;
    assert_eq!(status.as_deref(), Some("0"));
    provider.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_drains_tri_calls() {
    let registry = "memory://tri-drain";
    let provider = tri_provider(registry).await;
    let consumer = rpc::Consumer::builder().registry(registry).build().await.unwrap();
    let probe: ProbeClient = consumer
        .reference::<ProbeClient>()
        .timeout(Duration::from_secs(5))
        .build()
        .await
        .unwrap();
    let call = tokio::spawn({
        let probe = probe.clone();
        async move { probe.sleep(300).await }
    });
    wait_until("the call to be in flight", Duration::from_secs(5), || {
        provider.in_flight() == 1
    })
    .await;
    let abandoned = provider.shutdown().await;
    assert_eq!(abandoned, 0);
    assert_eq!(call.await.unwrap().unwrap(), 300, "the call in flight completed");
    assert_eq!(provider.connections(), 0);
}

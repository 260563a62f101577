//! Calls end to end over real TCP: provider and consumer in this process.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::sync::Arc;
use std::time::Duration;

use rpc::protocol::rpc::RpcChannelConfig;
use rpc::protocol::server::ServerConfig;
use rpc::{ErrorKind, Outcome, Serialization, Status};
use rpc_examples::{GreeterClient, GreeterImpl, GreeterServer, Order, OrderError, OrderId};
use rpc_tests::probe::{ProbeClient, ProbeImpl, ProbeServer};
use rpc_tests::wait_until;

/// A unique in-process registry per test.
fn registry(test: &str) -> String {
    format!("memory://{test}")
}

async fn provider(registry: &str, probe: ProbeImpl) -> rpc::RunningProvider {
    rpc::Provider::builder()
        .application("test-provider")
        .registry(registry)
        .protocol("rpc", 0)
        .serve(GreeterServer::new(GreeterImpl::new(None)))
        .serve(ProbeServer::new(probe))
        .start()
        .await
        .expect("provider starts")
}

/// The probe service on a server of its own (no provider, no registry), on
/// a free port: for tests that abort the server or call it through a channel.
async fn bare_probe_server() -> rpc::protocol::server::ServerHandle {
    let dispatcher = rpc::protocol::Dispatcher::new([(
        rpc::ServiceKey::new("org.rpc.test.Probe", Some("1.0.0"), None),
        rpc::protocol::Exported::new(ProbeServer::new(ProbeImpl::default())),
    )]);
    rpc::protocol::server::Server::new(dispatcher, ServerConfig::default())
        .bind("127.0.0.1:0")
        .await
        .unwrap()
}

async fn consumer(registry: &str) -> rpc::Consumer {
    rpc::Consumer::builder()
        .application("test-consumer")
        .registry(registry)
        .build()
        .await
        .expect("consumer builds")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_services_share_one_port_in_both_serializations() {
    let reg = registry("several_services");
    let provider = provider(&reg, ProbeImpl::default()).await;
    assert_eq!(provider.urls().len(), 2);
    let ports: Vec<u16> = provider.urls().iter().map(|u| u.port()).collect();
    assert_eq!(ports[0], ports[1], "both services on one port");

    let consumer = consumer(&reg).await;
    let mut references = Vec::new();
    for serialization in Serialization::ALL {
        let greeter: GreeterClient = consumer
            .reference::<GreeterClient>()
            .serialization(serialization)
            .build()
            .await
            .unwrap();
        let probe: ProbeClient = consumer
            .reference::<ProbeClient>()
            .serialization(serialization)
            .build()
            .await
            .unwrap();
        assert_eq!(greeter.say_hello("world".into()).await.unwrap(), "Hello, world");
        assert_eq!(probe.add(40, 2).await.unwrap(), 42);
        assert_eq!(probe.echo("ünïcødé ✓".into()).await.unwrap(), "ünïcødé ✓");
        probe.ping().await.unwrap();
        references.push((greeter, probe));
    }
    // One connection per provider address, shared by all four references
    // (it closes when the last reference using it is dropped).
    assert_eq!(provider.connections(), 1);
    drop(references);
    provider.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn business_errors_are_values() {
    let reg = registry("business_errors");
    let provider = provider(&reg, ProbeImpl::default()).await;
    let greeter: GreeterClient = consumer(&reg).await.reference::<GreeterClient>().build().await.unwrap();
    let placed = greeter
        .place_order(Order {
            item: "tea".into(),
            quantity: 1,
        })
        .await
        .unwrap();
    assert_eq!(placed, Ok(OrderId(1)));
    let refused = greeter
        .place_order(Order {
            item: "tea".into(),
            quantity: 0,
        })
        .await
        .unwrap();
    assert_eq!(refused, Err(OrderError::InvalidQuantity(0)));
    provider.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_calls_in_flight_on_one_connection() {
    const N: usize = 1000;
    let reg = registry("thousand_in_flight");
    // `gather` answers only once all N calls are waiting inside the provider at once.
    let provider = provider(&reg, ProbeImpl::with_barrier(N)).await;
    let probe: ProbeClient = consumer(&reg)
        .await
        .reference::<ProbeClient>()
        .timeout(Duration::from_secs(20))
        .build()
        .await
        .unwrap();
    let calls = (0..N).map(|_| {
        let probe = probe.clone();
        tokio::spawn(async move { probe.gather().await })
    });
    let mut numbers: Vec<u64> = Vec::new();
    for call in futures::future::join_all(calls).await {
        numbers.push(call.unwrap().unwrap());
    }
    numbers.sort_unstable();
    assert_eq!(numbers, (0..N as u64).collect::<Vec<_>>());
    assert_eq!(provider.connections(), 1, "all calls multiplexed over one connection");
    provider.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_deadline_is_an_unknown_outcome_not_a_hang() {
    let reg = registry("deadline");
    let provider = provider(&reg, ProbeImpl::default()).await;
    let probe: ProbeClient = consumer(&reg)
        .await
        .reference::<ProbeClient>()
        .timeout(Duration::from_millis(200))
        .build()
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let err = probe.sleep(5_000).await.unwrap_err();
    let waited = started.elapsed();
    // Client and provider share the deadline (it travels as a relative timeout):
    // whichever notices first answers, and both say the outcome is unknown.
    assert!(
        matches!(
            err.kind(),
            ErrorKind::Timeout | ErrorKind::Remote(Status::ServerTimeout)
        ),
        "{err}"
    );
    assert_eq!(err.outcome(), Outcome::Unknown);
    assert!(
        waited >= Duration::from_millis(190) && waited < Duration::from_secs(2),
        "waited {waited:?}"
    );
    assert_eq!(err.method(), Some("sleep"));
    assert!(err.address().is_some(), "the error names the provider: {err}");
    // The provider also stops the call at the relative deadline it was sent.
    wait_until("the provider to drop the expired call", Duration::from_secs(3), || {
        provider.in_flight() == 0
    })
    .await;
    // The connection is still fine.
    assert_eq!(probe.sleep(1).await.unwrap(), 1);
    provider.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_check_names_the_service_and_registry() {
    let reg = registry("startup_check");
    let consumer = consumer(&reg).await;
    let err = consumer
        .reference::<GreeterClient>()
        .check(true)
        .build()
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("org.example.Greeter:1.0.0") && text.contains("memory://startup_check"),
        "{text}"
    );

    // check = false builds, fails calls with a not-sent error, and finds a provider that appears later.
    let greeter: GreeterClient = consumer
        .reference::<GreeterClient>()
        .check(false)
        .build()
        .await
        .unwrap();
    let err = greeter.say_hello("x".into()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NoProvider);
    assert_eq!(err.outcome(), Outcome::NotSent);
    let provider = provider(&reg, ProbeImpl::default()).await;
    // The directory hears of the new provider asynchronously: poll, bounded.
    let started = tokio::time::Instant::now();
    let reply = loop {
        match greeter.say_hello("x".into()).await {
            Ok(reply) => break reply,
            Err(e) if e.kind() == ErrorKind::NoProvider && started.elapsed() < Duration::from_secs(5) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(e) => panic!("the provider that appeared was not found: {e}"),
        }
    };
    assert_eq!(reply, "Hello, x");
    provider.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_and_groups_select_providers_exactly() {
    let reg = registry("versions");
    let v2 = rpc::Provider::builder()
        .registry(&reg)
        .protocol("rpc", 0)
        .export(rpc::Export::new(GreeterServer::new(GreeterImpl::new(Some("v2".into())))).version("2.0.0"))
        .start()
        .await
        .unwrap();
    let consumer = consumer(&reg).await;
    // Only 2.0.0 exists: a 1.0.0 reference finds nothing.
    let err = consumer.reference::<GreeterClient>().build().await.unwrap_err();
    assert!(matches!(err, rpc::Error::NoProvider(_)), "{err}");
    let v1 = provider(&reg, ProbeImpl::default()).await;
    let g1: GreeterClient = consumer
        .reference::<GreeterClient>()
        .version("1.0.0")
        .build()
        .await
        .unwrap();
    let g2: GreeterClient = consumer
        .reference::<GreeterClient>()
        .version("2.0.0")
        .build()
        .await
        .unwrap();
    let any: GreeterClient = consumer
        .reference::<GreeterClient>()
        .version("*")
        .loadbalance(rpc::Balancer::RoundRobin)
        .build()
        .await
        .unwrap();
    for _ in 0..5 {
        assert_eq!(g1.say_hello("a".into()).await.unwrap(), "Hello, a");
        assert_eq!(g2.say_hello("a".into()).await.unwrap(), "Hello, a from v2");
    }
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..6 {
        seen.insert(any.say_hello("a".into()).await.unwrap());
    }
    assert_eq!(seen.len(), 2, "`*` reaches both versions: {seen:?}");
    // A group that nobody exports.
    let err = consumer
        .reference::<GreeterClient>()
        .group("other")
        .build()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("other/org.example.Greeter:1.0.0"), "{err}");
    v1.shutdown().await;
    v2.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn providers_of_several_registries_are_merged() {
    let (a, b) = (registry("merge_a"), registry("merge_b"));
    let pa = rpc::Provider::builder()
        .registry(&a)
        .protocol("rpc", 0)
        .serve(GreeterServer::new(GreeterImpl::new(Some("a".into()))))
        .start()
        .await
        .unwrap();
    let pb = rpc::Provider::builder()
        .registry(&b)
        .protocol("rpc", 0)
        .serve(GreeterServer::new(GreeterImpl::new(Some("b".into()))))
        .start()
        .await
        .unwrap();
    let consumer = rpc::Consumer::builder()
        .registry(&a)
        .registry(&b)
        .build()
        .await
        .unwrap();
    let greeter: GreeterClient = consumer
        .reference::<GreeterClient>()
        .loadbalance(rpc::Balancer::RoundRobin)
        .build()
        .await
        .unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..4 {
        seen.insert(greeter.say_hello("x".into()).await.unwrap());
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        ["Hello, x from a", "Hello, x from b"]
    );
    pa.shutdown().await;
    pb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_connection_fails_in_flight_calls_at_once() {
    // Serve on a bare server so the test can abort it.
    let server = bare_probe_server().await;
    let url = format!("rpc://{}", server.local_addr());
    let consumer = rpc::Consumer::builder().registry(url).build().await.unwrap();
    // Failfast: the error of the one attempt is the call's (failover would
    // retry the unknown outcomes).
    let probe: ProbeClient = consumer
        .reference::<ProbeClient>()
        .timeout(Duration::from_secs(30))
        .cluster(rpc::ClusterPolicy::Failfast)
        .build()
        .await
        .unwrap();
    let calls: Vec<_> = (0..10)
        .map(|_| {
            let probe = probe.clone();
            tokio::spawn(async move { probe.sleep(20_000).await })
        })
        .collect();
    wait_until("10 calls in flight", Duration::from_secs(5), || {
        server.in_flight() == 10
    })
    .await;
    let started = tokio::time::Instant::now();
    server.abort().await;
    for call in calls {
        let err = call.await.unwrap().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConnectionLost, "{err}");
        assert_eq!(err.outcome(), Outcome::Unknown);
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "failed promptly, not at the deadline"
    );
    // Nothing listens any more: calls are not sent. (The channel reconnects
    // at once after the break; a connection the kernel accepted just before
    // the listener closed is reset, and a call may be on it: that one's
    // outcome is unknown. Such a connection dies young, so the channel backs
    // off, and the calls after it are refused here, not sent.)
    let first = probe.echo("x".into()).await.unwrap_err();
    if first.outcome() != Outcome::NotSent {
        assert_eq!(first.kind(), ErrorKind::ConnectionLost, "{first}");
        let err = probe.echo("x".into()).await.unwrap_err();
        assert_eq!(err.outcome(), Outcome::NotSent, "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_limits_hold_on_both_sides() {
    let reg = registry("payload_limits");
    let provider = rpc::Provider::builder()
        .registry(&reg)
        .protocol("rpc", 0)
        .server_config(ServerConfig {
            max_payload: 64 * 1024,
            ..ServerConfig::default()
        })
        .serve(ProbeServer::new(ProbeImpl::default()))
        .start()
        .await
        .unwrap();
    let small_client = rpc::Consumer::builder()
        .registry(&reg)
        .channel_config(RpcChannelConfig {
            max_payload: 32 * 1024,
            ..RpcChannelConfig::default()
        })
        .build()
        .await
        .unwrap();
    let probe: ProbeClient = small_client.reference::<ProbeClient>().build().await.unwrap();
    // Refused locally before sending.
    let err = probe.size(vec![1; 40 * 1024]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PayloadTooLarge, "{err}");
    assert_eq!(err.outcome(), Outcome::NotSent);
    // A response over the client's limit is refused, and the connection survives it.
    let err = probe.blob(40 * 1024).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode, "{err}");
    assert!(err.to_string().contains("exceeds the payload limit"), "{err}");
    assert_eq!(probe.size(vec![1; 1024]).await.unwrap(), 1024);

    // A request over the server's limit is refused by the server with a clear status.
    let big_client = rpc::Consumer::builder().registry(&reg).build().await.unwrap();
    let probe: ProbeClient = big_client.reference::<ProbeClient>().build().await.unwrap();
    let err = probe.size(vec![1; 100 * 1024]).await.unwrap_err();
    assert_eq!(err.status(), Some(Status::BadRequest), "{err}");
    assert!(
        err.message().contains("exceeds the payload limit of 65536 bytes"),
        "{err}"
    );
    assert_eq!(
        probe.size(vec![1; 1024]).await.unwrap(),
        1024,
        "connection still usable"
    );
    provider.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_drains_in_flight_calls_and_unregisters() {
    let reg = registry("graceful");
    let provider = rpc::Provider::builder()
        .registry(&reg)
        .protocol("rpc", 0)
        .shutdown_grace(Duration::from_secs(5))
        .serve(ProbeServer::new(ProbeImpl::default()))
        .start()
        .await
        .unwrap();
    let probe: ProbeClient = consumer(&reg)
        .await
        .reference::<ProbeClient>()
        .timeout(Duration::from_secs(5))
        .build()
        .await
        .unwrap();
    let slow = {
        let probe = probe.clone();
        tokio::spawn(async move { probe.sleep(300).await })
    };
    wait_until("the slow call to arrive", Duration::from_secs(5), || {
        provider.in_flight() == 1
    })
    .await;
    let abandoned = provider.shutdown().await;
    assert_eq!(abandoned, 0);
    assert_eq!(slow.await.unwrap().unwrap(), 300, "the in-flight call completed");
    assert!(
        rpc::registry::MemoryRegistry::named("graceful")
            .providers("org.rpc.test.Probe")
            .is_empty()
    );
    assert_eq!(provider.connections(), 0);
    let err = probe.echo("late".into()).await.unwrap_err();
    assert_eq!(err.outcome(), Outcome::NotSent, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_configuration_is_refused_clearly() {
    let err = rpc::Provider::builder().start().await.unwrap_err();
    assert!(err.to_string().contains("exports no service"), "{err}");
    let err = rpc::Provider::builder()
        .protocol("carrier-pigeon", 0)
        .serve(ProbeServer::new(ProbeImpl::default()))
        .start()
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("unsupported protocol `carrier-pigeon`"),
        "{err}"
    );
    let err = rpc::Provider::builder()
        .registry("nonsense")
        .serve(ProbeServer::new(ProbeImpl::default()))
        .start()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("invalid URL"), "{err}");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let err = rpc::Provider::builder()
        .protocol("rpc", port)
        .serve(ProbeServer::new(ProbeImpl::default()))
        .start()
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{err}"
    );
    let err = rpc::Consumer::builder().build().await.unwrap_err();
    assert!(err.to_string().contains("no registry"), "{err}");
    let consumer = consumer("memory://bad_config").await;
    let err = consumer
        .reference::<ProbeClient>()
        .method("nope", rpc::MethodConfig::new())
        .check(false)
        .build()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("has no method `nope`"), "{err}");
}

/// Every dispatch mode runs calls that wait concurrently (eight calls on one
/// connection meet at a barrier), answers a panicking handler with an error,
/// and keeps serving afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dispatch_mode_serves_waiting_calls_concurrently_and_contains_panics() {
    use rpc::protocol::server::Dispatch;
    for (i, dispatch) in [Dispatch::Inline, Dispatch::Spawn, Dispatch::Auto]
        .into_iter()
        .enumerate()
    {
        let reg = registry(&format!("dispatch_{i}"));
        let provider = rpc::Provider::builder()
            .registry(&reg)
            .protocol("rpc", 0)
            .server_config(ServerConfig {
                dispatch,
                ..ServerConfig::default()
            })
            .serve(ProbeServer::new(ProbeImpl::with_barrier(8)))
            .start()
            .await
            .unwrap();
        let consumer = consumer(&reg).await;
        let probe: ProbeClient = consumer
            .reference::<ProbeClient>()
            .timeout(Duration::from_secs(5))
            .build()
            .await
            .unwrap();
        let calls = (0..8).map(|_| {
            let probe = probe.clone();
            async move { probe.gather().await }
        });
        let answers = futures::future::join_all(calls).await;
        let mut numbers: Vec<u64> = answers
            .into_iter()
            .map(|a| a.unwrap_or_else(|e| panic!("{dispatch:?}: {e}")))
            .collect();
        numbers.sort_unstable();
        assert_eq!(numbers, (0..8).collect::<Vec<_>>(), "{dispatch:?}");
        let err = probe.boom().await.unwrap_err();
        assert_eq!(err.status(), Some(Status::ServiceError), "{dispatch:?}: {err}");
        assert_eq!(probe.echo("still here".into()).await.unwrap(), "still here");
        provider.shutdown().await;
    }
}

/// `Dispatch::Auto` runs requests inline where a task per request buys no
/// parallelism (one worker thread), and spawns them otherwise.
#[test]
fn auto_dispatch_follows_the_runtime() {
    use rpc::protocol::server::{Dispatch, Server};
    let resolved = |runtime: tokio::runtime::Runtime| {
        runtime.block_on(async {
            let server = Server::new(rpc::protocol::Dispatcher::default(), ServerConfig::default())
                .bind("127.0.0.1:0")
                .await
                .unwrap();
            let dispatch = server.dispatch();
            server.abort().await;
            dispatch
        })
    };
    let current = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    assert_eq!(resolved(current), Dispatch::Inline);
    let one = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    assert_eq!(resolved(one), Dispatch::Inline);
    let two = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    assert_eq!(resolved(two), Dispatch::Spawn);
}

/// Defect: a channel call's future dropped before it was first polled left
/// its pending entry behind until the connection closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_future_dropped_unpolled_leaves_no_pending_entry() {
    use tower::Service;
    let server = bare_probe_server().await;
    let mut channel = rpc::protocol::rpc::RpcChannel::new(server.local_addr().to_string(), RpcChannelConfig::default());
    let invocation = || {
        let args = Serialization::Bincode.encode(&(60_000u64,)).unwrap();
        let key = rpc::ServiceKey::new("org.rpc.test.Probe", Some("1.0.0"), None);
        rpc::Invocation::new(key, "sleep", args, Serialization::Bincode)
    };
    // Connect first: the call below takes the connected path.
    let ping = rpc::Invocation::new(
        rpc::ServiceKey::new("org.rpc.test.Probe", Some("1.0.0"), None),
        "ping",
        Serialization::Bincode.encode(&()).unwrap(),
        Serialization::Bincode,
    );
    channel.call(ping).await.unwrap();
    for _ in 0..100 {
        drop(channel.call(invocation()));
    }
    assert_eq!(channel.in_flight(), 0, "no pending entry outlives its future");
    server.abort().await;
}

/// Defect: a peer that accepts connections and closes them at once (a server
/// at its connection limit, a proxy with no backend) reset the channel's
/// failure count, and it reconnected in a tight loop. A connection that dies
/// young now counts as a failed attempt, with backoff.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_accepts_and_closes_at_once_gets_no_reconnect_storm() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let acceptor = tokio::spawn({
        let accepted = accepted.clone();
        async move {
            while let Ok((stream, _)) = listener.accept().await {
                accepted.fetch_add(1, Ordering::SeqCst);
                drop(stream);
            }
        }
    });
    let channel = rpc::protocol::rpc::RpcChannel::new(address.to_string(), RpcChannelConfig::default());
    let invoker = rpc::BoxInvoker::new(channel.clone());
    let key = rpc::ServiceKey::new("org.rpc.test.Probe", Some("1.0.0"), None);
    // Calls every 10 ms for 1.5 s: with backoff from 100 ms (doubling), a
    // handful of connections; in a tight loop, one per call or more.
    let started = tokio::time::Instant::now();
    while started.elapsed() < Duration::from_millis(1500) {
        let mut invocation = rpc::Invocation::new(
            key.clone(),
            "ping",
            Serialization::Bincode.encode(&()).unwrap(),
            Serialization::Bincode,
        );
        invocation.set_deadline(Some(tokio::time::Instant::now() + Duration::from_millis(50)));
        let _ = invoker.invoke(invocation).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let connections = accepted.load(Ordering::SeqCst);
    assert!(
        connections <= 20,
        "{connections} connections in 1.5 s: a reconnect storm"
    );
    assert!(channel.is_backing_off() || connections >= 1);
    acceptor.abort();
}

/// Defect: `timeout(Duration::MAX)` panicked (`Instant::now() + Duration::MAX`
/// overflows); it means no deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_beyond_the_clock_means_no_deadline() {
    let reg = registry("timeout_max");
    let provider = provider(&reg, ProbeImpl::default()).await;
    let probe: ProbeClient = consumer(&reg)
        .await
        .reference::<ProbeClient>()
        .timeout(Duration::MAX)
        .attempt_timeout(Duration::MAX)
        .build()
        .await
        .unwrap();
    assert_eq!(probe.add(40, 2).await.unwrap(), 42);
    provider.shutdown().await;
}

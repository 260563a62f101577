//! Filters, the tower way: user layers on both sides, tower's own limits in
//! them, the fixed order (stub → mock → call layers → cluster → attempt
//! layers → channel), and a balancer and a policy of the user's own plugged
//! into the cluster. Real providers over real TCP, found through a memory
//! registry.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use rpc::cluster::{Call, Candidate, LoadBalance, Policy, Select};
use rpc::{BoxFuture, ErrorKind, Invocation, Outcome, Response, RpcError, Status};
use rpc_tests::probe::{ProbeClient, ProbeImpl, ProbeServer};
use rpc_tests::wait_until;
use tower::util::MapRequestLayer;
use tower::{Layer, Service, ServiceBuilder};

fn registry(test: &str) -> String {
    format!("memory://layers-{test}")
}

async fn provider(
    registry: &str,
    builder: impl FnOnce(rpc::ProviderBuilder) -> rpc::ProviderBuilder,
) -> rpc::RunningProvider {
    let base = rpc::Provider::builder()
        .application("layers-provider")
        .registry(registry)
        .protocol("rpc", 0);
    builder(base).start().await.expect("provider starts")
}

fn probe() -> ProbeServer<ProbeImpl> {
    ProbeServer::new(ProbeImpl::default())
}

async fn consumer(registry: &str, builder: impl FnOnce(rpc::ConsumerBuilder) -> rpc::ConsumerBuilder) -> rpc::Consumer {
    builder(
        rpc::Consumer::builder()
            .application("layers-consumer")
            .registry(registry),
    )
    .build()
    .await
    .expect("consumer builds")
}

/// What a recording layer saw, one line per request.
type Seen = Arc<Mutex<Vec<String>>>;

/// A layer writing `tag`, the method and what `detail` says of each request into `seen`.
fn recorder(
    seen: &Seen,
    tag: &'static str,
    detail: fn(&Invocation) -> String,
) -> MapRequestLayer<impl Fn(Invocation) -> Invocation + Clone + Send + Sync + 'static> {
    let seen = seen.clone();
    MapRequestLayer::new(move |invocation: Invocation| {
        let line = format!("{tag} {} {}", invocation.method(), detail(&invocation));
        seen.lock().unwrap().push(line);
        invocation
    })
}

fn lines(seen: &Seen) -> Vec<String> {
    seen.lock().unwrap().clone()
}

/// A port nothing listens on (bound, then closed).
async fn closed_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

/// Registers a probe provider at `port` of 127.0.0.1 in the memory registry `registry`.
async fn register_fake(registry: &str, port: u16) {
    let memory = rpc::registry::from_address(registry).unwrap();
    let url = rpc::Url::parse(&format!(
        "rpc://127.0.0.1:{port}/org.rpc.test.Probe?interface=org.rpc.test.Probe&version=1.0.0&pid=999999"
    ))
    .unwrap();
    memory.register(&url).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_layers_see_each_call_once_and_attempt_layers_each_attempt_with_its_provider() {
    let reg = registry("once");
    let live = provider(&reg, |p| p.serve(probe())).await;
    let live_port = live.local_addr("rpc").unwrap().port();
    let dead_port = closed_port().await;
    register_fake(&reg, dead_port).await;
    let seen = Seen::default();
    let consumer = consumer(&reg, |c| {
        c.layer(recorder(&seen, "consumer-call", |i| {
            format!("provider={:?}", i.provider().map(|u| u.port()))
        }))
        .attempt_layer(recorder(&seen, "consumer-attempt", |i| {
            format!("{}", i.provider().map_or(0, |u| u.port()))
        }))
    })
    .await;
    let client: ProbeClient = consumer
        .reference::<ProbeClient>()
        .layer(recorder(&seen, "reference-call", |_| String::new()))
        .attempt_layer(recorder(&seen, "reference-attempt", |_| String::new()))
        .build()
        .await
        .unwrap();
    for i in 0..4 {
        assert_eq!(client.add(i, 1).await.unwrap(), i + 1);
    }
    let seen = lines(&seen);
    let count = |prefix: &str| seen.iter().filter(|l| l.starts_with(prefix)).count();
    assert_eq!(
        count("consumer-call add provider=None"),
        4,
        "once per call, above the cluster: {seen:#?}"
    );
    assert_eq!(count("reference-call add"), 4, "{seen:#?}");
    assert_eq!(count(&format!("consumer-attempt add {live_port}")), 4, "{seen:#?}");
    let dead = count(&format!("consumer-attempt add {dead_port}"));
    assert!(
        dead >= 1,
        "the unreachable provider was tried and passed over: {seen:#?}"
    );
    assert_eq!(
        count("consumer-attempt"),
        4 + dead,
        "every attempt, each naming its provider: {seen:#?}"
    );
    assert_eq!(count("reference-attempt"), 4 + dead, "{seen:#?}");
    // Outermost first: the consumer's layers wrap the reference's.
    let first_call = seen.iter().position(|l| l.starts_with("consumer-call")).unwrap();
    let first_ref = seen.iter().position(|l| l.starts_with("reference-call")).unwrap();
    let first_attempt = seen.iter().position(|l| l.starts_with("consumer-attempt")).unwrap();
    let first_ref_attempt = seen.iter().position(|l| l.starts_with("reference-attempt")).unwrap();
    assert!(
        first_call < first_ref && first_ref < first_attempt && first_attempt < first_ref_attempt,
        "{seen:#?}"
    );
    live.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn towers_own_limits_work_as_consumer_layers_with_the_outcomes_kept() {
    let reg = registry("tower");
    let live = provider(&reg, |p| p.serve(probe())).await;
    let consumer = consumer(&reg, |c| c).await;
    let limited: ProbeClient = consumer
        .reference::<ProbeClient>()
        .timeout(Duration::from_secs(5))
        .layer(ServiceBuilder::new().load_shed().concurrency_limit(1).into_inner())
        .build()
        .await
        .unwrap();
    let first = tokio::spawn({
        let limited = limited.clone();
        async move { limited.sleep(500).await }
    });
    wait_until("the first call to be in flight", Duration::from_secs(5), || {
        live.in_flight() == 1
    })
    .await;
    let error = limited.add(1, 2).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::LocalLimit, "{error}");
    assert_eq!(error.outcome(), Outcome::NotSent, "{error}");
    assert_eq!(error.method(), Some("add"), "{error}");
    assert_eq!(live.in_flight(), 1, "the shed call never reached the provider");
    assert_eq!(first.await.unwrap().unwrap(), 500);
    assert_eq!(limited.add(1, 2).await.unwrap(), 3, "the slot is free again");

    let hurried: ProbeClient = consumer
        .reference::<ProbeClient>()
        .timeout(Duration::from_secs(5))
        .layer(tower::timeout::TimeoutLayer::new(Duration::from_millis(100)))
        .build()
        .await
        .unwrap();
    let error = hurried.sleep(2_000).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error}");
    assert_eq!(error.outcome(), Outcome::Unknown, "it may have run: {error}");
    live.shutdown().await;
}

/// A layer failing every call with an error of its own.
#[derive(Clone)]
struct Refuse;

impl<S> Layer<S> for Refuse {
    type Service = Refused;

    fn layer(&self, _inner: S) -> Refused {
        Refused
    }
}

#[derive(Clone)]
struct Refused;

impl Service<Invocation> for Refused {
    type Response = Response;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, std::io::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), std::io::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Invocation) -> Self::Future {
        Box::pin(async { Err(std::io::Error::other("no calls after midnight")) })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layers_own_error_is_named_with_its_source_and_a_fail_mock_above_replaces_it() {
    let reg = registry("own-error");
    let live = provider(&reg, |p| p.serve(probe())).await;
    let consumer = consumer(&reg, |c| c).await;
    let refused: ProbeClient = consumer.reference::<ProbeClient>().layer(Refuse).build().await.unwrap();
    let error = refused.echo("x".into()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Layer, "{error}");
    assert_eq!(error.outcome(), Outcome::Unknown, "{error}");
    let source = std::error::Error::source(&error).expect("the layer's error is kept");
    assert_eq!(source.to_string(), "no calls after midnight");
    // The mock sits above the user's layers: it answers for a failure they made.
    let mocked: ProbeClient = consumer
        .reference::<ProbeClient>()
        .layer(Refuse)
        .method_mock("echo", "return \"from the mock\"")
        .build()
        .await
        .unwrap();
    assert_eq!(mocked.echo("x".into()).await.unwrap(), "from the mock");
    live.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_mock_never_reaches_the_users_layers() {
    let reg = registry("forced");
    let live = provider(&reg, |p| p.serve(probe())).await;
    let seen = Seen::default();
    let consumer = consumer(&reg, |c| c.layer(recorder(&seen, "call", |_| String::new()))).await;
    let client: ProbeClient = consumer
        .reference::<ProbeClient>()
        .method_mock("echo", "force:return \"forced\"")
        .build()
        .await
        .unwrap();
    assert_eq!(client.echo("x".into()).await.unwrap(), "forced");
    assert_eq!(client.add(1, 1).await.unwrap(), 2);
    assert_eq!(
        lines(&seen),
        ["call add "],
        "only the unmocked call went through the layers"
    );
    live.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_layers_see_the_caller_and_its_attachments_and_run_in_order() {
    let reg = registry("provider");
    let seen = Seen::default();
    let live = provider(&reg, |p| {
        p.layer(recorder(&seen, "provider", |i| {
            format!(
                "from={} who={}",
                i.remote_address()
                    .map(|a: SocketAddr| a.ip().to_string())
                    .unwrap_or_default(),
                i.attachment("who").unwrap_or("-")
            )
        }))
        .export(rpc::Export::new(probe()).layer(recorder(&seen, "export", |_| String::new())))
        .serve(rpc_examples::GreeterServer::new(rpc_examples::GreeterImpl::new(None)))
    })
    .await;
    let consumer = consumer(&reg, |c| {
        c.layer(MapRequestLayer::new(|mut invocation: Invocation| {
            invocation.set_attachment("who", "shop");
            invocation
        }))
    })
    .await;
    let probe_client: ProbeClient = consumer.reference::<ProbeClient>().build().await.unwrap();
    let greeter: rpc_examples::GreeterClient = consumer
        .reference::<rpc_examples::GreeterClient>()
        .build()
        .await
        .unwrap();
    assert_eq!(probe_client.add(2, 2).await.unwrap(), 4);
    assert_eq!(greeter.say_hello("you".into()).await.unwrap(), "Hello, you");
    assert_eq!(
        lines(&seen),
        [
            "provider add from=127.0.0.1 who=shop",
            "export add ",
            "provider sayHello from=127.0.0.1 who=shop",
        ],
        "provider layers wrap every service, an export's only its own, outermost first"
    );
    live.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_limit_refuses_unsent_so_the_consumer_may_go_elsewhere() {
    let reg = registry("provider-limit");
    let live = provider(&reg, |p| {
        p.layer(ServiceBuilder::new().load_shed().concurrency_limit(1).into_inner())
            .serve(probe())
    })
    .await;
    let consumer = consumer(&reg, |c| c).await;
    let client: ProbeClient = consumer
        .reference::<ProbeClient>()
        .timeout(Duration::from_secs(5))
        .retries(0)
        .build()
        .await
        .unwrap();
    let first = tokio::spawn({
        let client = client.clone();
        async move { client.sleep(500).await }
    });
    wait_until("the first call to be in flight", Duration::from_secs(5), || {
        live.in_flight() == 1
    })
    .await;
    let error = client.add(1, 2).await.unwrap_err();
    assert_eq!(error.status(), Some(Status::ServerOverloaded), "{error}");
    assert_eq!(error.outcome(), Outcome::NotSent, "{error}");
    assert_eq!(first.await.unwrap().unwrap(), 500);
    live.shutdown().await;
}

/// A balancer of the user's own: always the provider with the highest port.
#[derive(Debug)]
struct HighestPort;

impl LoadBalance for HighestPort {
    fn select(&self, candidates: &[Candidate<'_>], _: &Invocation) -> usize {
        (0..candidates.len())
            .max_by_key(|&i| candidates[i].url.port())
            .unwrap_or(0)
    }
}

/// A policy of the user's own: one attempt, and on failure an error saying so.
#[derive(Debug, Default)]
struct OneShot {
    calls: AtomicUsize,
}

impl Policy for OneShot {
    fn call(&self, call: Call, select: &Arc<dyn Select>) -> BoxFuture<Result<Response, RpcError>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let select = select.clone();
        Box::pin(async move {
            rpc::cluster::policy::send(&*select, &call, &mut Vec::new())
                .await
                .map_err(|error| error.with_note("the one-shot policy gave up"))
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_balancer_and_a_policy_of_the_users_own_plug_into_the_cluster() {
    let reg = registry("own-cluster");
    let seen_a = Seen::default();
    let seen_b = Seen::default();
    let a = provider(&reg, |p| {
        p.layer(recorder(&seen_a, "a", |_| String::new())).serve(probe())
    })
    .await;
    let b = provider(&reg, |p| {
        p.layer(recorder(&seen_b, "b", |_| String::new())).serve(probe())
    })
    .await;
    let highest = a
        .local_addr("rpc")
        .unwrap()
        .port()
        .max(b.local_addr("rpc").unwrap().port());
    let consumer = consumer(&reg, |c| c).await;
    let policy = Arc::new(OneShot::default());
    let client: ProbeClient = consumer
        .reference::<ProbeClient>()
        .loadbalance_with(HighestPort)
        .cluster_with(policy.clone())
        .build()
        .await
        .unwrap();
    for i in 0..6 {
        assert_eq!(client.add(i, 0).await.unwrap(), i);
    }
    assert_eq!(policy.calls.load(Ordering::SeqCst), 6, "every call ran the policy");
    let (to_a, to_b) = (lines(&seen_a).len(), lines(&seen_b).len());
    let expected = if a.local_addr("rpc").unwrap().port() == highest {
        (6, 0)
    } else {
        (0, 6)
    };
    assert_eq!(
        (to_a, to_b),
        expected,
        "the balancer picked the highest port every time"
    );
    // A policy's failure is its own to word.
    let dead_reg = registry("own-cluster-dead");
    register_fake(&dead_reg, closed_port().await).await;
    let lonely: ProbeClient = rpc::Consumer::builder()
        .registry(&dead_reg)
        .build()
        .await
        .unwrap()
        .reference::<ProbeClient>()
        .cluster_with(OneShot::default())
        .build()
        .await
        .unwrap();
    let error = lonely.add(1, 1).await.unwrap_err();
    assert!(error.to_string().contains("the one-shot policy gave up"), "{error}");
    assert_eq!(error.outcome(), Outcome::NotSent, "{error}");
    a.shutdown().await;
    b.shutdown().await;
}

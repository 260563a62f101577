//! The code `#[service]` generates, driven without a network: the descriptor,
//! the server adapter called with hand-made invocations, and typed clients
//! whose calls go through a loopback invoker into the generated server.

#![allow(clippy::unwrap_used, reason = "helpers fail the test by panicking")]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rpc_cluster::{Balancer, ClusterPolicy, MethodConfig};
use rpc_core::{
    BoxInvoker, Invocation, MethodDescriptor, Response, RpcError, Serialization, ServiceClient, ServiceHandler,
    ServiceKey, Status, Stub,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Order {
    item: String,
    price_cents: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
struct OrderId(u64);

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum OrderError {
    OutOfStock { item: String },
    TooMany(u32),
}

/// Greets people and takes orders.
#[rpc_macros::service(
    crate = "::rpc_core",
    interface = "org.example.Greeter",
    version = "1.0.0",
    group = "g"
)]
trait Greeter: Send + Sync {
    /// Greets `name`.
    async fn say_hello(&self, name: String) -> String;

    /// Orders `qty` times `order`.
    #[rpc(timeout = "300ms", retries = 0, idempotent = false, name = "placeOrder2")]
    async fn place_order(&self, order: Order, qty: u32) -> Result<OrderId, OrderError>;

    /// Does nothing, remotely.
    async fn ping(&self);

    #[rpc(timeout = 1500)]
    async fn get_http_url(&self) -> String;

    #[rpc(timeout = "2s")]
    #[rpc(retries = 3)]
    async fn add3(&self, a: i64, b: i64, c: i64) -> i64;

    async fn r#type(&self) -> String;

    #[deprecated = "use say_hello"]
    async fn old_hello(&self) -> u32;

    /// How many calls this instance has run.
    #[rpc(timeout = "1m", idempotent = true)]
    async fn calls(&self) -> u32;
}

/// A service with every attribute left out.
#[rpc_macros::service(crate = "::rpc_core")]
trait Minimal {
    async fn echo(&self, bytes: Vec<u8>) -> Vec<u8>;
}

/// Every cluster setting `#[rpc(...)]` takes, with each policy and balancer
/// named once, in the spellings users write.
#[rpc_macros::service(crate = "::rpc_core", interface = "org.example.Tuned")]
trait Tuned: Send + Sync {
    #[rpc(cluster = "failfast", loadbalance = "leastactive")]
    async fn fast(&self, id: u64) -> u64;

    #[rpc(cluster = "Forking", forks = 3, attempt_timeout = "200ms", timeout = "1s")]
    async fn fan_out(&self, query: String) -> String;

    #[rpc(loadbalance = "consistent_hash", hash_arguments = [2, 0])]
    async fn sticky(&self, user: u64, page: u32, region: String) -> String;

    #[rpc(actives = 10, cluster = "fail-back", loadbalance = "ROUND_ROBIN", retries = 1)]
    #[rpc(attempt_timeout = 250, idempotent = false, hash_arguments = [1])]
    async fn limited(&self, a: u8, b: u8) -> u8;

    #[rpc(actives = 0, forks = 1, cluster = "broadcast", loadbalance = "P2C")]
    async fn everyone(&self);

    #[rpc(cluster = "FailSafe", loadbalance = "shortest-response")]
    async fn quiet(&self) -> Option<u32>;

    #[rpc(cluster = "failover", loadbalance = "random", attempt_timeout = "1m")]
    async fn defaults_spelled_out(&self) -> u32;
}

/// Answers every `Tuned` call at once.
struct Tuner;

impl Tuned for Tuner {
    async fn fast(&self, id: u64) -> u64 {
        id + 1
    }

    async fn fan_out(&self, query: String) -> String {
        query.to_uppercase()
    }

    async fn sticky(&self, user: u64, page: u32, region: String) -> String {
        format!("{user}/{page}/{region}")
    }

    async fn limited(&self, a: u8, b: u8) -> u8 {
        a.saturating_add(b)
    }

    async fn everyone(&self) {}

    async fn quiet(&self) -> Option<u32> {
        None
    }

    async fn defaults_spelled_out(&self) -> u32 {
        7
    }
}

#[derive(Default)]
struct Shop {
    calls: AtomicU32,
}

impl Shop {
    fn count(&self) -> u32 {
        self.calls.fetch_add(1, Ordering::SeqCst) + 1
    }
}

impl Greeter for Shop {
    async fn say_hello(&self, name: String) -> String {
        self.count();
        tokio::task::yield_now().await;
        format!("hello, {name}")
    }

    async fn place_order(&self, order: Order, qty: u32) -> Result<OrderId, OrderError> {
        self.count();
        match (order.item.as_str(), qty) {
            ("unobtainium", _) => Err(OrderError::OutOfStock { item: order.item }),
            (_, qty) if qty > 10 => Err(OrderError::TooMany(qty)),
            (_, qty) => Ok(OrderId(order.price_cents * u64::from(qty))),
        }
    }

    async fn ping(&self) {
        self.count();
    }

    async fn get_http_url(&self) -> String {
        self.count();
        "http://example.org".into()
    }

    async fn add3(&self, a: i64, b: i64, c: i64) -> i64 {
        self.count();
        a + b + c
    }

    async fn r#type(&self) -> String {
        "raw".into()
    }

    async fn old_hello(&self) -> u32 {
        1
    }

    async fn calls(&self) -> u32 {
        self.calls.load(Ordering::SeqCst)
    }
}

struct Mirror;

impl Minimal for Mirror {
    async fn echo(&self, mut bytes: Vec<u8>) -> Vec<u8> {
        bytes.reverse();
        bytes
    }
}

fn greeter_key() -> ServiceKey {
    ServiceKey::new("org.example.Greeter", Some("1.0.0"), Some("g"))
}

fn invocation<A: Serialize>(serialization: Serialization, method: &'static str, args: &A) -> Invocation {
    let args = serialization.encode(args).unwrap();
    Invocation::new(greeter_key(), method, args, serialization)
}

fn raw_json(method: &'static str, args: &'static str) -> Invocation {
    Invocation::new(
        greeter_key(),
        method,
        args.as_bytes().to_vec().into(),
        Serialization::Json,
    )
}

async fn call<R: DeserializeOwned>(server: &impl ServiceHandler, invocation: Invocation) -> R {
    let serialization = invocation.serialization();
    let response = server.call(invocation).await.unwrap();
    serialization.decode(response.payload()).unwrap()
}

/// What the loopback invoker saw: wire name, encoded arguments, argument hash.
type Seen = Arc<Mutex<Vec<(String, Vec<u8>, Option<u64>)>>>;

/// A stub whose invoker hands each invocation straight to `handler`.
fn loopback(handler: impl ServiceHandler + Clone, serialization: Serialization, seen: Seen) -> Stub {
    let service = tower::service_fn(move |invocation: Invocation| {
        let record = (
            invocation.method().to_owned(),
            invocation.args().to_vec(),
            invocation.hash_key(),
        );
        seen.lock().unwrap().push(record);
        handler.call(invocation)
    });
    Stub::new(greeter_key(), BoxInvoker::new(service)).with_serialization(serialization)
}

fn greeter_client(serialization: Serialization) -> (GreeterClient, Arc<Shop>, Seen) {
    let shop = Arc::new(Shop::default());
    let seen = Seen::default();
    let stub = loopback(GreeterServer::from_arc(shop.clone()), serialization, seen.clone());
    (GreeterClient::from_stub(stub), shop, seen)
}

fn order(item: &str) -> Order {
    Order {
        item: item.into(),
        price_cents: 250,
    }
}

fn assert_send<T: Send>(_: &T) {}

fn assert_static<T: 'static>(_: &T) {}

#[test]
fn descriptor_lists_wire_names_rust_names_and_settings() {
    let descriptor = GreeterClient::DESCRIPTOR;
    assert_eq!(descriptor.interface, "org.example.Greeter");
    assert_eq!(descriptor.version, Some("1.0.0"));
    assert_eq!(descriptor.group, Some("g"));
    let names: Vec<_> = descriptor.methods.iter().map(|m| (m.name, m.rust_name)).collect();
    assert_eq!(
        names,
        [
            ("sayHello", "say_hello"),
            ("placeOrder2", "place_order"),
            ("ping", "ping"),
            ("getHttpUrl", "get_http_url"),
            ("add3", "add3"),
            ("type", "type"),
            ("oldHello", "old_hello"),
            ("calls", "calls"),
        ]
    );
    assert_eq!(
        descriptor.method_names(),
        "sayHello,placeOrder2,ping,getHttpUrl,add3,type,oldHello,calls"
    );
}

/// What the cluster reads from a method's declared parameters.
fn declared(method: &MethodDescriptor) -> MethodConfig {
    MethodConfig::declared(method).unwrap()
}

/// The descriptor holds the declared settings as Dubbo-style parameters, in
/// the forms the cluster parses: milliseconds, canonical names, `0,2`.
#[test]
fn descriptor_carries_settings_as_params() {
    let params = |name| GreeterClient::DESCRIPTOR.method(name).unwrap().params;
    assert_eq!(params("sayHello"), &[] as &[(&str, &str)]);
    assert_eq!(
        params("placeOrder2"),
        [("timeout", "300"), ("retries", "0"), ("idempotent", "false")]
    );
    assert_eq!(params("calls"), [("timeout", "60000"), ("idempotent", "true")]);
    let tuned = |name| TunedClient::DESCRIPTOR.method(name).unwrap().params;
    assert_eq!(
        tuned("sticky"),
        [("loadbalance", "consistenthash"), ("hash.arguments", "0,2")]
    );
    assert_eq!(
        tuned("limited"),
        [
            ("attempt.timeout", "250"),
            ("retries", "1"),
            ("idempotent", "false"),
            ("cluster", "failback"),
            ("loadbalance", "roundrobin"),
            ("actives", "10"),
            ("hash.arguments", "1"),
        ]
    );
    let shadow = TunedClient::DESCRIPTOR.method("fanOut").unwrap();
    assert_eq!(shadow.param("forks"), Some("3"));
    assert_eq!(shadow.param("cluster"), Some("forking"));
    assert_eq!(shadow.param("loadbalance"), None);
}

#[test]
fn descriptor_carries_method_settings() {
    let config = |name| declared(GreeterClient::DESCRIPTOR.method(name).unwrap());
    assert_eq!(config("sayHello"), MethodConfig::new());
    assert_eq!(
        config("placeOrder2"),
        MethodConfig::new()
            .with_timeout(Duration::from_millis(300))
            .with_retries(0)
            .with_idempotent(false)
    );
    assert_eq!(
        config("getHttpUrl"),
        MethodConfig::new().with_timeout(Duration::from_millis(1500))
    );
    assert_eq!(
        config("add3"),
        MethodConfig::new().with_timeout(Duration::from_secs(2)).with_retries(3)
    );
    assert_eq!(
        config("calls"),
        MethodConfig::new()
            .with_timeout(Duration::from_secs(60))
            .with_idempotent(true)
    );
}

#[test]
fn descriptor_carries_cluster_settings() {
    let config = |name| declared(TunedClient::DESCRIPTOR.method(name).unwrap());
    assert_eq!(
        config("fast"),
        MethodConfig::new()
            .with_cluster(ClusterPolicy::Failfast)
            .with_loadbalance(Balancer::LeastActive)
    );
    assert_eq!(
        config("fanOut"),
        MethodConfig::new()
            .with_timeout(Duration::from_secs(1))
            .with_attempt_timeout(Duration::from_millis(200))
            .with_cluster(ClusterPolicy::Forking)
            .with_forks(3)
    );
    assert_eq!(
        config("sticky"),
        MethodConfig::new()
            .with_loadbalance(Balancer::ConsistentHash)
            .with_hash_arguments(&[0, 2])
    );
    assert_eq!(
        config("limited"),
        MethodConfig::new()
            .with_attempt_timeout(Duration::from_millis(250))
            .with_retries(1)
            .with_idempotent(false)
            .with_cluster(ClusterPolicy::Failback)
            .with_loadbalance(Balancer::RoundRobin)
            .with_actives(10)
            .with_hash_arguments(&[1])
    );
    assert_eq!(
        config("everyone"),
        MethodConfig::new()
            .with_cluster(ClusterPolicy::Broadcast)
            .with_loadbalance(Balancer::P2c)
            .with_forks(1)
            .with_actives(0)
    );
    assert_eq!(
        config("quiet"),
        MethodConfig::new()
            .with_cluster(ClusterPolicy::Failsafe)
            .with_loadbalance(Balancer::ShortestResponse)
    );
    assert_eq!(
        config("defaultsSpelledOut"),
        MethodConfig::new()
            .with_attempt_timeout(Duration::from_secs(60))
            .with_cluster(ClusterPolicy::Failover)
            .with_loadbalance(Balancer::Random)
    );
}

#[test]
fn every_policy_and_balancer_can_be_named() {
    let methods = TunedClient::DESCRIPTOR.methods;
    let mut clusters: Vec<_> = methods.iter().filter_map(|m| declared(m).cluster).collect();
    let mut balancers: Vec<_> = methods.iter().filter_map(|m| declared(m).loadbalance).collect();
    clusters.sort_by_key(|c| c.name());
    balancers.sort_by_key(|b| b.name());
    let mut all_clusters = ClusterPolicy::ALL.to_vec();
    let mut all_balancers = Balancer::ALL.to_vec();
    all_clusters.sort_by_key(|c| c.name());
    all_balancers.sort_by_key(|b| b.name());
    assert_eq!(clusters, all_clusters);
    assert_eq!(balancers, all_balancers);
}

#[tokio::test]
async fn the_stub_hashes_the_arguments_its_reference_asks_for() {
    let seen = Seen::default();
    let mask = declared(TunedClient::DESCRIPTOR.method("sticky").unwrap())
        .hash_arguments
        .unwrap();
    assert_eq!(
        (0..4).map(|i| mask.contains(i)).collect::<Vec<_>>(),
        [true, false, true, false]
    );
    let stub =
        loopback(TunedServer::new(Tuner), Serialization::Json, seen.clone()).with_argument_hashing("sticky", mask);
    let client = TunedClient::from_stub(stub);
    assert_eq!(client.sticky(7, 2, "eu".into()).await.unwrap(), "7/2/eu");
    assert_eq!(client.sticky(7, 3, "eu".into()).await.unwrap(), "7/3/eu");
    assert_eq!(client.sticky(8, 2, "eu".into()).await.unwrap(), "8/2/eu");
    assert_eq!(client.limited(200, 100).await.unwrap(), 255);
    let hashes: Vec<_> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|(m, _, hash)| (m.clone(), *hash))
        .collect();
    assert!(
        hashes[..3].iter().all(|(m, hash)| m == "sticky" && hash.is_some()),
        "{hashes:?}"
    );
    assert_eq!(hashes[0].1, hashes[1].1, "the second argument is not hashed");
    assert_ne!(hashes[0].1, hashes[2].1, "the first is");
    assert_eq!(hashes[3], ("limited".to_string(), None));
}

#[test]
fn descriptor_is_the_same_through_every_path() {
    assert_eq!(<GreeterClient as ServiceClient>::DESCRIPTOR, GreeterClient::DESCRIPTOR);
    assert_eq!(
        GreeterServer::new(Shop::default()).descriptor(),
        GreeterClient::DESCRIPTOR
    );
}

#[test]
fn defaults_take_the_trait_name_and_nothing_else() {
    let descriptor = MinimalClient::DESCRIPTOR;
    assert_eq!(descriptor.interface, "Minimal");
    assert_eq!((descriptor.version, descriptor.group), (None, None));
    assert_eq!(descriptor.method_names(), "echo");
}

#[tokio::test]
async fn client_futures_outlive_the_client() {
    let seen = Seen::default();
    let stub = loopback(TunedServer::new(Tuner), Serialization::Json, seen.clone());
    // The call is encoded and sent when the method returns: its future
    // borrows nothing, so it can outlive the client and be spawned.
    let call = {
        let client = TunedClient::from_stub(stub);
        client.sticky(7, 2, "eu".into())
    };
    let reply = tokio::spawn(call).await.unwrap().unwrap();
    assert_eq!(reply, "7/2/eu");
}

#[tokio::test]
async fn server_answers_in_every_serialization() {
    let server = GreeterServer::new(Shop::default());
    for s in Serialization::ALL {
        let reply: String = call(&server, invocation(s, "sayHello", &("world",))).await;
        assert_eq!(reply, "hello, world", "{s}");
        let sum: i64 = call(&server, invocation(s, "add3", &(1i64, 2i64, 3i64))).await;
        assert_eq!(sum, 6, "{s}");
        let placed: Result<OrderId, OrderError> =
            call(&server, invocation(s, "placeOrder2", &(order("tea"), 3u32))).await;
        assert_eq!(placed, Ok(OrderId(750)), "{s}");
        let raw: String = call(&server, invocation(s, "type", &[(); 0])).await;
        assert_eq!(raw, "raw", "{s}");
    }
}

#[tokio::test]
async fn json_arguments_are_an_array_and_replies_plain_json() {
    let server = GreeterServer::new(Shop::default());
    let cases = [
        ("sayHello", r#"["world"]"#, r#""hello, world""#),
        (
            "placeOrder2",
            r#"[{"item":"tea","price_cents":250},3]"#,
            r#"{"Ok":750}"#,
        ),
        (
            "placeOrder2",
            r#"[{"item":"tea","price_cents":250},11]"#,
            r#"{"Err":{"TooMany":11}}"#,
        ),
        ("add3", "[1,2,3]", "6"),
        ("ping", "[]", "null"),
        ("getHttpUrl", "[]", r#""http://example.org""#),
    ];
    for (method, args, expected) in cases {
        let response = server.call(raw_json(method, args)).await.unwrap();
        assert_eq!(
            std::str::from_utf8(response.payload()).unwrap(),
            expected,
            "{method} {args}"
        );
    }
}

#[tokio::test]
async fn unknown_methods_are_service_not_found() {
    let server = GreeterServer::new(Shop::default());
    // Wire names only: the Rust name is not an alias.
    for method in ["sayGoodbye", "say_hello", "place_order", ""] {
        let error = server
            .call(invocation(Serialization::Bincode, method, &("x",)))
            .await
            .unwrap_err();
        assert_eq!(error.status(), Some(Status::ServiceNotFound), "{method}");
        assert_eq!(error.method(), Some(method));
        assert!(error.message().contains("sayHello,placeOrder2,ping"), "{error}");
    }
}

#[tokio::test]
async fn undecodable_arguments_are_bad_requests() {
    let server = GreeterServer::new(Shop::default());
    let garbage = Invocation::new(greeter_key(), "sayHello", vec![0xff; 9].into(), Serialization::Bincode);
    let cases = [
        garbage,
        raw_json("sayHello", "[1]"),
        raw_json("sayHello", "1"),
        raw_json("sayHello", r#"["a","b"]"#),
        raw_json("add3", "[1,2]"),
        raw_json("ping", "[1]"),
        raw_json("ping", "{"),
    ];
    for invocation in cases {
        let method = invocation.method().to_owned();
        let error = server.call(invocation).await.unwrap_err();
        assert_eq!(error.status(), Some(Status::BadRequest), "{method}: {error}");
        assert_eq!(error.method(), Some(method.as_str()));
    }
}

#[tokio::test]
async fn a_bad_request_does_not_reach_the_implementation() {
    let shop = Arc::new(Shop::default());
    let server = GreeterServer::from_arc(shop.clone());
    server.call(raw_json("sayHello", "[1]")).await.unwrap_err();
    assert_eq!(shop.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn client_round_trips_every_method() {
    for s in Serialization::ALL {
        let (client, shop, _) = greeter_client(s);
        assert_eq!(client.say_hello("world".into()).await.unwrap(), "hello, world", "{s}");
        assert_eq!(client.place_order(order("tea"), 2).await.unwrap(), Ok(OrderId(500)));
        client.ping().await.unwrap();
        assert_eq!(client.get_http_url().await.unwrap(), "http://example.org");
        assert_eq!(client.add3(1, -2, 40).await.unwrap(), 39);
        assert_eq!(client.r#type().await.unwrap(), "raw");
        #[allow(deprecated)]
        let old = client.old_hello().await.unwrap();
        assert_eq!(old, 1);
        assert_eq!(client.calls().await.unwrap(), 5);
        assert_eq!(shop.calls.load(Ordering::SeqCst), 5);
    }
}

#[tokio::test]
async fn business_errors_are_values_not_rpc_errors() {
    let (client, _, _) = greeter_client(Serialization::Bincode);
    let too_many: Result<Result<OrderId, OrderError>, RpcError> = client.place_order(order("tea"), 11).await;
    assert_eq!(too_many.unwrap(), Err(OrderError::TooMany(11)));
    let out = client.place_order(order("unobtainium"), 1).await.unwrap();
    assert_eq!(
        out,
        Err(OrderError::OutOfStock {
            item: "unobtainium".into()
        })
    );
}

#[tokio::test]
async fn a_one_argument_method_takes_its_json_argument_bare_or_in_an_array() {
    let server = GreeterServer::new(Shop::default());
    for body in [r#""world""#, r#"["world"]"#] {
        let reply = server.call(raw_json("sayHello", body)).await.unwrap();
        let text: String = reply.decode(Serialization::Json).unwrap();
        assert!(text.contains("world"), "{body}: {text}");
    }
}

#[tokio::test]
async fn client_sends_wire_names_json_arrays_and_declared_settings() {
    let (client, _, seen) = greeter_client(Serialization::Json);
    client.say_hello("world".into()).await.unwrap();
    client.place_order(order("tea"), 3).await.unwrap().unwrap();
    client.ping().await.unwrap();
    let seen = seen.lock().unwrap().clone();
    let as_text: Vec<_> = seen
        .iter()
        .map(|(m, args, _)| (m.as_str(), String::from_utf8_lossy(args)))
        .collect();
    assert_eq!(
        as_text,
        [
            // One argument travels bare, as gRPC and Python peers expect.
            ("sayHello", r#""world""#.into()),
            ("placeOrder2", r#"[{"item":"tea","price_cents":250},3]"#.into()),
            ("ping", "[]".into()),
        ]
    );
    let order_config = declared(GreeterClient::DESCRIPTOR.method("placeOrder2").unwrap());
    assert_eq!(order_config.timeout, Some(Duration::from_millis(300)));
    assert_eq!((order_config.retries, order_config.is_idempotent()), (Some(0), false));
    assert!(
        seen.iter().all(|(_, _, hash)| hash.is_none()),
        "nothing asked for hashing"
    );
}

#[tokio::test]
async fn provider_errors_reach_the_client_as_rpc_errors() {
    let stub = loopback(MinimalServer::new(Mirror), Serialization::Bincode, Seen::default());
    // A Greeter client pointed at a Minimal provider: every method is unknown there.
    let client = GreeterClient::from_stub(stub);
    let error = client.say_hello("world".into()).await.unwrap_err();
    assert_eq!(error.status(), Some(Status::ServiceNotFound));
    let minimal = MinimalClient::from_stub(client.stub().clone());
    assert_eq!(minimal.echo(vec![1, 2, 3]).await.unwrap(), [3, 2, 1]);
}

#[tokio::test]
async fn client_futures_are_send_static_and_borrow_nothing() {
    let (client, _, _) = greeter_client(Serialization::Bincode);
    let name = String::from("world");
    let future = client.say_hello(name.clone());
    assert_send(&future);
    assert_static(&future);
    drop(client);
    drop(name);
    assert_eq!(future.await.unwrap(), "hello, world");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_futures_run_on_a_multi_threaded_runtime() {
    let (client, _, _) = greeter_client(Serialization::Bincode);
    let spawned = tokio::spawn(client.add3(1, 2, 3));
    assert_eq!(spawned.await.unwrap().unwrap(), 6);

    let shop = Arc::new(Shop::default());
    let trait_future = Greeter::say_hello(&*shop, "world".into());
    assert_send(&trait_future);
    let shop_for_task = shop.clone();
    let spawned = tokio::spawn(async move { shop_for_task.say_hello("task".into()).await });
    assert_eq!(spawned.await.unwrap(), "hello, task");
    assert_eq!(trait_future.await, "hello, world");

    let server = GreeterServer::from_arc(shop);
    let handler_future = server.call(invocation(Serialization::Bincode, "ping", &[(); 0]));
    assert_send(&handler_future);
    let response: Response = tokio::spawn(handler_future).await.unwrap().unwrap();
    assert_eq!(response.payload().len(), 0);
}

#[test]
fn server_and_client_are_clone_and_debug_without_bounds_on_the_impl() {
    struct NotDebug;
    impl Minimal for NotDebug {
        async fn echo(&self, bytes: Vec<u8>) -> Vec<u8> {
            bytes
        }
    }
    let server = MinimalServer::new(NotDebug);
    let copy = server.clone();
    assert_eq!(format!("{copy:?}"), r#"MinimalServer { interface: "Minimal", .. }"#);
    let (client, _, _) = greeter_client(Serialization::Json);
    let debug = format!("{:?}", client.clone());
    assert!(debug.starts_with("GreeterClient { stub: Stub {"), "{debug}");
    assert!(debug.contains("org.example.Greeter"), "{debug}");
}

/// Java types: derived from the Rust types, or declared.
#[rpc_macros::service(crate = "::rpc_core", interface = "org.example.Typed")]
trait Typed {
    async fn mixed(&self, name: String, count: i64, flag: bool, ratio: f64, small: i32) -> String;
    async fn boxed(&self, a: Option<i32>, b: Option<i64>, c: Option<String>) -> u32;
    async fn collections(&self, list: Vec<String>, map: std::collections::HashMap<String, i64>, bytes: Vec<u8>) -> u32;
    async fn structs(&self, order: Order) -> Result<OrderId, OrderError>;
    #[rpc(java_types = "Lcom/acme/Order;I")]
    async fn declared(&self, order: Order, qty: u32) -> u32;
    async fn none(&self) -> u32;
}

#[test]
fn descriptors_carry_java_parameter_types() {
    let java = |name| TypedClient::DESCRIPTOR.method(name).unwrap().java_types;
    assert_eq!(java("mixed"), "Ljava/lang/String;JZDI");
    assert_eq!(java("boxed"), "Ljava/lang/Integer;Ljava/lang/Long;Ljava/lang/String;");
    assert_eq!(java("collections"), "Ljava/util/List;Ljava/util/Map;[B");
    assert_eq!(java("structs"), "Lorg/example/Order;");
    assert_eq!(java("declared"), "Lcom/acme/Order;I");
    assert_eq!(java("none"), "");
    // Undotted interface: a struct's class has no package.
    assert_eq!(MinimalClient::DESCRIPTOR.method("echo").unwrap().java_types, "[B");
    assert_eq!(GreeterClient::DESCRIPTOR.method("add3").unwrap().java_types, "JJJ");
}

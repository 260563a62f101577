//! The ZooKeeper registry against real ZooKeeper servers: Dubbo's layout, live
//! subscriptions, and every fault the README lists for it.
//!
//! Figures for the closing note are printed with `--nocapture`:
//! `cargo test -p rpc-tests --test zookeeper -- --nocapture figures`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use rpc::registry::{Registry, ZookeeperRegistry};
use rpc::{ErrorKind, Url};
use rpc_examples::{GreeterClient, GreeterImpl, GreeterServer};
use rpc_tests::proxy::Proxy;
use rpc_tests::zk::{Ensemble, ZooKeeper, dump_sessions};
use rpc_tests::{ProviderProcess, wait_until};
use tokio::time::Instant;

const GREETER: &str = "org.example.Greeter";

/// A registry URL with short timeouts for tests.
fn registry_url(base: &str, session_ms: u64) -> String {
    format!("{base}?session={session_ms}&timeout=5000")
}

async fn zk_client(connect: &str) -> zookeeper_client::Client {
    zookeeper_client::Client::connect(connect)
        .await
        .expect("test client connects to ZooKeeper")
}

async fn children(client: &zookeeper_client::Client, path: &str) -> Vec<String> {
    match client.list_children(path).await {
        Ok(mut c) => {
            c.sort();
            c
        }
        Err(zookeeper_client::Error::NoNode) => Vec::new(),
        Err(e) => panic!("cannot list {path}: {e}"),
    }
}

fn provider_url(port: u16, tag: &str) -> Url {
    Url::new("rpc", "127.0.0.1", port)
        .with_path(GREETER)
        .with_param("interface", GREETER)
        .with_param("version", "1.0.0")
        .with_param("side", "provider")
        .with_param("tag", tag)
}

fn consumer_url() -> Url {
    Url::new("consumer", "127.0.0.1", 0)
        .with_path(GREETER)
        .with_param("side", "consumer")
}

async fn start_provider(registry: &str, tag: &str) -> rpc::RunningProvider {
    rpc::Provider::builder()
        .application("zk-test-provider")
        .registry(registry)
        .protocol("rpc", 0)
        .serve(GreeterServer::new(GreeterImpl::new(Some(tag.into()))))
        .start()
        .await
        .expect("provider starts")
}

async fn greeter(registry: &str) -> GreeterClient {
    rpc::Consumer::builder()
        .application("zk-test-consumer")
        .registry(registry)
        .build()
        .await
        .unwrap()
        .reference::<GreeterClient>()
        .timeout(Duration::from_secs(2))
        .loadbalance(rpc::Balancer::RoundRobin)
        .build()
        .await
        .expect("reference builds")
}

/// Waits for the subscription to yield a set satisfying `pred`.
async fn next_matching(sub: &mut rpc::registry::Subscription, what: &str, pred: impl Fn(&[Url]) -> bool) -> Vec<Url> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let current = sub.current();
    if pred(&current) {
        return current.to_vec();
    }
    loop {
        match tokio::time::timeout_at(deadline, sub.next()).await {
            Ok(Some(set)) if pred(&set) => return set.to_vec(),
            Ok(Some(_)) => continue,
            Ok(None) => panic!("subscription ended while waiting for {what}"),
            Err(_) => panic!("timed out waiting for {what}; last set: {:?}", sub.current()),
        }
    }
}

/// A registry for `url` with its first session established (so a short
/// `timeout` in `url` bounds the calls under test, not the connection of a
/// loaded machine).
async fn connected(url: &Url) -> ZookeeperRegistry {
    let registry = ZookeeperRegistry::new(url).unwrap();
    wait_until("the registry's first session", Duration::from_secs(30), || {
        registry.session().is_some()
    })
    .await;
    registry
}

/// Expires `registry`'s session for real, the way a network partition does:
/// cuts `proxy` (the registry's only way to the server at `zk_address`), waits
/// until the server has expired the session (its id gone from `dump`, so its
/// ephemeral nodes are deleted), then restores the proxy, so the registry
/// reconnects, is told its session expired, and makes a new one.
async fn expire_session(zk_address: &str, proxy: &Proxy, registry: &ZookeeperRegistry) {
    let session = registry.session().expect("connected").id().0;
    proxy.cut();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let address = zk_address.to_owned();
        let sessions = tokio::task::spawn_blocking(move || dump_sessions(&address))
            .await
            .unwrap();
        if sessions.is_some_and(|ids| !ids.contains(&session)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "ZooKeeper at {zk_address} did not expire session 0x{session:x} within 30 s of the cut              (or does not answer `dump`)"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    proxy.restore();
}

/// A proxy to `zk` and a registry URL through it (sessions of `session_ms`).
fn proxied(zk: &ZooKeeper, session_ms: u64) -> (Proxy, Url) {
    let proxy = Proxy::start(&zk.connect_string());
    let url = Url::parse(&registry_url(&format!("zookeeper://{}", proxy.address()), session_ms)).unwrap();
    (proxy, url)
}

/// Waits (up to 20 s) until `node` exists and belongs to `registry`'s current session.
async fn wait_for_owned_node(client: &zookeeper_client::Client, node: &str, registry: &ZookeeperRegistry, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let owner = client.check_stat(node).await.unwrap().map(|s| s.ephemeral_owner);
        let session = registry.session().map(|s| s.id().0);
        if owner.is_some() && owner == session {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: node not (re)created by the registry's session {session:?} (owner {owner:?})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits (up to 20 s) until `node` is gone.
async fn wait_for_no_node(client: &zookeeper_client::Client, node: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while client.check_stat(node).await.unwrap().is_some() {
        assert!(Instant::now() < deadline, "{what}: {node} still exists");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Permissions on the providers directory that let anyone do everything but create children.
fn acl_without_create() -> [zookeeper_client::Acl; 1] {
    use zookeeper_client::{Acl, AuthId, Permission};
    [Acl::new(
        Permission::READ | Permission::WRITE | Permission::DELETE | Permission::ADMIN,
        AuthId::anyone(),
    )]
}

fn acl_all() -> [zookeeper_client::Acl; 1] {
    use zookeeper_client::{Acl, AuthId, Permission};
    [Acl::new(Permission::ALL, AuthId::anyone())]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn providers_and_consumers_appear_in_dubbo_layout() {
    let zk = ZooKeeper::start();
    let registry = registry_url(&zk.url(), 10_000);
    let provider = start_provider(&registry, "layout").await;
    let greeter = greeter(&registry).await;
    assert_eq!(greeter.say_hello("zk".into()).await.unwrap(), "Hello, zk from layout");

    let client = zk_client(&zk.connect_string()).await;
    let providers = children(&client, "/dubbo/org.example.Greeter/providers").await;
    assert_eq!(providers.len(), 1, "{providers:?}");
    let url = Url::decode(&providers[0]).unwrap();
    assert_eq!(url.protocol(), "rpc");
    assert_eq!(Some(url.address()), provider.local_addr("rpc").map(|a| a.to_string()));
    assert_eq!(url.path(), GREETER);
    for (key, value) in [
        ("interface", GREETER),
        ("version", "1.0.0"),
        ("side", "provider"),
        ("application", "zk-test-provider"),
        ("methods", "sayHello,placeOrder,sleep"),
        ("serialization", "bincode"),
        ("weight", "100"),
    ] {
        assert_eq!(url.param(key), Some(value), "{key} in {url}");
    }
    assert!(url.param_parsed::<u64>("timestamp").is_some(), "{url}");
    let stat = client
        .check_stat(&format!("/dubbo/org.example.Greeter/providers/{}", providers[0]))
        .await
        .unwrap();
    assert_ne!(stat.unwrap().ephemeral_owner, 0, "provider nodes are ephemeral");
    // The consumer registers itself in the background.
    let deadline = Instant::now() + Duration::from_secs(10);
    let consumers = loop {
        let consumers = children(&client, "/dubbo/org.example.Greeter/consumers").await;
        if !consumers.is_empty() || Instant::now() > deadline {
            break consumers;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(consumers.len(), 1);
    assert_eq!(Url::decode(&consumers[0]).unwrap().param("side"), Some("consumer"));

    // Graceful shutdown removes the node at once.
    provider.shutdown().await;
    assert!(
        children(&client, "/dubbo/org.example.Greeter/providers")
            .await
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_see_every_addition_and_removal() {
    let zk = ZooKeeper::start();
    let url = Url::parse(&registry_url(&zk.url(), 10_000)).unwrap();
    let providers = ZookeeperRegistry::new(&url).unwrap();
    let consumer = ZookeeperRegistry::new(&url).unwrap();
    let mut sub = consumer.subscribe(&consumer_url()).await.unwrap();
    assert!(sub.current().is_empty());
    let (a, b) = (provider_url(1001, "a"), provider_url(1002, "b"));
    providers.register(&a).await.unwrap();
    next_matching(&mut sub, "a", |s| s == [a.clone()]).await;
    providers.register(&b).await.unwrap();
    next_matching(&mut sub, "a and b", |s| s.len() == 2).await;
    providers.unregister(&a).await.unwrap();
    next_matching(&mut sub, "b only", |s| s == [b.clone()]).await;
    providers.unregister(&b).await.unwrap();
    next_matching(&mut sub, "nothing", |s| s.is_empty()).await;
    // A quick burst: the last set always arrives.
    for port in 2000..2050 {
        providers.register(&provider_url(port, "burst")).await.unwrap();
    }
    next_matching(&mut sub, "50 providers", |s| s.len() == 50).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_under_providers_is_skipped_not_fatal() {
    let zk = ZooKeeper::start();
    let registry = registry_url(&zk.url(), 10_000);
    let client = zk_client(&zk.connect_string()).await;
    let dir = "/dubbo/org.example.Greeter/providers";
    let persistent = zookeeper_client::CreateMode::Persistent.with_acls(zookeeper_client::Acls::anyone_all());
    client.mkdir(dir, &persistent).await.unwrap();
    for garbage in [
        "not-a-url",
        "%FF%FE%FD",
        "rpc%3A%2F%2F%3Fversion%3D1.0.0",                            // no address
        "carrier-pigeon%3A%2F%2F10.9.9.9%3A1%2Forg.example.Greeter", // a protocol we do not speak
        "dubbo%3A%2F%2F10.9.9.9%3A20880%2Fcom.other.Service",        // another interface
    ] {
        client
            .create(&format!("{dir}/{garbage}"), b"", &persistent)
            .await
            .unwrap();
    }
    let provider = start_provider(&registry, "real").await;
    let greeter = greeter(&registry).await;
    for _ in 0..5 {
        assert_eq!(greeter.say_hello("x".into()).await.unwrap(), "Hello, x from real");
    }
    // More garbage while subscribed.
    client
        .create(&format!("{dir}/more%20garbage"), b"", &persistent)
        .await
        .unwrap();
    assert_eq!(greeter.say_hello("y".into()).await.unwrap(), "Hello, y from real");
    provider.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zookeeper_restart_is_survived_without_restarting_us() {
    let mut zk = ZooKeeper::start();
    let registry = registry_url(&zk.url(), 20_000);
    let provider = start_provider(&registry, "steady").await;
    let greeter = greeter(&registry).await;
    assert_eq!(greeter.say_hello("a".into()).await.unwrap(), "Hello, a from steady");

    zk.stop();
    // ZooKeeper is down: consumers keep routing to the last known providers.
    for _ in 0..20 {
        assert_eq!(greeter.say_hello("b".into()).await.unwrap(), "Hello, b from steady");
    }
    zk.start_again();
    // Back: a provider registered now is found by the same consumer.
    let late = start_provider(&registry, "late").await;
    let mut seen = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.len() < 2 {
        assert!(
            Instant::now() < deadline,
            "the consumer never saw the late provider: {seen:?}"
        );
        seen.insert(greeter.say_hello("c".into()).await.unwrap());
    }
    // And the first provider is still registered.
    let client = zk_client(&zk.connect_string()).await;
    assert_eq!(children(&client, "/dubbo/org.example.Greeter/providers").await.len(), 2);
    provider.shutdown().await;
    late.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_expiry_recreates_nodes_and_rearms_watches() {
    let zk = ZooKeeper::start();
    // One proxy each: the two sessions expire one at a time.
    let (providers_proxy, providers_url) = proxied(&zk, 4_000);
    let (consumer_proxy, consumers_url) = proxied(&zk, 4_000);
    let providers = ZookeeperRegistry::new(&providers_url).unwrap();
    let consumer = ZookeeperRegistry::new(&consumers_url).unwrap();
    let a = provider_url(3001, "a");
    providers.register(&a).await.unwrap();
    let mut sub = consumer.subscribe(&consumer_url()).await.unwrap();
    next_matching(&mut sub, "a", |s| s == [a.clone()]).await;

    // Expire the provider side's session: cut it off from ZooKeeper until it expires.
    let before = providers.session().unwrap().id();
    expire_session(&zk.connect_string(), &providers_proxy, &providers).await;
    // Its ephemeral node goes with the session and comes back with the new one
    // (so fast that the consumer may never see the empty set: it sees full sets).
    wait_until("the provider side's new session", Duration::from_secs(20), || {
        providers.session().is_some_and(|s| s.id() != before)
    })
    .await;
    let client = zk_client(&zk.connect_string()).await;
    let node = format!("/dubbo/{GREETER}/providers/{}", a.encode());
    wait_for_owned_node(&client, &node, &providers, "after the provider's expiry").await;
    next_matching(&mut sub, "a after the provider's expiry", |s| s == [a.clone()]).await;

    // Expire the consumer side: its watch must be re-armed on the new session.
    let before = consumer.session().unwrap().id();
    expire_session(&zk.connect_string(), &consumer_proxy, &consumer).await;
    wait_until("the consumer's new session", Duration::from_secs(20), || {
        consumer.session().is_some_and(|s| s.id() != before)
    })
    .await;
    let b = provider_url(3002, "b");
    providers.register(&b).await.unwrap();
    next_matching(&mut sub, "b after the consumer's expiry", |s| s.len() == 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_refused_after_expiry_is_retried_until_it_holds() {
    let zk = ZooKeeper::start();
    let (proxy, url) = proxied(&zk, 4_000);
    let providers = connected(&url).await;
    let (a, gone) = (provider_url(4001, "a"), provider_url(4002, "gone"));
    providers.register(&a).await.unwrap();
    providers.register(&gone).await.unwrap();
    let client = zk_client(&zk.connect_string()).await;
    let dir = format!("/dubbo/{GREETER}/providers");
    let (node_a, node_gone) = (format!("{dir}/{}", a.encode()), format!("{dir}/{}", gone.encode()));

    // Nobody may create under providers/ any more; then the session expires,
    // taking both nodes with it, and re-creating them is refused.
    client.set_acl(&dir, &acl_without_create(), None).await.unwrap();
    let before = providers.session().unwrap().id();
    expire_session(&zk.connect_string(), &proxy, &providers).await;
    wait_until("the provider side's new session", Duration::from_secs(20), || {
        providers.session().is_some_and(|s| s.id() != before)
    })
    .await;
    assert_eq!(
        children(&client, &dir).await,
        Vec::<String>::new(),
        "re-creation is refused"
    );
    // Withdrawn while its re-creation is failing: it must stay withdrawn.
    providers.unregister(&gone).await.unwrap();

    // Creation allowed again: the registration comes back by itself, in the
    // current session, without another expiry.
    client.set_acl(&dir, &acl_all(), None).await.unwrap();
    wait_for_owned_node(&client, &node_a, &providers, "after the ACL was lifted").await;
    assert!(
        client.check_stat(&node_gone).await.unwrap().is_none(),
        "an unregistered URL was registered again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_missing_after_a_reconnection_is_created_again() {
    let mut zk = ZooKeeper::start();
    let url = Url::parse(&registry_url(&zk.url(), 20_000)).unwrap();
    let providers = connected(&url).await;
    let a = provider_url(5001, "a");
    providers.register(&a).await.unwrap();
    let node = format!("/dubbo/{GREETER}/providers/{}", a.encode());
    let client = zk_client(&zk.connect_string()).await;
    // The node vanishes while the session lives (an operator's cleanup, a
    // second process replacing what it took for its own leftover).
    client.delete(&node, None).await.unwrap();
    drop(client);
    let session = providers.session().unwrap().id();

    zk.stop();
    zk.start_again();
    let client = zk_client(&zk.connect_string()).await;
    wait_for_owned_node(&client, &node, &providers, "after the reconnection").await;
    assert_eq!(
        providers.session().unwrap().id(),
        session,
        "the session survived the restart: this was a reconnection, not an expiry"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_calls_while_zookeeper_is_down_end_in_time_and_complete_later() {
    let mut zk = ZooKeeper::start();
    // A long session, so it survives the outage; calls wait at most 1 s.
    let url = Url::parse(&format!("{}?session=30000&timeout=1000", zk.url())).unwrap();
    let providers = connected(&url).await;
    let (a, b) = (provider_url(6001, "a"), provider_url(6002, "b"));
    providers.register(&a).await.unwrap();
    let session = providers.session().unwrap().id();

    zk.stop();
    let bound = Duration::from_secs(5);
    let err = tokio::time::timeout(bound, providers.unregister(&a))
        .await
        .expect("unregister waits at most about the registry's timeout")
        .expect_err("nothing can be deleted while ZooKeeper is down");
    assert!(err.to_string().contains(&a.encode()), "the error names the node: {err}");
    let err = tokio::time::timeout(bound, providers.register(&b))
        .await
        .expect("register waits at most about the registry's timeout")
        .expect_err("nothing can be created while ZooKeeper is down");
    assert!(err.to_string().contains(&b.encode()), "the error names the node: {err}");

    // Back, same session: what was asked for happens after all.
    zk.start_again();
    let client = zk_client(&zk.connect_string()).await;
    let dir = format!("/dubbo/{GREETER}/providers");
    wait_for_no_node(&client, &format!("{dir}/{}", a.encode()), "a after the outage").await;
    wait_for_owned_node(
        &client,
        &format!("{dir}/{}", b.encode()),
        &providers,
        "b after the outage",
    )
    .await;
    assert_eq!(
        providers.session().unwrap().id(),
        session,
        "the session survived the outage"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_lost_while_registrations_are_restored_is_replaced() {
    let mut zk = ZooKeeper::start();
    // A short session: the freeze below outlives it.
    let (proxy, url) = proxied(&zk, 2_000);
    let providers = connected(&url).await;
    let n = 1000;
    for i in 0..n {
        providers.register(&provider_url(7000 + i, "many")).await.unwrap();
    }
    let dir = format!("/dubbo/{GREETER}/providers");
    let client = zk_client(&zk.connect_string()).await;
    assert_eq!(children(&client, &dir).await.len(), usize::from(n));

    // Expire the session, and freeze ZooKeeper while the new session is
    // putting the nodes back: that session ends (the client gives up on it)
    // in the middle of the restoration.
    expire_session(&zk.connect_string(), &proxy, &providers).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut emptied = false;
    loop {
        let count = children(&client, &dir).await.len();
        emptied |= count < usize::from(n);
        if emptied && count > 0 && count < usize::from(n) {
            break;
        }
        assert!(
            !(emptied && count == usize::from(n)),
            "the restoration finished before the freeze: raise n"
        );
        assert!(
            Instant::now() < deadline,
            "the restoration never started ({count} nodes)"
        );
    }
    drop(client);
    zk.server().pause();
    // A fault of three session timeouts, not a synchronisation.
    tokio::time::sleep(Duration::from_secs(6)).await;
    zk.server().resume();

    // A new session puts every node back.
    let client = zk_client(&zk.connect_string()).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let session = providers.session().map(|s| s.id().0);
        let nodes = children(&client, &dir).await;
        let mut owned = 0;
        if nodes.len() == usize::from(n) {
            for node in &nodes {
                let owner = client
                    .check_stat(&format!("{dir}/{node}"))
                    .await
                    .unwrap()
                    .map(|s| s.ephemeral_owner);
                owned += usize::from(owner.is_some() && owner == session);
            }
        }
        if owned == usize::from(n) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} nodes, {owned} of the current session {session:?}: the registry never recovered",
            nodes.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ensemble_rides_out_a_lost_member_and_a_lost_quorum() {
    let mut ensemble = Ensemble::start(3);
    let registry = registry_url(&ensemble.url(), 20_000);
    let provider = start_provider(&registry, "e1").await;
    let greeter = greeter(&registry).await;
    let url = Url::parse(&registry).unwrap();
    let watcher = ZookeeperRegistry::new(&url).unwrap();
    let mut sub = watcher.subscribe(&consumer_url()).await.unwrap();
    next_matching(&mut sub, "e1", |s| s.len() == 1).await;

    // One member down: calls and registrations carry on.
    ensemble.member(0).kill();
    for _ in 0..10 {
        assert_eq!(greeter.say_hello("a".into()).await.unwrap(), "Hello, a from e1");
    }
    let second = start_provider(&registry, "e2").await;
    next_matching(&mut sub, "e2 with one member down", |s| s.len() == 2).await;

    // Quorum lost: calls still go to the known providers.
    ensemble.member(1).kill();
    for _ in 0..10 {
        assert!(
            greeter
                .say_hello("b".into())
                .await
                .unwrap()
                .starts_with("Hello, b from e")
        );
    }
    // Quorum regained: everything recovers without restarting us.
    ensemble.member(0).start_again();
    ensemble.member(1).start_again();
    ensemble.wait_for_quorum();
    let third = start_provider(&registry, "e3").await;
    next_matching(&mut sub, "e3 after quorum returned", |s| s.len() == 3).await;
    provider.shutdown().await;
    second.shutdown().await;
    third.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_provider_leaves_rotation_before_its_node_does() {
    let zk = ZooKeeper::start();
    // A long session: the killed provider's node lingers for the whole test.
    let registry = registry_url(&zk.url(), 30_000);
    let victim = ProviderProcess::spawn(&["--registry", &registry, "--port", "0", "--tag", "victim"]);
    let survivor = ProviderProcess::spawn(&["--registry", &registry, "--port", "0", "--tag", "survivor"]);
    let greeter = greeter(&registry).await;
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..10 {
        seen.insert(greeter.say_hello("a".into()).await.unwrap());
    }
    assert_eq!(seen.len(), 2, "both providers in rotation: {seen:?}");

    let killed_at = Instant::now();
    victim.kill();
    // Calls right after the kill may still be sent to the victim (they fail
    // with a connection error); then it must be out of rotation.
    let failed = AtomicU64::new(0);
    let mut out_of_rotation = None;
    let mut streak = 0;
    while streak < 50 {
        assert!(
            killed_at.elapsed() < Duration::from_secs(10),
            "the victim stayed in rotation"
        );
        match greeter.say_hello("b".into()).await {
            Ok(reply) => {
                assert_eq!(reply, "Hello, b from survivor");
                if streak == 0 {
                    out_of_rotation = Some(killed_at.elapsed());
                }
                streak += 1;
            }
            Err(e) => {
                assert!(
                    matches!(
                        e.kind(),
                        ErrorKind::Connect | ErrorKind::ConnectionLost | ErrorKind::Closed
                    ),
                    "{e}"
                );
                failed.fetch_add(1, Ordering::Relaxed);
                streak = 0;
            }
        }
    }
    let client = zk_client(&zk.connect_string()).await;
    let nodes = children(&client, "/dubbo/org.example.Greeter/providers").await;
    assert_eq!(nodes.len(), 2, "the victim's node still lingers (session timeout 30 s)");
    println!(
        "figure: SIGKILL -> consumer stops sending: {:?} ({} calls failed meanwhile)",
        out_of_rotation.unwrap_or_default(),
        failed.load(Ordering::Relaxed)
    );
    assert!(
        failed.load(Ordering::Relaxed) <= 2,
        "at most the calls racing the kill fail"
    );
    drop(survivor);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_file_lets_a_consumer_start_while_zookeeper_is_down() {
    let mut zk = ZooKeeper::start();
    let cache = std::env::temp_dir().join(format!("rpc-zk-cache-{}.json", std::process::id()));
    let _ = std::fs::remove_file(&cache);
    let with_cache = format!("{}?session=10000&timeout=2000&file={}", zk.url(), cache.display());
    let provider = start_provider(&registry_url(&zk.url(), 10_000), "cached").await;
    let greeter1 = greeter(&with_cache).await;
    assert_eq!(greeter1.say_hello("a".into()).await.unwrap(), "Hello, a from cached");
    wait_until("the cache file to be written", Duration::from_secs(5), || {
        cache.exists()
    })
    .await;

    zk.stop();
    // ZooKeeper is down and a new consumer starts from the cache file.
    let greeter2 = greeter(&with_cache).await;
    assert_eq!(greeter2.say_hello("b".into()).await.unwrap(), "Hello, b from cached");
    // Without a cache file, the same start fails clearly.
    let without = format!("{}?timeout=1000", zk.url());
    let err = rpc::Consumer::builder()
        .registry(without)
        .build()
        .await
        .unwrap()
        .reference::<GreeterClient>()
        .build()
        .await;
    let err = err.expect_err("no cache, no ZooKeeper: no reference");
    assert!(err.to_string().contains("unreachable"), "{err}");
    drop(provider);
    let _ = std::fs::remove_file(&cache);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbage_cache_file_is_ignored_and_one_file_serves_every_registry() {
    let zk = ZooKeeper::start();
    let dir = std::env::temp_dir().join(format!("rpc-zk-cache-shared-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let cache = dir.join("registry.json");
    std::fs::write(&cache, b"{\"org.example.Greeter\": [\"rpc://10.9.9.9:1/org.").unwrap(); // torn
    let with_cache = format!("{}?session=10000&timeout=5000&file={}", zk.url(), cache.display());
    // Two registries of this process with the same file, both opened before
    // anything is written to it, following two interfaces: the file must
    // keep what each of them saw.
    let url = Url::parse(&with_cache).unwrap();
    let (first, second) = (
        ZookeeperRegistry::new(&url).unwrap(),
        ZookeeperRegistry::new(&url).unwrap(),
    );
    let provider = start_provider(&registry_url(&zk.url(), 10_000), "real").await;

    // A consumer starts from the corrupt file as from none, and works.
    let greeter = greeter(&with_cache).await;
    assert_eq!(greeter.say_hello("a".into()).await.unwrap(), "Hello, a from real");

    let mut greeters = first.subscribe(&consumer_url()).await.unwrap();
    next_matching(&mut greeters, "the provider", |s| s.len() == 1).await;
    let other = Url::new("consumer", "127.0.0.1", 0)
        .with_path("org.example.Other")
        .with_param("side", "consumer");
    let _others = second.subscribe(&other).await.unwrap();
    let read = || {
        std::fs::read(&cache)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<std::collections::BTreeMap<String, Vec<String>>>(&bytes).ok())
            .unwrap_or_default()
    };
    wait_until("the file to hold both interfaces", Duration::from_secs(20), || {
        let entries = read();
        entries.get(GREETER).is_some_and(|urls| urls.len() == 1) && entries.contains_key("org.example.Other")
    })
    .await;
    provider.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_registries_are_registered_and_merged() {
    let (zk1, zk2) = (ZooKeeper::start(), ZooKeeper::start());
    let (r1, r2) = (registry_url(&zk1.url(), 10_000), registry_url(&zk2.url(), 10_000));
    let both = rpc::Provider::builder()
        .registry(&r1)
        .registry(&r2)
        .protocol("rpc", 0)
        .serve(GreeterServer::new(GreeterImpl::new(Some("both".into()))))
        .start()
        .await
        .unwrap();
    let only2 = start_provider(&r2, "only2").await;
    for zk in [&zk1, &zk2] {
        let client = zk_client(&zk.connect_string()).await;
        assert!(
            !children(&client, "/dubbo/org.example.Greeter/providers")
                .await
                .is_empty()
        );
    }
    let consumer = rpc::Consumer::builder()
        .registry(&r1)
        .registry(&r2)
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
    for _ in 0..6 {
        seen.insert(greeter.say_hello("m".into()).await.unwrap());
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        ["Hello, m from both", "Hello, m from only2"]
    );
    both.shutdown().await;
    only2.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_check_and_chroot() {
    let zk = ZooKeeper::start();
    let chrooted = format!("{}/tenant-a?session=10000&timeout=5000", zk.url());
    let consumer = rpc::Consumer::builder().registry(&chrooted).build().await.unwrap();
    let err = consumer
        .reference::<GreeterClient>()
        .check(true)
        .build()
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("org.example.Greeter:1.0.0") && text.contains("zookeeper://"),
        "{text}"
    );
    let lazy: GreeterClient = consumer
        .reference::<GreeterClient>()
        .check(false)
        .build()
        .await
        .unwrap();
    assert_eq!(
        lazy.say_hello("x".into()).await.unwrap_err().kind(),
        ErrorKind::NoProvider
    );

    let provider = start_provider(&chrooted, "tenant").await;
    let client = zk_client(&zk.connect_string()).await;
    assert_eq!(
        children(&client, "/tenant-a/dubbo/org.example.Greeter/providers")
            .await
            .len(),
        1
    );
    assert!(
        children(&client, "/dubbo/org.example.Greeter/providers")
            .await
            .is_empty()
    );
    wait_until_ok(|| lazy.say_hello("y".into())).await;
    provider.shutdown().await;
}

async fn wait_until_ok<F, Fut, T>(mut call: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, rpc::RpcError>>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match call().await {
            Ok(v) => return v,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("still failing after 20 s: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn figures_registration_latency_and_scale() {
    let zk = ZooKeeper::start();
    let url = Url::parse(&registry_url(&zk.url(), 20_000)).unwrap();
    let providers = ZookeeperRegistry::new(&url).unwrap();
    let consumer = ZookeeperRegistry::new(&url).unwrap();
    let mut sub = consumer.subscribe(&consumer_url()).await.unwrap();

    // Registration -> the consumer's provider set, 100 times.
    let mut latencies = Vec::new();
    for i in 0..100u16 {
        let url = provider_url(10_000 + i, "lat");
        let started = Instant::now();
        providers.register(&url).await.unwrap();
        next_matching(&mut sub, "the new provider", |s| s.contains(&url)).await;
        latencies.push(started.elapsed());
    }
    latencies.sort();
    println!(
        "figure: registration -> consumer update, 100 runs: median {:?}, worst {:?}",
        latencies[50], latencies[99]
    );

    // 1,000 providers of one service.
    let rss_before = rss_kib();
    for i in 100..1000u16 {
        providers.register(&provider_url(10_000 + i, "scale")).await.unwrap();
    }
    next_matching(&mut sub, "1,000 providers", |s| s.len() == 1000).await;
    let extra = provider_url(20_000, "extra");
    let started = Instant::now();
    providers.register(&extra).await.unwrap();
    next_matching(&mut sub, "1,001 providers", |s| s.len() == 1001).await;
    let update = started.elapsed();
    let started = Instant::now();
    providers.unregister(&extra).await.unwrap();
    next_matching(&mut sub, "back to 1,000", |s| s.len() == 1000).await;
    let removal = started.elapsed();
    println!(
        "figure: 1,000 providers: add one -> update {update:?}, remove one -> update {removal:?}, \
         consumer+provider RSS growth {} KiB",
        rss_kib().saturating_sub(rss_before)
    );
    assert_eq!(sub.current().len(), 1000);
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).map(str::to_string))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_programs_find_each_other_through_zookeeper() {
    let zk = ZooKeeper::start();
    let registry = registry_url(&zk.url(), 10_000);
    let one = ProviderProcess::spawn(&["--registry", &registry, "--port", "0", "--tag", "one"]);
    let two = ProviderProcess::spawn(&["--registry", &registry, "--port", "0", "--tag", "two"]);
    let consumer = rpc_tests::example_binary("greeter-consumer");
    let args = [
        "--registry",
        &registry,
        "--calls",
        "40",
        "--concurrency",
        "4",
        "--check",
        "-v",
    ]
    .map(String::from);
    let out = tokio::task::spawn_blocking(move || std::process::Command::new(consumer).args(args).output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.lines().last(),
        Some("ok=40 failed=0 degraded=0"),
        "stdout: {stdout}"
    );
    for tag in ["one", "two"] {
        assert!(
            stdout.contains(&format!("from {tag}")),
            "no reply from provider {tag}:\n{stdout}"
        );
    }
    drop((one, two));
}

/// Defects: a consumer registered a node for every reference it built and
/// never removed any; and a dropped consumer's directory task kept its
/// subscription (and so its ZooKeeper session) alive. Now one node per
/// service while a reference to it lives, removed with the last one, and the
/// session ends with the consumer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_nodes_live_as_long_as_their_references_and_sessions_end_with_the_consumer() {
    let zk = ZooKeeper::start();
    let registry = registry_url(&zk.url(), 30_000);
    let provider = start_provider(&registry, "nodes").await;
    let client = zk_client(&zk.connect_string()).await;
    let consumers_path = "/dubbo/org.example.Greeter/consumers";
    // Client connections to the server (each session of ours has one).
    let sessions = |server: &str| {
        rpc_tests::zk::four_letter(server, "mntr")
            .lines()
            .find_map(|l| l.strip_prefix("zk_num_alive_connections"))
            .and_then(|n| n.trim().parse::<usize>().ok())
            .unwrap_or_else(|| panic!("no connection count from mntr"))
    };
    let before = sessions(&zk.connect_string());

    let consumer = rpc::Consumer::builder().registry(&registry).build().await.unwrap();
    let first: GreeterClient = consumer.reference::<GreeterClient>().build().await.unwrap();
    let second: GreeterClient = consumer.reference::<GreeterClient>().build().await.unwrap();
    assert_eq!(second.say_hello("a".into()).await.unwrap(), "Hello, a from nodes");
    let deadline = Instant::now() + Duration::from_secs(10);
    while children(&client, consumers_path).await.is_empty() {
        assert!(Instant::now() < deadline, "no consumer node");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        children(&client, consumers_path).await.len(),
        1,
        "one node for two references"
    );

    drop(first);
    assert_eq!(
        children(&client, consumers_path).await.len(),
        1,
        "the second reference still lives"
    );
    drop(second);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !children(&client, consumers_path).await.is_empty() {
        assert!(Instant::now() < deadline, "the consumer node outlived its references");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    drop(consumer);
    let deadline = Instant::now() + Duration::from_secs(10);
    while sessions(&zk.connect_string()) > before {
        assert!(
            Instant::now() < deadline,
            "the dropped consumer's ZooKeeper session lives on"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    provider.shutdown().await;
}

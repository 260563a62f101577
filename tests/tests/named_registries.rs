//! Per-service registries and protocols: named registries on both builders,
//! an export registering only in the registries it names and served only on
//! the protocols it names, a reference subscribing only to the registries it
//! names. One real ZooKeeper holding two registries under different roots
//! (`?root=china`, `?root=europe`: separate trees, as two ensembles would be).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::collections::HashSet;
use std::time::Duration;

use rpc::{ErrorKind, Export, Status};
use rpc_examples::{GreeterClient, GreeterImpl, GreeterServer};
use rpc_tests::probe::{ProbeClient, ProbeImpl, ProbeServer};
use rpc_tests::zk::ZooKeeper;

fn rooted(zk: &ZooKeeper, root: &str) -> String {
    format!("{}?session=30000&timeout=5000&root={root}", zk.url())
}

fn greeter(tag: &str) -> Export {
    Export::new(GreeterServer::new(GreeterImpl::new(Some(tag.into())))).warmup(Duration::ZERO)
}

async fn consumer_of(registry: &str) -> rpc::Consumer {
    rpc::Consumer::builder().registry(registry).build().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_registers_only_in_the_registries_it_names() {
    let zk = ZooKeeper::start();
    let (china, europe) = (rooted(&zk, "china"), rooted(&zk, "europe"));
    let provider = rpc::Provider::builder()
        .registry_named("china", &china)
        .registry_named("europe", &europe)
        .protocol("rpc", 0)
        .export(greeter("cn").registries(["china"]))
        .serve(ProbeServer::new(ProbeImpl::default()))
        .start()
        .await
        .unwrap();
    // China has both services.
    let in_china = consumer_of(&china).await;
    let g: GreeterClient = in_china.reference::<GreeterClient>().build().await.unwrap();
    assert_eq!(g.say_hello("x".into()).await.unwrap(), "Hello, x from cn");
    let p: ProbeClient = in_china.reference::<ProbeClient>().build().await.unwrap();
    assert_eq!(p.add(1, 2).await.unwrap(), 3);
    // Europe has the probe (registered everywhere) but not the greeter.
    let in_europe = consumer_of(&europe).await;
    let p: ProbeClient = in_europe.reference::<ProbeClient>().build().await.unwrap();
    assert_eq!(p.add(2, 2).await.unwrap(), 4);
    let missing = in_europe.reference::<GreeterClient>().build().await.unwrap_err();
    assert!(matches!(missing, rpc::Error::NoProvider(_)), "{missing}");
    provider.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reference_subscribes_only_to_the_registries_it_names() {
    let zk = ZooKeeper::start();
    let (china, europe) = (rooted(&zk, "china"), rooted(&zk, "europe"));
    let mut providers = Vec::new();
    for (name, address, tag) in [("china", &china, "cn"), ("europe", &europe, "eu")] {
        providers.push(
            rpc::Provider::builder()
                .registry_named(name, address)
                .protocol("rpc", 0)
                .export(greeter(tag))
                .start()
                .await
                .unwrap(),
        );
    }
    let consumer = rpc::Consumer::builder()
        .registry_named("china", &china)
        .registry_named("europe", &europe)
        .build()
        .await
        .unwrap();
    let answered = |greeter: GreeterClient| async move {
        let mut tags = HashSet::new();
        for i in 0..20 {
            let reply = greeter.say_hello(format!("{i}")).await.unwrap();
            tags.insert(reply.rsplit(" from ").next().unwrap().to_string());
        }
        tags
    };
    let only_china = consumer
        .reference::<GreeterClient>()
        .registries(["china"])
        .build()
        .await
        .unwrap();
    assert_eq!(answered(only_china).await, HashSet::from(["cn".to_string()]));
    // Several registries: one merged directory.
    let both = consumer.reference::<GreeterClient>().build().await.unwrap();
    assert_eq!(
        answered(both).await,
        HashSet::from(["cn".to_string(), "eu".to_string()])
    );
    // An unknown name is a setup error naming it and the names there are.
    let error = consumer
        .reference::<GreeterClient>()
        .registries(["mars"])
        .build()
        .await
        .unwrap_err();
    assert!(matches!(error, rpc::Error::Config(_)), "{error}");
    assert!(
        error.to_string().contains("registry `mars`") && error.to_string().contains("china, europe"),
        "{error}"
    );
    for provider in providers {
        provider.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_is_served_only_on_the_protocols_it_names() {
    let provider = rpc::Provider::builder()
        .protocol("rpc", 0)
        .protocol("tri", 0)
        .export(greeter("rpc-only").protocols(["rpc"]))
        .serve(ProbeServer::new(ProbeImpl::default()))
        .start()
        .await
        .unwrap();
    let greeter_urls: Vec<&str> = provider
        .urls()
        .iter()
        .filter(|u| u.interface() == Some("org.example.Greeter"))
        .map(|u| u.protocol())
        .collect();
    assert_eq!(greeter_urls, ["rpc"]);
    assert_eq!(provider.urls().len(), 3, "the probe on both, the greeter on rpc");
    let on_rpc = consumer_of(&format!("rpc://{}", provider.local_addr("rpc").unwrap())).await;
    let g: GreeterClient = on_rpc.reference::<GreeterClient>().build().await.unwrap();
    assert_eq!(g.say_hello("x".into()).await.unwrap(), "Hello, x from rpc-only");
    // The tri port does not serve it: "not exported here", as in Dubbo.
    let on_tri = consumer_of(&format!("tri://{}", provider.local_addr("tri").unwrap())).await;
    let g: GreeterClient = on_tri.reference::<GreeterClient>().retries(0).build().await.unwrap();
    let error = g.say_hello("x".into()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Remote(Status::ServiceNotFound), "{error}");
    let p: ProbeClient = on_tri.reference::<ProbeClient>().build().await.unwrap();
    assert_eq!(p.add(3, 4).await.unwrap(), 7);
    provider.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_the_provider_does_not_have_fail_start() {
    let error = rpc::Provider::builder()
        .registry_named("china", "memory://named-a")
        .protocol("rpc", 0)
        .export(greeter("x").registries(["europe"]))
        .start()
        .await
        .unwrap_err();
    assert!(matches!(error, rpc::Error::Config(_)), "{error}");
    let text = error.to_string();
    assert!(
        text.contains("registry `europe`") && text.contains("names: china"),
        "{text}"
    );
    let error = rpc::Provider::builder()
        .protocol("rpc", 0)
        .export(greeter("x").protocols(["tri"]))
        .start()
        .await
        .unwrap_err();
    assert!(error.to_string().contains("protocol `tri`"), "{error}");
    // The unnamed registry is "default".
    let provider = rpc::Provider::builder()
        .registry("memory://named-b")
        .protocol("rpc", 0)
        .export(greeter("d").registries([rpc::DEFAULT_REGISTRY]))
        .start()
        .await
        .unwrap();
    let g: GreeterClient = consumer_of("memory://named-b")
        .await
        .reference::<GreeterClient>()
        .build()
        .await
        .unwrap();
    assert_eq!(g.say_hello("y".into()).await.unwrap(), "Hello, y from d");
    provider.shutdown().await;
}

//! Provider and consumer in one process, on the in-process `memory` registry.
//!
//! `cargo run --example quickstart`

use std::time::Duration;

use rpc_examples::{GreeterClient, GreeterImpl, GreeterServer, Order};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The provider: export the service on the native protocol (port 0: any free
    // port) and register it in the in-process registry.
    let provider = rpc::Provider::builder()
        .application("greeter-provider")
        .registry("memory://quickstart")
        .protocol("rpc", 0)
        .serve(GreeterServer::new(GreeterImpl::new(None)))
        .start()
        .await?;
    println!("provider registered {}", provider.urls()[0]);

    // The consumer: find the provider through the same registry, get a typed stub.
    let consumer = rpc::Consumer::builder()
        .application("shop")
        .registry("memory://quickstart")
        .build()
        .await?;
    let greeter: GreeterClient = consumer
        .reference::<GreeterClient>()
        .version("1.0.0")
        .timeout(Duration::from_secs(2))
        .check(true)
        .build()
        .await?;

    for name in ["world", "Dubbo", "Rust"] {
        // The outer `?` is a framework failure (RpcError).
        let reply = greeter.say_hello(name.to_string()).await?;
        println!("{reply}");
    }

    // Business errors are values: `Ok(Err(..))` is a successful call.
    let order = Order {
        item: "tea".into(),
        quantity: 2,
    };
    println!("place_order(tea x2) -> {:?}", greeter.place_order(order).await?);
    let order = Order {
        item: "unobtainium".into(),
        quantity: 1,
    };
    match greeter.place_order(order).await? {
        Ok(id) => println!("placed order {id:?}"),
        Err(e) => println!("place_order(unobtainium) -> business error: {e}"),
    }

    // Graceful shutdown: unregister, drain in-flight calls, close.
    provider.shutdown().await;
    Ok(())
}

//! A Dubbo-style RPC framework for Rust: typed services, service discovery and
//! service governance.
//!
//! A service is a trait annotated with [`#[service]`](macro@service); the macro
//! generates a provider adapter (`XxxServer`) and a typed consumer stub
//! (`XxxClient`). A [`Provider`] exports services on protocols and registers
//! them in registries; a [`Consumer`] subscribes to the providers of a service
//! and sends each call through the cluster layer to one of them.
//!
//! ```
//! use std::time::Duration;
//!
//! #[rpc::service(interface = "org.example.Greeter", version = "1.0.0")]
//! pub trait Greeter {
//!     async fn say_hello(&self, name: String) -> String;
//! }
//!
//! struct GreeterImpl;
//!
//! impl Greeter for GreeterImpl {
//!     async fn say_hello(&self, name: String) -> String {
//!         format!("Hello, {name}")
//!     }
//! }
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let provider = rpc::Provider::builder()
//!     .application("greeter-provider")
//!     .registry("memory://doc")
//!     .protocol("rpc", 0) // 0: any free port
//!     .serve(GreeterServer::new(GreeterImpl))
//!     .start()
//!     .await?;
//!
//! let consumer = rpc::Consumer::builder().application("shop").registry("memory://doc").build().await?;
//! let greeter: GreeterClient = consumer.reference::<GreeterClient>().timeout(Duration::from_secs(1)).build().await?;
//! assert_eq!(greeter.say_hello("world".into()).await?, "Hello, world");
//!
//! provider.shutdown().await;
//! # Ok(()) }
//! ```

mod consumer;
mod provider;
mod setup_error;

pub use consumer::{Consumer, ConsumerBuilder, ReferenceBuilder};
pub use provider::{
    DEFAULT_RPC_PORT, DEFAULT_SHUTDOWN_GRACE, Export, Provider, ProviderBuilder, RunningProvider, shutdown_signal,
};
pub use rpc_core::*;
pub use rpc_macros::service;
pub use setup_error::Error;

/// Registries: the [`Registry`](registry::Registry) trait and its implementations.
pub use rpc_registry as registry;

/// The cluster layer: directory, routing, load balancing, fault tolerance.
pub use rpc_cluster as cluster;

//! The `#[service]` attribute of the rpc framework: it turns a Rust trait into
//! a remote service, generating the provider adapter `{Trait}Server<T>` and the
//! typed consumer stub `{Trait}Client`.
//!
//! ```ignore
//! #[rpc::service(interface = "org.example.Greeter", version = "1.0.0")]
//! pub trait Greeter {
//!     /// Greets `name`.
//!     async fn say_hello(&self, name: String) -> String;
//!
//!     #[rpc(timeout = "300ms", retries = 0, idempotent = false, cluster = "failfast")]
//!     async fn place_order(&self, order: Order, qty: u32) -> Result<OrderId, OrderError>;
//! }
//!
//! // Provider: implement the trait with `async fn`s and serve it.
//! impl Greeter for MyGreeter { /* async fn say_hello(&self, name: String) -> String { .. } */ }
//! let handler = GreeterServer::new(MyGreeter);
//!
//! // Consumer: every method returns `Result<_, RpcError>`.
//! let reply: String = client.say_hello("world".into()).await?;
//! let id: OrderId = client.place_order(order, 3).await??; // business error inside
//! ```
//!
//! The generated code names the framework only through absolute paths into
//! `::rpc::__private` (the facade crate's hidden module for generated code),
//! or `<path>::__private` with `#[service(crate = "::path")]` (`rpc_core` has
//! the same module), so it compiles under `#![no_implicit_prelude]` and does
//! not depend on how the facade arranges its public exports.
//! Misuse is reported as compile errors at the offending tokens.

mod args;
mod duration;
mod errors;
mod expand;
mod java;
mod model;
mod naming;
mod policy;

use proc_macro::TokenStream;

/// Turns a trait into an RPC service.
///
/// # Arguments
///
/// All optional:
/// * `interface = "org.example.Greeter"`: the interface name on the wire and in
///   the registry; defaults to the trait's name;
/// * `version = "1.0.0"`, `group = "g"`: the service's default version and group;
/// * `crate = "::rpc_core"`: the path of the framework crate (default `::rpc`).
///
/// Methods may carry `#[rpc(...)]`, all keys optional:
/// * `name = "placeOrder2"`: the wire name (default: the Rust name in
///   lowerCamelCase, `place_order` → `placeOrder`);
/// * `timeout = "300ms"` (also `"2s"`, `"1m"`, or an integer number of
///   milliseconds): how long a call may take, end to end, across all attempts;
/// * `attempt_timeout = "200ms"` (same syntax): how long one attempt may take
///   before the policy moves on (failover, forking, failback);
/// * `retries = 0`: extra attempts after the first;
/// * `idempotent = false`: whether a call whose outcome is unknown may be retried;
/// * `cluster = "failfast"`: the fault-tolerance policy, one of `failover`,
///   `failfast`, `failsafe`, `failback`, `forking`, `broadcast`;
/// * `loadbalance = "leastactive"`: the load balancer, one of `random`,
///   `roundrobin`, `leastactive`, `shortestresponse`, `consistenthash`, `p2c`;
/// * `forks = 3`: providers the forking policy calls at once (at least 1);
/// * `actives = 10`: most calls of the method in flight at once from one
///   reference (0: no limit);
/// * `hash_arguments = [0, 2]`: the arguments (by position, from 0, not
///   counting `&self`; at most 31) the consistent-hash balancer keys on;
/// * `java_types = "Lcom/acme/Order;I"`: the Java parameter types, one JVM
///   descriptor per argument, for `dubbo://` calls (Java finds the overload by
///   them). By default they come from the Rust types: `String`/`&str` →
///   `Ljava/lang/String;`, `bool` `Z`, `i8` `B`, `i16` `S`, `i32`/`u8`/`u16` `I`,
///   `i64`/`u32`/`u64` `J`, `f32` `F`, `f64` `D`, `char` `C`, `Option<i32>` →
///   `Ljava/lang/Integer;` (each primitive's box), `Vec<u8>` → `[B`, other
///   sequences → `Ljava/util/List;`, sets → `Ljava/util/Set;`, maps →
///   `Ljava/util/Map;`, `Box`/`Arc` → their content, and any other type `Name` →
///   `L{package}/Name;` with the interface's package (`org.example.Greeter` →
///   `Lorg/example/Name;`). Set it when the Java interface says otherwise (a type
///   alias, a struct in another package, `int` for a `u32`).
///
/// Policy and balancer names are Dubbo's, matched ignoring case, `-` and `_`
/// (`"fail_fast"`, `"LeastActive"`). Each key may appear once per method. Every
/// value is checked here, at compile time; the settings then travel in the
/// method's descriptor as Dubbo-style parameters (`timeout` and
/// `attempt.timeout` in milliseconds, `retries`, `idempotent`, `cluster`,
/// `loadbalance` with canonical names, `forks`, `actives`, `hash.arguments` as
/// `0,2`), which the cluster reads when a reference is built: they take
/// precedence over reference-wide and consumer-wide defaults, and yield only
/// to settings made for that method on the consumer.
///
/// # Requirements
///
/// The trait has no generics, lifetimes, `where` clause, or items other than
/// methods. Every method is `async fn name(&self, a: A, ...) -> R;` without a
/// body, with plain argument names and owned types (`String`, not `&str`);
/// arguments and return values implement `serde::Serialize` and
/// `serde::de::DeserializeOwned`. Wire names are unique.
///
/// # Generated items
///
/// For `pub trait Greeter`:
/// * the trait, each `async fn` becoming `fn ... -> impl Future<Output = R> + Send`
///   (implementations still write `async fn`; their futures must be `Send`);
/// * `pub struct GreeterServer<T>` (`new`, `from_arc`, `Clone`, `Debug`),
///   implementing `ServiceHandler` for `T: Greeter + Send + Sync + 'static`;
/// * `pub struct GreeterClient` (`Clone`, `Debug`) implementing `ServiceClient`,
///   with the constant `GreeterClient::DESCRIPTOR` and one method per trait
///   method returning `impl Future<Output = Result<R, RpcError>> + Send + 'static`.
///
/// Arguments travel as one tuple, `(a, b)`; with JSON, an array `["world", 3]`
/// (`[]` for a method without arguments).
#[proc_macro_attribute]
pub fn service(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::service(attr.into(), item.into()).into()
}

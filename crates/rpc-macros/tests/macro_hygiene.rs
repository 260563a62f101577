//! `#[service]` output is hygienic: it compiles in a module without the
//! prelude, next to items named like everything the generated code uses, and
//! with parameters named like the generated code's own variables.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

#[no_implicit_prelude]
mod api {
    // Decoys: generated code that named any of these without a full path
    // would pick them up and fail to compile.
    #![allow(dead_code, non_upper_case_globals, non_camel_case_types)]
    struct Result;
    struct Option;
    struct Box;
    struct Arc;
    struct String;
    struct Vec;
    struct Send;
    struct Sync;
    struct Future;
    struct Duration;
    struct Clone;
    struct Debug;
    struct Stub;
    struct Invocation;
    struct RpcError;
    struct ServiceDescriptor;
    struct MethodDescriptor;
    struct MethodConfig;
    struct ClusterPolicy;
    struct Balancer;
    mod __private {}
    mod core {}
    struct handler;
    mod service {}
    mod rpc {}
    const Ok: u8 = 0;
    const Err: u8 = 0;
    const Some: u8 = 0;
    const None: u8 = 0;
    fn drop() {}

    /// A service whose parameters shadow the generated code's own names.
    #[::rpc_macros::service(crate = "::rpc_core", interface = "org.example.Hygiene", version = "1")]
    pub(crate) trait Hygiene: ::core::marker::Send + ::core::marker::Sync {
        /// Adds up its arguments.
        #[rpc(cluster = "failfast", loadbalance = "consistenthash", hash_arguments = [0, 5])]
        #[rpc(forks = 2, actives = 4, attempt_timeout = "100ms")]
        async fn shadow(
            &self,
            invocation: u32,
            inner: u32,
            args: u32,
            reply: u32,
            stub: u32,
            f: u32,
        ) -> ::core::result::Result<u32, ::std::string::String>;

        /// Takes nothing, returns nothing.
        #[rpc(timeout = "1s")]
        async fn nothing(&self);

        /// Echoes a list.
        async fn echo(&self, items: ::std::vec::Vec<::std::string::String>) -> ::std::vec::Vec<::std::string::String>;
    }

    /// An implementation, also written without the prelude.
    pub(crate) struct Impl;

    impl Hygiene for Impl {
        async fn shadow(
            &self,
            invocation: u32,
            inner: u32,
            args: u32,
            reply: u32,
            stub: u32,
            f: u32,
        ) -> ::core::result::Result<u32, ::std::string::String> {
            ::core::result::Result::Ok(invocation + inner + args + reply + stub + f)
        }

        async fn nothing(&self) {}

        async fn echo(&self, items: ::std::vec::Vec<::std::string::String>) -> ::std::vec::Vec<::std::string::String> {
            items
        }
    }
}

use api::{HygieneClient, HygieneServer, Impl};
use rpc_core::{BoxInvoker, Invocation, ServiceClient, ServiceHandler, ServiceKey, Stub};

fn client() -> HygieneClient {
    let server = HygieneServer::new(Impl);
    let invoker = BoxInvoker::new(tower::service_fn(move |invocation: Invocation| server.call(invocation)));
    HygieneClient::from_stub(Stub::new(
        ServiceKey::new("org.example.Hygiene", Some("1"), None),
        invoker,
    ))
}

#[tokio::test]
async fn the_hygienic_service_round_trips() {
    let client = client();
    assert_eq!(client.shadow(1, 2, 3, 4, 5, 6).await.unwrap(), Ok(21));
    client.nothing().await.unwrap();
    assert_eq!(client.echo(vec!["a".into()]).await.unwrap(), ["a"]);
    assert_eq!(HygieneClient::DESCRIPTOR.method_names(), "shadow,nothing,echo");
}

#[test]
fn cluster_settings_survive_the_decoys() {
    use rpc_cluster::{Balancer, ClusterPolicy, MethodConfig};
    assert_eq!(
        MethodConfig::declared(HygieneClient::DESCRIPTOR.method("shadow").unwrap()).unwrap(),
        MethodConfig::new()
            .with_attempt_timeout(std::time::Duration::from_millis(100))
            .with_cluster(ClusterPolicy::Failfast)
            .with_loadbalance(Balancer::ConsistentHash)
            .with_forks(2)
            .with_actives(4)
            .with_hash_arguments(&[0, 5])
    );
}

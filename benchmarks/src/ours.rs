//! Our systems: the echo service over the native `rpc` protocol (direct, or
//! through the full consumer stack), over `tri`, and over `dubbo` (Hessian2,
//! Java Dubbo's protocol).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rpc::protocol::dubbo::DubboChannel;
use rpc::protocol::rpc::{RpcChannel, RpcChannelConfig};
use rpc::protocol::tri::TriChannel;
use rpc::{BoxInvoker, ServiceClient, ServiceKey, Stub};
use tower::Layer as _;

use crate::payload::{self, Payload, Record};

/// The echo service, as a user of this framework writes it.
#[rpc::service(interface = "bench.Echo", version = "1.0.0")]
pub trait Echo {
    /// Echoes the 64-byte string.
    async fn small(&self, s: String) -> String;
    /// Echoes the record.
    async fn large(&self, r: Record) -> Record;
}

/// The echo implementation.
#[derive(Debug, Clone, Copy, Default)]
pub struct EchoImpl;

impl Echo for EchoImpl {
    async fn small(&self, s: String) -> String {
        s
    }

    async fn large(&self, r: Record) -> Record {
        r
    }
}

/// The metrics both sides record into (`--metrics`); `None`: not recorded.
pub static METRICS: std::sync::OnceLock<rpc::observe::Metrics> = std::sync::OnceLock::new();

/// Whether the consumer stack traces its calls (`--no-tracing` turns it off).
pub static TRACING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Serves the echo service on each of `listeners` (both protocols speak on
/// each; several make several providers) until the process ends.
pub async fn serve(listeners: Vec<tokio::net::TcpListener>) -> Result<(), String> {
    let key = ServiceKey::new("bench.Echo", Some("1.0.0"), None);
    let mut exported = rpc::protocol::Exported::new(EchoServer::new(EchoImpl));
    if let Some(metrics) = METRICS.get() {
        exported = metrics.observe_export("bench", &key, exported);
    }
    let dispatcher = rpc::protocol::Dispatcher::new([(key, exported)]);
    let _servers: Vec<_> = listeners
        .into_iter()
        .map(|listener| {
            rpc::protocol::server::Server::new(dispatcher.clone(), rpc::protocol::server::ServerConfig::default())
                .serve(listener)
        })
        .collect();
    std::future::pending::<()>().await;
    Ok(())
}

/// How a client reaches the providers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// A native channel straight to one provider: no cluster layers.
    Direct,
    /// A `tri` channel straight to one provider.
    Tri,
    /// A `dubbo` channel (Hessian2) straight to one provider.
    Dubbo,
    /// The full consumer stack: directory, round robin, failover.
    Cluster,
}

const TIMEOUT: Duration = Duration::from_secs(30);

/// A client echoing one payload.
#[derive(Clone, Debug)]
pub struct Client {
    echo: EchoClient,
    payload: Payload,
    small: Arc<String>,
    record: Arc<Record>,
}

impl Client {
    /// A client for `payload` over `route` to `addrs` (one address unless clustered).
    pub async fn connect(route: Route, addrs: &[SocketAddr], payload: Payload) -> Result<Client, String> {
        let key = ServiceKey::new("bench.Echo", Some("1.0.0"), None);
        // Straight to a channel: each call's deadline set as the cluster would.
        let deadline = tower::util::MapRequestLayer::new(|mut invocation: rpc::Invocation| {
            invocation.set_deadline(tokio::time::Instant::now().checked_add(TIMEOUT));
            invocation
        });
        let first = addrs.first().ok_or("no provider address")?.to_string();
        let echo = match route {
            Route::Direct => {
                let channel = RpcChannel::new(first, RpcChannelConfig::default());
                EchoClient::from_stub(Stub::new(key, BoxInvoker::always_ready(deadline.layer(channel))))
            }
            Route::Tri => {
                let channel = TriChannel::new(first, RpcChannelConfig::default());
                EchoClient::from_stub(Stub::new(key, BoxInvoker::always_ready(deadline.layer(channel))))
            }
            Route::Dubbo => {
                let channel = DubboChannel::new(first, RpcChannelConfig::default());
                let stub = Stub::new(key, BoxInvoker::always_ready(deadline.layer(channel)))
                    .with_serialization(rpc::Serialization::Hessian2);
                EchoClient::from_stub(stub)
            }
            Route::Cluster => {
                let list: Vec<String> = addrs.iter().map(ToString::to_string).collect();
                let mut consumer = rpc::Consumer::builder()
                    .registry(format!("rpc://{}", list.join(",")))
                    .tracing(TRACING.load(std::sync::atomic::Ordering::Relaxed));
                if let Some(metrics) = METRICS.get() {
                    consumer = consumer.metrics(metrics);
                }
                let consumer = consumer.build().await.map_err(|e| e.to_string())?;
                consumer
                    .reference::<EchoClient>()
                    .timeout(TIMEOUT)
                    .cluster(rpc::ClusterPolicy::Failover)
                    .loadbalance(rpc::Balancer::RoundRobin)
                    .build()
                    .await
                    .map_err(|e| e.to_string())?
            }
        };
        let client = Client {
            echo,
            payload,
            small: Arc::new(payload::small()),
            record: Arc::new(payload::record()),
        };
        // Connect now, not during the measurement.
        client.call().await?;
        Ok(client)
    }

    /// One echo call. The generated stub encodes the argument before its
    /// future starts, so the future borrows nothing of the client.
    pub fn call(&self) -> impl std::future::Future<Output = Result<(), String>> + Send + 'static + use<> {
        let (small, large) = match self.payload {
            Payload::Small => (Some(self.echo.small((*self.small).clone())), None),
            Payload::Large => (None, Some(self.echo.large((*self.record).clone()))),
        };
        let (want_len, want_id) = (self.small.len(), self.record.id);
        async move {
            if let Some(call) = small {
                let reply = call.await.map_err(|e| e.to_string())?;
                if reply.len() != want_len {
                    return Err("wrong reply".into());
                }
            }
            if let Some(call) = large {
                let reply = call.await.map_err(|e| e.to_string())?;
                if reply.id != want_id {
                    return Err("wrong reply".into());
                }
            }
            Ok(())
        }
    }
}

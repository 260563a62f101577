//! [`DubboChannel`]: a consumer's connection to a `dubbo://` provider (Java
//! Dubbo's, or ours).
//!
//! It is the native channel's machinery (one multiplexed connection, the
//! shared [`Link`](crate::protocol::connection::link::Link) for connecting,
//! backoff and health, the in-flight map, heartbeats, the read-only event)
//! speaking `dubbo` on it: requests in Java Dubbo's form, Hessian2 events,
//! error messages read as Hessian strings. Calls must be encoded with
//! [`Serialization::Hessian2`] (the consumer picks it for `dubbo://`
//! providers); the reply's Java exception, if any, is read by the stub.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;

use super::{DubboResponse, request_body, request_frame};
use crate::error::{ErrorKind, RpcError};
use crate::invocation::Invocation;
use crate::invoker::BoxFuture;
use crate::protocol::Health;
use crate::protocol::connection::{Connector, TcpConnector};
use crate::protocol::rpc::frame::OutFrame;
use crate::protocol::rpc::{RpcChannel, RpcChannelConfig, WeakRpcChannel};
use crate::response::Response;
use crate::serialization::Serialization;

/// The request frame of `invocation` with id `id`; `timeout_ms` (what is left
/// of the call's budget) travels as the `timeout` attachment, as Java's does.
pub(crate) fn request(id: u64, invocation: &Invocation, timeout_ms: Option<u64>) -> Result<OutFrame, RpcError> {
    if invocation.serialization() != Serialization::Hessian2 {
        return Err(RpcError::new(
            ErrorKind::Encode,
            format!(
                "a dubbo provider reads hessian2 only, and this call is encoded with {}",
                invocation.serialization()
            ),
        ));
    }
    let service = invocation.service();
    let timeout = timeout_ms.map(|ms| ms.to_string());
    let mut attachments: Vec<(&str, &str)> = vec![("path", service.interface()), ("interface", service.interface())];
    if let Some(version) = service.version() {
        attachments.push(("version", version));
    }
    if let Some(group) = service.group() {
        attachments.push(("group", group));
    }
    if let Some(timeout) = &timeout {
        attachments.push(("timeout", timeout));
    }
    for (key, value) in invocation.attachments() {
        if !attachments.iter().any(|(k, _)| k == key) {
            attachments.push((key, value));
        }
    }
    let body = request_body(
        service.interface(),
        service.version(),
        invocation.method(),
        invocation.java_types(),
        invocation.args(),
        &attachments,
    )
    .map_err(|e| RpcError::new(ErrorKind::Encode, format!("cannot encode the dubbo request: {e}")))?;
    Ok(request_frame(id, true, body.freeze()))
}

/// What a `dubbo` reply frame means: the reply body for the stub when the
/// status is OK, else the provider's message (a Hessian string) with its status.
pub(crate) fn reply_result(status: u8, body: Bytes) -> Result<Response, RpcError> {
    match DubboResponse::decode(status, body) {
        DubboResponse::Ok(body) => Ok(Response::new(body)),
        DubboResponse::Failed(status, message) => Err(RpcError::remote(status, message)),
    }
}

/// A client for one `dubbo://` provider address; a tower
/// `Service<Invocation, Response = Response, Error = RpcError>`.
///
/// Behaves as [`RpcChannel`] does (lazy connection, backoff, failing
/// in-flight calls when the connection breaks, not-sent versus unknown
/// outcomes, health, the provider's read-only event), over Java Dubbo's
/// protocol. Clones share the connection.
#[derive(Clone)]
pub struct DubboChannel {
    inner: RpcChannel,
}

impl fmt::Debug for DubboChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DubboChannel")
            .field("address", &self.inner.address())
            .finish_non_exhaustive()
    }
}

/// A handle to a [`DubboChannel`] that does not keep it alive.
#[derive(Clone, Debug, Default)]
pub struct WeakDubboChannel {
    inner: WeakRpcChannel,
}

impl WeakDubboChannel {
    /// The channel, if any handle to it is still alive.
    pub fn upgrade(&self) -> Option<DubboChannel> {
        self.inner.upgrade().map(|inner| DubboChannel { inner })
    }
}

impl DubboChannel {
    /// A channel to `address` (`host:port`) over TCP. Nothing is connected until the first call.
    pub fn new(address: impl Into<String>, config: RpcChannelConfig) -> Self {
        DubboChannel::with_connector(address, config, Arc::new(TcpConnector))
    }

    /// A channel to `address` whose connections `connector` opens.
    pub fn with_connector(address: impl Into<String>, config: RpcChannelConfig, connector: Arc<dyn Connector>) -> Self {
        DubboChannel {
            inner: RpcChannel::make(address, config, connector, true),
        }
    }

    /// A handle that does not keep the channel alive.
    pub fn downgrade(&self) -> WeakDubboChannel {
        WeakDubboChannel {
            inner: self.inner.downgrade(),
        }
    }

    /// The provider address.
    pub fn address(&self) -> &str {
        self.inner.address()
    }

    /// Connections made after the first (see [`RpcChannel::reconnects`]).
    pub fn reconnects(&self) -> u64 {
        self.inner.reconnects()
    }

    /// Whether new calls should come here (see [`RpcChannel::health`]).
    pub fn health(&self) -> Health {
        self.inner.health()
    }

    /// Calls waiting for a response on the current connection.
    pub fn in_flight(&self) -> usize {
        self.inner.in_flight()
    }

    /// Fails the calls waiting for answers now (see [`RpcChannel::abandon_in_flight`]).
    pub fn abandon_in_flight(&self, reason: &str) -> usize {
        self.inner.abandon_in_flight(reason)
    }

    /// Whether the provider answers a heartbeat within `timeout`.
    pub async fn ping(&self, timeout: std::time::Duration) -> bool {
        self.inner.ping(timeout).await
    }
}

impl tower::Service<Invocation> for DubboChannel {
    type Response = Response;
    type Error = RpcError;
    type Future = BoxFuture<Result<Response, RpcError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), RpcError>> {
        tower::Service::<Invocation>::poll_ready(&mut self.inner, cx)
    }

    fn call(&mut self, invocation: Invocation) -> Self::Future {
        tower::Service::call(&mut self.inner, invocation)
    }
}

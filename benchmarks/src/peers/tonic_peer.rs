//! tonic peer: the `bench.Echo` gRPC service over HTTP/2, with prost messages.
//!
//! There is no `protoc` here, so the messages and the service/client code are
//! written by hand in the shape `tonic-build` generates for this proto:
//!
//! ```proto
//! syntax = "proto3";
//! package bench;
//! message SmallMsg { string text = 1; }
//! message AddressMsg { string street = 1; string city = 2; uint32 zip = 3; }
//! message RecordMsg {
//!   uint64 id = 1; string name = 2; AddressMsg address = 3;
//!   repeated uint32 scores = 4; map<string, string> tags = 5; string note = 6;
//! }
//! service Echo {
//!   rpc Small(SmallMsg) returns (SmallMsg);
//!   rpc Large(RecordMsg) returns (RecordMsg);
//! }
//! ```
//!
//! The server keeps tonic's defaults (what a user gets), with `TCP_NODELAY`
//! set on accepted sockets; HTTP/2 max concurrent streams stays unlimited.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;

use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Server};
use tonic_prost::ProstCodec;

use crate::payload::{self, Payload};

/// The 64-byte payload as a protobuf message.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SmallMsg {
    /// The 64-byte string.
    #[prost(string, tag = "1")]
    pub text: String,
}

/// The nested part of [`RecordMsg`].
#[derive(Clone, PartialEq, prost::Message)]
pub struct AddressMsg {
    /// Street line.
    #[prost(string, tag = "1")]
    pub street: String,
    /// City.
    #[prost(string, tag = "2")]
    pub city: String,
    /// Postal code.
    #[prost(uint32, tag = "3")]
    pub zip: u32,
}

/// The ~1 KiB record as a protobuf message.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RecordMsg {
    /// An id.
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// A name.
    #[prost(string, tag = "2")]
    pub name: String,
    /// A nested message.
    #[prost(message, optional, tag = "3")]
    pub address: Option<AddressMsg>,
    /// A vector of numbers (packed, as proto3 does by default).
    #[prost(uint32, repeated, packed = "true", tag = "4")]
    pub scores: Vec<u32>,
    /// A map of tags.
    #[prost(btree_map = "string, string", tag = "5")]
    pub tags: BTreeMap<String, String>,
    /// Free text.
    #[prost(string, tag = "6")]
    pub note: String,
}

/// [`payload::record`] converted to its protobuf message.
pub fn record_msg() -> RecordMsg {
    let r = payload::record();
    RecordMsg {
        id: r.id,
        name: r.name,
        address: Some(AddressMsg {
            street: r.address.street,
            city: r.address.city,
            zip: r.address.zip,
        }),
        scores: r.scores,
        tags: r.tags,
        note: r.note,
    }
}

const SERVICE_NAME: &str = "bench.Echo";
const SMALL_PATH: &str = "/bench.Echo/Small";
const LARGE_PATH: &str = "/bench.Echo/Large";

/// Server side, as `tonic-build` generates `echo_server`.
mod echo_server {
    use tonic::codegen::*;

    use super::{LARGE_PATH, RecordMsg, SERVICE_NAME, SMALL_PATH, SmallMsg};

    /// The handler trait of `bench.Echo`.
    #[async_trait]
    pub(super) trait Echo: std::marker::Send + std::marker::Sync + 'static {
        /// `/bench.Echo/Small`.
        async fn small(&self, request: tonic::Request<SmallMsg>) -> Result<tonic::Response<SmallMsg>, tonic::Status>;
        /// `/bench.Echo/Large`.
        async fn large(&self, request: tonic::Request<RecordMsg>) -> Result<tonic::Response<RecordMsg>, tonic::Status>;
    }

    /// The `tower::Service` routing `bench.Echo` requests to an [`Echo`].
    #[derive(Debug)]
    pub(super) struct EchoServer<T> {
        inner: Arc<T>,
        accept_compression_encodings: EnabledCompressionEncodings,
        send_compression_encodings: EnabledCompressionEncodings,
        max_decoding_message_size: Option<usize>,
        max_encoding_message_size: Option<usize>,
    }

    impl<T> EchoServer<T> {
        pub(super) fn new(inner: T) -> Self {
            Self {
                inner: Arc::new(inner),
                accept_compression_encodings: Default::default(),
                send_compression_encodings: Default::default(),
                max_decoding_message_size: None,
                max_encoding_message_size: None,
            }
        }
    }

    impl<T> Clone for EchoServer<T> {
        fn clone(&self) -> Self {
            Self {
                inner: self.inner.clone(),
                accept_compression_encodings: self.accept_compression_encodings,
                send_compression_encodings: self.send_compression_encodings,
                max_decoding_message_size: self.max_decoding_message_size,
                max_encoding_message_size: self.max_encoding_message_size,
            }
        }
    }

    impl<T, B> tonic::codegen::Service<http::Request<B>> for EchoServer<T>
    where
        T: Echo,
        B: Body + std::marker::Send + 'static,
        B::Error: Into<StdError> + std::marker::Send + 'static,
    {
        type Response = http::Response<tonic::body::Body>;
        type Error = std::convert::Infallible;
        type Future = BoxFuture<Self::Response, Self::Error>;

        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, req: http::Request<B>) -> Self::Future {
            match req.uri().path() {
                SMALL_PATH => {
                    struct SmallSvc<T: Echo>(Arc<T>);
                    impl<T: Echo> tonic::server::UnaryService<SmallMsg> for SmallSvc<T> {
                        type Response = SmallMsg;
                        type Future = BoxFuture<tonic::Response<Self::Response>, tonic::Status>;
                        fn call(&mut self, request: tonic::Request<SmallMsg>) -> Self::Future {
                            let inner = Arc::clone(&self.0);
                            Box::pin(async move { <T as Echo>::small(&inner, request).await })
                        }
                    }
                    let accept_compression_encodings = self.accept_compression_encodings;
                    let send_compression_encodings = self.send_compression_encodings;
                    let max_decoding_message_size = self.max_decoding_message_size;
                    let max_encoding_message_size = self.max_encoding_message_size;
                    let inner = self.inner.clone();
                    Box::pin(async move {
                        let method = SmallSvc(inner);
                        let codec = tonic_prost::ProstCodec::default();
                        let mut grpc = tonic::server::Grpc::new(codec)
                            .apply_compression_config(accept_compression_encodings, send_compression_encodings)
                            .apply_max_message_size_config(max_decoding_message_size, max_encoding_message_size);
                        Ok(grpc.unary(method, req).await)
                    })
                }
                LARGE_PATH => {
                    struct LargeSvc<T: Echo>(Arc<T>);
                    impl<T: Echo> tonic::server::UnaryService<RecordMsg> for LargeSvc<T> {
                        type Response = RecordMsg;
                        type Future = BoxFuture<tonic::Response<Self::Response>, tonic::Status>;
                        fn call(&mut self, request: tonic::Request<RecordMsg>) -> Self::Future {
                            let inner = Arc::clone(&self.0);
                            Box::pin(async move { <T as Echo>::large(&inner, request).await })
                        }
                    }
                    let accept_compression_encodings = self.accept_compression_encodings;
                    let send_compression_encodings = self.send_compression_encodings;
                    let max_decoding_message_size = self.max_decoding_message_size;
                    let max_encoding_message_size = self.max_encoding_message_size;
                    let inner = self.inner.clone();
                    Box::pin(async move {
                        let method = LargeSvc(inner);
                        let codec = tonic_prost::ProstCodec::default();
                        let mut grpc = tonic::server::Grpc::new(codec)
                            .apply_compression_config(accept_compression_encodings, send_compression_encodings)
                            .apply_max_message_size_config(max_decoding_message_size, max_encoding_message_size);
                        Ok(grpc.unary(method, req).await)
                    })
                }
                _ => Box::pin(async move {
                    let mut response = http::Response::new(tonic::body::Body::default());
                    let headers = response.headers_mut();
                    headers.insert(tonic::Status::GRPC_STATUS, (tonic::Code::Unimplemented as i32).into());
                    headers.insert(http::header::CONTENT_TYPE, tonic::metadata::GRPC_CONTENT_TYPE);
                    Ok(response)
                }),
            }
        }
    }

    impl<T> tonic::server::NamedService for EchoServer<T> {
        const NAME: &'static str = SERVICE_NAME;
    }
}

/// The echo handler: returns each request as the reply.
struct EchoImpl;

#[tonic::codegen::async_trait]
impl echo_server::Echo for EchoImpl {
    async fn small(&self, request: tonic::Request<SmallMsg>) -> Result<tonic::Response<SmallMsg>, tonic::Status> {
        Ok(tonic::Response::new(request.into_inner()))
    }

    async fn large(&self, request: tonic::Request<RecordMsg>) -> Result<tonic::Response<RecordMsg>, tonic::Status> {
        Ok(tonic::Response::new(request.into_inner()))
    }
}

/// Serves bench.Echo on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener) -> Result<(), String> {
    // `Server::tcp_nodelay` is ignored by `serve_with_incoming`: set it on the incoming stream.
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    // The `router` feature (`add_service`) is off; a single service is served directly, which is
    // what the router would dispatch every `/bench.Echo/*` request to anyway.
    Server::builder()
        .serve_with_incoming(echo_server::EchoServer::new(EchoImpl), incoming)
        .await
        .map_err(|e| format!("tonic server: {e}"))
}

/// The prebuilt message a [`Client`] echoes.
#[derive(Clone, Debug)]
enum Msg {
    Small(SmallMsg),
    Large(RecordMsg),
}

/// A client echoing `payload` on one HTTP/2 connection to `addr`.
#[derive(Clone, Debug)]
pub struct Client {
    grpc: tonic::client::Grpc<Channel>,
    msg: Msg,
}

impl Client {
    /// Connects one HTTP/2 connection (a tonic [`Channel`]) to `addr`.
    pub async fn connect(addr: SocketAddr, payload: Payload) -> Result<Client, String> {
        let channel = Channel::from_shared(format!("http://{addr}"))
            .map_err(|e| format!("tonic endpoint {addr}: {e}"))?
            .tcp_nodelay(true)
            .connect()
            .await
            .map_err(|e| format!("tonic connect {addr}: {e}"))?;
        let msg = match payload {
            Payload::Small => Msg::Small(SmallMsg { text: payload::small() }),
            Payload::Large => Msg::Large(record_msg()),
        };
        Ok(Client {
            grpc: tonic::client::Grpc::new(channel),
            msg,
        })
    }

    /// One echo call of the payload (a clone of the prebuilt message); checks the reply cheaply.
    ///
    /// `use<>`: in edition 2024 the future would otherwise capture the `&self` borrow.
    pub fn call(&self) -> impl Future<Output = Result<(), String>> + Send + 'static + use<> {
        let mut grpc = self.grpc.clone();
        let msg = self.msg.clone();
        async move {
            grpc.ready()
                .await
                .map_err(|e| format!("tonic: service was not ready: {e}"))?;
            match msg {
                Msg::Small(m) => {
                    let len = m.text.len();
                    let mut req = tonic::Request::new(m);
                    req.extensions_mut()
                        .insert(tonic::GrpcMethod::new(SERVICE_NAME, "Small"));
                    let codec: ProstCodec<SmallMsg, SmallMsg> = ProstCodec::default();
                    let reply = grpc
                        .unary(req, PathAndQuery::from_static(SMALL_PATH), codec)
                        .await
                        .map_err(|s| format!("tonic Small: {s}"))?
                        .into_inner();
                    if reply.text.len() != len {
                        return Err(format!("tonic Small: echoed {} bytes, sent {len}", reply.text.len()));
                    }
                }
                Msg::Large(m) => {
                    let (id, n_scores) = (m.id, m.scores.len());
                    let mut req = tonic::Request::new(m);
                    req.extensions_mut()
                        .insert(tonic::GrpcMethod::new(SERVICE_NAME, "Large"));
                    let codec: ProstCodec<RecordMsg, RecordMsg> = ProstCodec::default();
                    let reply = grpc
                        .unary(req, PathAndQuery::from_static(LARGE_PATH), codec)
                        .await
                        .map_err(|s| format!("tonic Large: {s}"))?
                        .into_inner();
                    if reply.id != id || reply.scores.len() != n_scores {
                        return Err(format!(
                            "tonic Large: echoed id {} with {} scores, sent id {id} with {n_scores}",
                            reply.id,
                            reply.scores.len()
                        ));
                    }
                }
            }
            Ok(())
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn tonic_record_msg_is_about_a_kilobyte() {
        let msg = record_msg();
        let len = msg.encoded_len();
        println!("tonic RecordMsg encoded_len = {len} bytes");
        assert!((900..1_200).contains(&len), "{len}");
        assert_eq!(RecordMsg::decode(msg.encode_to_vec().as_slice()).unwrap(), msg);
        assert_eq!(SmallMsg { text: payload::small() }.encoded_len(), 66);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tonic_echoes_both_payloads() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(serve(listener));
        for payload in [Payload::Small, Payload::Large] {
            let client = Client::connect(addr, payload).await.unwrap();
            for _ in 0..100 {
                client.call().await.unwrap();
            }
            // Concurrent calls multiplexed on the one connection.
            let calls: Vec<_> = (0..100).map(|_| tokio::spawn(client.call())).collect();
            for call in calls {
                call.await.unwrap().unwrap();
            }
        }
        server.abort();
    }
}

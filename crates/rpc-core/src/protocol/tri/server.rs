//! The provider side of Triple: one hyper connection (HTTP/2 with gRPC
//! framing, or HTTP/1.1 with JSON) per TCP connection, dispatched to the
//! same [`Dispatcher`](crate::Dispatcher) as the native protocol.
//!
//! The [protocol-neutral server](crate::protocol::server) hands a connection
//! here when no other protocol claims its first byte (Dubbo's magic is the
//! native protocol's), so every port speaks both.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use http::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::codec::{self, code};
use super::headers;
use super::wrapper;
use crate::error::{ErrorKind, RpcError, Status};
use crate::invocation::{Attachments, Invocation, ServiceKey};
use crate::protocol::server::{Greeting, Handshake, ServeConnection, ServerShared};
use crate::serialization::Serialization;

/// Most concurrent HTTP/2 streams per connection.
pub(crate) const MAX_CONCURRENT_STREAMS: u32 = 1024;
/// Largest header block accepted (HTTP/2 header list, HTTP/1.1 head).
pub(crate) const MAX_HEADER_LIST_SIZE: u32 = 16 * 1024;
/// How long a request body may take to arrive when the call sets no deadline.
pub(crate) const BODY_TIMEOUT: Duration = Duration::from_secs(30);

type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Triple as the [server](crate::protocol::server) sees it: it claims every
/// connection no protocol before it claimed, and reads it as HTTP.
#[derive(Debug)]
pub(crate) struct TriServerSide;

impl ServeConnection for TriServerSide {
    fn claims(&self, _first: u8) -> bool {
        true
    }

    fn greeting(&self) -> Box<dyn Greeting> {
        Box::new(HttpGreeting::default())
    }

    fn serve(
        &self,
        stream: Handshake<TcpStream>,
        peer: SocketAddr,
        server: Arc<ServerShared>,
    ) -> BoxFuture<'static, ()> {
        Box::pin(serve(stream, peer, server))
    }
}

/// The HTTP/2 connection preface.
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// An HTTP connection's first message: the HTTP/2 preface, or an HTTP/1
/// request head (up to its blank line).
#[derive(Debug, Default)]
struct HttpGreeting {
    /// Bytes read so far.
    seen: usize,
    /// Bytes so far that match the HTTP/2 preface, while they all do.
    preface: usize,
    /// Bytes of `\r\n\r\n` matched at the end of what was read so far.
    blank_line: usize,
}

impl Greeting for HttpGreeting {
    fn complete_after(&mut self, bytes: &[u8]) -> bool {
        for &byte in bytes {
            if self.preface == self.seen && H2_PREFACE.get(self.preface) == Some(&byte) {
                self.preface += 1;
                if self.preface == H2_PREFACE.len() {
                    return true;
                }
            }
            self.seen += 1;
            self.blank_line = match (byte, self.blank_line) {
                (b'\r', 0 | 2) => self.blank_line + 1,
                (b'\n', 1 | 3) => self.blank_line + 1,
                (b'\r', _) => 1,
                _ => 0,
            };
            // The preface has a blank line of its own: only a head that is
            // not the preface ends at one.
            if self.blank_line == 4 && self.preface < self.seen {
                return true;
            }
        }
        false
    }

    fn awaited(&self) -> &'static str {
        "HTTP/2 preface or HTTP/1 request head"
    }
}

/// Serves one Triple connection over `io` (any transport, its first message
/// tracked by [`Handshake`]) with hyper until it closes: at the peer's will,
/// or as the server's shutdown says (GOAWAY once it is leaving, streams
/// already opened running to their end; closed when the server closes every
/// connection). `peer` is the caller's address, given to every invocation.
pub(crate) async fn serve<S>(io: Handshake<S>, peer: SocketAddr, server: Arc<ServerShared>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let heartbeat = server.config.heartbeat;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(heartbeat)
        .max_buf_size(MAX_HEADER_LIST_SIZE as usize * 4);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .max_header_list_size(MAX_HEADER_LIST_SIZE)
        .max_pending_accept_reset_streams(Some(64))
        .keep_alive_interval(Some(heartbeat))
        .keep_alive_timeout(heartbeat.saturating_mul(2));
    let handler = server.clone();
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let server = handler.clone();
        async move { Ok::<_, Infallible>(handle(&server, peer, request).await) }
    });
    let greeted = io.greeted();
    let connection = builder.serve_connection(TokioIo::new(io), service);
    // Made once, and registered before the flag is read: a shutdown that
    // began before this connection was handed over is not missed. GOAWAY
    // waits for the first message: hyper, told to shut down while it reads
    // the HTTP version, drops the connection with the request already sent
    // (which the handshake deadline bounds).
    let leaving = async {
        server.shutdown.leaving().await;
        greeted.wait().await;
    };
    tokio::pin!(connection, leaving);
    let mut going_away = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "tri connection ended with an error");
                }
                return;
            }
            _ = server.shutdown.closing() => return,
            // Shutdown: GOAWAY at once (no new streams), let running ones finish.
            _ = leaving.as_mut(), if !going_away => {
                going_away = true;
                connection.as_mut().graceful_shutdown();
            }
            _ = server.shutdown.draining(), if !going_away => {
                going_away = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

/// How the request is framed, and so how the answer must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// gRPC: 5-byte framed message, status in trailers.
    Grpc,
    /// Plain JSON over HTTP: status in the HTTP status line.
    Json,
}

async fn handle(server: &Arc<ServerShared>, peer: SocketAddr, request: Request<Incoming>) -> Response<Body> {
    if request.method() != Method::POST {
        let error = RpcError::remote(
            Status::BadRequest,
            format!(
                "method {} not allowed: call with POST /{{interface}}/{{method}}",
                request.method()
            ),
        );
        return http_error(StatusCode::METHOD_NOT_ALLOWED, &error);
    }
    let content_type = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let (mode, serialization) = match classify(&content_type) {
        Some(found) => found,
        None => {
            let error = RpcError::remote(
                Status::BadRequest,
                format!(
                    "unsupported content-type `{content_type}`: use application/grpc[+json|+bincode] (HTTP/2) \
                     or application/json"
                ),
            );
            return http_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, &error);
        }
    };
    let answer = |error: RpcError| match mode {
        Mode::Grpc => grpc_error(&error),
        Mode::Json => json_error(&error),
    };
    let (parts, body) = request.into_parts();
    let Some((interface, method)) = split_path(parts.uri.path()) else {
        return answer(RpcError::remote(
            Status::ServiceNotFound,
            format!("path `{}` is not /{{interface}}/{{method}}", parts.uri.path()),
        ));
    };
    let headers = &parts.headers;
    let version = header(headers, headers::SERVICE_VERSION);
    let group = header(headers, headers::SERVICE_GROUP);
    let timeout = header(headers, headers::GRPC_TIMEOUT).and_then(codec::parse_timeout);
    let key = resolve_key(server, interface, version, group);
    // Streams opened before the GOAWAY run during the grace period; only once
    // it is over is a request refused, unrun.
    if server.shutdown.is_draining() {
        let error = RpcError::remote(
            Status::ChannelInactive,
            format!("provider is shutting down; `{key}` accepts no new calls"),
        )
        .with_service(&key);
        return refused(answer(error), "shutting-down");
    }
    let guard = match server.admit(&key, method) {
        Ok(guard) => guard,
        Err(error) => return refused(answer(error), "overloaded"),
    };
    let deadline = timeout.map(|t| Instant::now() + t);
    let attachments = attachments(headers);
    let limit = server.config.max_payload.saturating_add(codec::PREFIX_LEN);
    let body_deadline = deadline.unwrap_or_else(|| Instant::now() + BODY_TIMEOUT);
    let body = match tokio::time::timeout_at(body_deadline, Limited::new(body, limit).collect()).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            let error = RpcError::new(
                ErrorKind::PayloadTooLarge,
                format!(
                    "request body exceeds the payload limit of {} bytes",
                    server.config.max_payload
                ),
            );
            let reply = match mode {
                Mode::Grpc => grpc_error(&error),
                Mode::Json => http_error(StatusCode::PAYLOAD_TOO_LARGE, &error),
            };
            return refused(reply, "too-large");
        }
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "tri request body failed");
            return answer(RpcError::remote(
                Status::BadRequest,
                format!("cannot read the request body: {e}"),
            ));
        }
        Err(_) => {
            return answer(RpcError::remote(
                Status::ServerTimeout,
                "the request body did not arrive before the deadline",
            ));
        }
    };
    let args = match mode {
        Mode::Grpc => match codec::unframe(body, server.config.max_payload) {
            Ok(message) => message,
            Err(e) => {
                let kind = match e {
                    codec::UnframeError::TooLarge(_) => ErrorKind::PayloadTooLarge,
                    _ => ErrorKind::Remote(Status::BadRequest),
                };
                return grpc_error(&RpcError::new(kind, e.to_string()));
            }
        },
        Mode::Json => body,
    };
    // Java's form: a wrapper of Hessian2 arguments, answered in kind.
    let wrapped = mode == Mode::Grpc && may_be_wrapped(&content_type) && wrapper::looks_wrapped(&args);
    let (args, serialization) = if wrapped {
        match unwrap_request(&args) {
            Ok(args) => (args, Serialization::Hessian2),
            Err(message) => {
                let error = RpcError::remote(Status::BadRequest, message)
                    .with_service(&key)
                    .with_method(method);
                return grpc_error(&error);
            }
        }
    } else {
        (args, serialization)
    };
    let mut invocation = Invocation::new(key, method.to_owned(), args, serialization);
    invocation.set_deadline(deadline);
    invocation.set_attachments(attachments);
    invocation.set_remote_address(Some(peer));
    let result = server.dispatcher.dispatch(invocation).await;
    drop(guard);
    match (result, mode) {
        (Ok(response), Mode::Grpc) if wrapped => grpc_wrapped(&response.into_payload()),
        (Ok(response), Mode::Grpc) => grpc_ok(serialization, response.into_payload()),
        (Ok(response), Mode::Json) => {
            let mut reply = Response::new(full(response.into_payload()));
            reply
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            reply
        }
        // A provider layer's refusal (a limit such as `executes` or `tps`):
        // the handler did not run, and the consumer may take it for that.
        (Err(error), _) if error.status() == Some(Status::ServerOverloaded) => refused(answer(error), "overloaded"),
        (Err(error), _) => answer(error),
    }
}

/// Marks `reply` as a refusal made before the handler ran (see
/// [`headers::REFUSED`]): the consumer may then take it for "not run".
fn refused(mut reply: Response<Body>, why: &'static str) -> Response<Body> {
    reply
        .headers_mut()
        .insert(headers::REFUSED, HeaderValue::from_static(why));
    reply
}

/// The mode and payload serialization a content type asks for.
pub(crate) fn classify(content_type: &str) -> Option<(Mode, Serialization)> {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    if let Some(rest) = essence.strip_prefix("application/grpc") {
        // `application/grpc`, `+json`, `+proto`, `+data`: JSON unless told bincode.
        let serialization = match rest.strip_prefix('+') {
            Some("bincode") => Serialization::Bincode,
            _ if rest.is_empty() || rest.starts_with('+') => Serialization::Json,
            _ => return None,
        };
        return Some((Mode::Grpc, serialization));
    }
    (essence == "application/json").then_some((Mode::Json, Serialization::Json))
}

/// Whether a gRPC content type is one Java's wrapper form comes with:
/// `application/grpc+proto` (what Java Dubbo sends) or bare `application/grpc`;
/// never one that names our serializations.
fn may_be_wrapped(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    matches!(essence, "application/grpc" | "application/grpc+proto")
}

/// The Hessian2 argument stream of a request wrapper, or why it has none.
fn unwrap_request(message: &Bytes) -> Result<Bytes, String> {
    let wrapper = wrapper::RequestWrapper::decode(message).map_err(|e| e.to_string())?;
    if !wrapper::is_hessian(&wrapper.serialize_type) {
        return Err(format!(
            "the wrapper's serialization `{}` is not supported: only Hessian2 (`{}`)",
            wrapper.serialize_type,
            wrapper::HESSIAN4
        ));
    }
    if !wrapper.arg_types.is_empty() && wrapper.arg_types.len() != wrapper.args.len() {
        return Err(format!(
            "the wrapper has {} arguments but {} argument types",
            wrapper.args.len(),
            wrapper.arg_types.len()
        ));
    }
    wrapper::join_args(&wrapper.args)
}

/// A handler's Hessian2 reply as Java expects it: a response wrapper, and for
/// an exception the header `tri-exception-code` (trailers `grpc-status: 0`).
fn grpc_wrapped(reply: &Bytes) -> Response<Body> {
    let (wrapped, exception) = match wrapper::wrap_reply(reply) {
        Ok(wrapped) => wrapped,
        Err(e) => {
            let error = RpcError::new(ErrorKind::Encode, format!("cannot wrap the reply for Java: {e}"));
            return grpc_error(&error);
        }
    };
    let mut trailers = HeaderMap::new();
    trailers.insert(headers::GRPC_STATUS, HeaderValue::from_static("0"));
    let frames = futures::stream::iter([
        Ok::<_, Infallible>(Frame::data(codec::frame(&wrapped.encode()))),
        Ok(Frame::trailers(trailers)),
    ]);
    let mut response = Response::new(StreamBody::new(frames).boxed_unsync());
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    if exception {
        headers.insert(wrapper::EXCEPTION_CODE, HeaderValue::from(wrapper::BIZ_EXCEPTION));
    }
    response
}

/// `/{interface}/{method}` → its two parts.
pub(crate) fn split_path(path: &str) -> Option<(&str, &str)> {
    let (interface, method) = path.strip_prefix('/')?.split_once('/')?;
    (!interface.is_empty() && !method.is_empty() && !method.contains('/')).then_some((interface, method))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
}

/// The exported key a request means. A request without a version header
/// means version 1.0.0 when that is what is exported: the Python Dubbo
/// client omits the header for 1.0.0.
fn resolve_key(server: &ServerShared, interface: &str, version: Option<&str>, group: Option<&str>) -> ServiceKey {
    let exact = ServiceKey::new(interface, version, group);
    if version.is_some() || server.dispatcher.lookup(&exact).is_ok() {
        return exact;
    }
    ServiceKey::new(interface, Some(headers::DEFAULT_VERSION), group)
}

/// Request headers that travel as attachments: all but HTTP's and the
/// protocol's own.
fn attachments(headers: &HeaderMap) -> Attachments {
    headers
        .iter()
        .filter(|(name, _)| !headers::is_reserved(name.as_str()))
        .filter_map(|(name, value)| Some((name.as_str().to_string(), value.to_str().ok()?.to_string())))
        .collect()
}

fn full(bytes: Bytes) -> Body {
    Full::new(bytes).map_err(|never| match never {}).boxed_unsync()
}

fn grpc_content_type(serialization: Serialization) -> HeaderValue {
    match serialization {
        Serialization::Bincode => HeaderValue::from_static("application/grpc+bincode"),
        _ => HeaderValue::from_static("application/grpc+json"),
    }
}

fn grpc_ok(serialization: Serialization, payload: Bytes) -> Response<Body> {
    let mut trailers = HeaderMap::new();
    trailers.insert(headers::GRPC_STATUS, HeaderValue::from_static("0"));
    let frames = futures::stream::iter([
        Ok::<_, Infallible>(Frame::data(codec::frame(&payload))),
        Ok(Frame::trailers(trailers)),
    ]);
    let mut reply = Response::new(StreamBody::new(frames).boxed_unsync());
    reply
        .headers_mut()
        .insert(CONTENT_TYPE, grpc_content_type(serialization));
    reply
}

/// A trailers-only gRPC error: status 200, `grpc-status` and `grpc-message` in the headers.
fn grpc_error(error: &RpcError) -> Response<Body> {
    let mut reply = Response::new(full(Bytes::new()));
    let headers = reply.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    insert_status(headers, error);
    reply
}

pub(crate) fn insert_status(headers: &mut HeaderMap, error: &RpcError) {
    headers.insert(headers::GRPC_STATUS, HeaderValue::from(codec::code_of(error)));
    if let Ok(message) = HeaderValue::from_str(&codec::encode_message(error.message())) {
        headers.insert(headers::GRPC_MESSAGE, message);
    }
}

/// The HTTP status for a JSON caller.
fn http_status(error: &RpcError) -> StatusCode {
    if error.kind() == ErrorKind::PayloadTooLarge {
        return StatusCode::PAYLOAD_TOO_LARGE;
    }
    match codec::code_of(error) {
        code::UNIMPLEMENTED | code::NOT_FOUND => StatusCode::NOT_FOUND,
        code::INVALID_ARGUMENT => StatusCode::BAD_REQUEST,
        code::DEADLINE_EXCEEDED => StatusCode::GATEWAY_TIMEOUT,
        code::UNAVAILABLE => StatusCode::SERVICE_UNAVAILABLE,
        code::RESOURCE_EXHAUSTED => StatusCode::TOO_MANY_REQUESTS,
        code::UNAUTHENTICATED => StatusCode::UNAUTHORIZED,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn json_error(error: &RpcError) -> Response<Body> {
    http_error(http_status(error), error)
}

/// `{"code": <gRPC code>, "status": "<dubbo status>", "message": "..."}` with `status`.
fn http_error(status: StatusCode, error: &RpcError) -> Response<Body> {
    let body = serde_json::json!({
        "code": codec::code_of(error),
        "error": format!("{:?}", error.kind()),
        "message": error.message(),
    });
    let mut reply = Response::new(full(Bytes::from(body.to_string())));
    *reply.status_mut() = status;
    reply
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    reply
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::server::ServerConfig;
    use crate::protocol::server::testing::{self, SERVICE};
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
    use tokio::task::JoinHandle;

    /// The caller's address the tests hand the connection.
    const PEER: &str = "198.51.100.2:41000";
    /// The bound on every wait for the server.
    const WAIT: Duration = Duration::from_secs(5);

    /// After which of `chunks` an HTTP connection's first message is complete.
    fn completed_after(chunks: &[&[u8]]) -> Option<usize> {
        let mut greeting = TriServerSide.greeting();
        chunks.iter().position(|chunk| greeting.complete_after(chunk))
    }

    #[test]
    fn http_handshakes_end_at_the_preface_or_the_blank_line() {
        // The preface's own blank line (at byte 18) does not end it; its 24th byte does.
        let preface = &H2_PREFACE[..];
        assert_eq!(completed_after(&[&preface[..18], &preface[18..23]]), None);
        assert_eq!(completed_after(&[&preface[..18], &preface[18..]]), Some(1));
        let head = b"POST /a/b HTTP/1.1\r\nHost: x\r\n\r\nbody";
        assert_eq!(completed_after(&[&head[..28], &head[28..30]]), None);
        assert_eq!(completed_after(&[&head[..28], &head[28..31]]), Some(1));
        assert_eq!(completed_after(&[b"GET / HTTP/1.1\r", b"\n\r\r\n\r\n"]), Some(1));
        // A request line that starts like the preface, then differs, is a head.
        assert_eq!(completed_after(&[b"PRI /x HTTP/1.1\r\n\r\n"]), Some(0));
        // Triple takes whatever comes to it.
        assert!(TriServerSide.claims(b'P') && TriServerSide.claims(0x16));
    }

    /// A Triple connection served over `duplex`, and its client end.
    fn connect(server: &Arc<ServerShared>) -> (DuplexStream, JoinHandle<()>) {
        let (client, io) = tokio::io::duplex(64 * 1024);
        let io = Handshake::new(io, TriServerSide.greeting(), server.config.handshake_timeout);
        let served = tokio::spawn(serve(io, PEER.parse().unwrap(), server.clone()));
        (client, served)
    }

    /// Sends an HTTP/1.1 JSON POST of `body` to `path`.
    async fn post(client: &mut DuplexStream, path: &str, body: &str, close: bool) {
        let connection = if close { "connection: close\r\n" } else { "" };
        let request = format!(
            "POST {path} HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n{connection}\
             content-length: {}\r\n\r\n{body}",
            body.len()
        );
        client.write_all(request.as_bytes()).await.unwrap();
    }

    /// Reads one HTTP/1.1 response (with a content-length), within [`WAIT`]:
    /// its status, its head (lowercased) and its body.
    async fn response(client: &mut DuplexStream) -> (u16, String, String) {
        let mut buf = Vec::new();
        let read = async {
            loop {
                if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|line| line.strip_prefix("content-length: "))
                        .map(|n| n.trim().parse().unwrap())
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + length {
                        let status = head[9..12].parse().unwrap();
                        let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + length]).into_owned();
                        return (status, head, body);
                    }
                }
                let mut chunk = [0u8; 4096];
                let n = client.read(&mut chunk).await.unwrap();
                assert!(
                    n > 0,
                    "connection closed mid-response: {:?}",
                    String::from_utf8_lossy(&buf)
                );
                buf.extend_from_slice(&chunk[..n]);
            }
        };
        tokio::time::timeout(WAIT, read)
            .await
            .expect("a response within the bound")
    }

    /// Expects the server to close the connection, and its task to end, within [`WAIT`].
    async fn expect_closed(mut client: DuplexStream, served: JoinHandle<()>) {
        let mut rest = Vec::new();
        let read = tokio::time::timeout(WAIT, client.read_to_end(&mut rest)).await;
        assert!(matches!(read, Ok(Ok(0))), "expected a close, got {read:?}: {rest:?}");
        tokio::time::timeout(WAIT, served).await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn an_http1_json_post_is_answered_and_its_invocation_carries_the_callers_address() {
        let (server, _) = testing::shared(ServerConfig::default());
        let (mut client, served) = connect(&server);
        post(&mut client, &format!("/{SERVICE}/echo"), r#"["hello"]"#, false).await;
        let (status, head, body) = response(&mut client).await;
        assert_eq!((status, body.as_str()), (200, r#"["hello"]"#), "{head}");
        assert!(head.contains("content-type: application/json"), "{head}");
        post(&mut client, &format!("/{SERVICE}/peer"), "[]", true).await;
        let (status, _, body) = response(&mut client).await;
        assert_eq!((status, body), (200, format!("\"{PEER}\"")));
        expect_closed(client, served).await;
    }

    #[tokio::test]
    async fn an_unknown_service_is_answered_404_with_its_grpc_code() {
        let (server, _) = testing::shared(ServerConfig::default());
        let (mut client, served) = connect(&server);
        post(&mut client, "/test.Missing/echo", r#"["x"]"#, true).await;
        let (status, _, body) = response(&mut client).await;
        assert_eq!(status, 404, "{body}");
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["code"], codec::code::UNIMPLEMENTED);
        assert!(body["message"].as_str().unwrap().contains("test.Missing"), "{body}");
        expect_closed(client, served).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_handed_over_after_the_shutdown_began_still_goes_away() {
        let (server, _) = testing::shared(ServerConfig::default());
        server.shutdown.start_leaving();
        let (mut client, served) = connect(&server);
        // Keep-alive asked for, but the server is leaving: answered, then closed.
        post(&mut client, &format!("/{SERVICE}/echo"), r#"["late"]"#, false).await;
        let (status, head, body) = response(&mut client).await;
        assert_eq!((status, body.as_str()), (200, r#"["late"]"#), "{head}");
        expect_closed(client, served).await;
    }

    #[test]
    fn content_types_choose_the_mode_and_serialization() {
        assert_eq!(classify("application/grpc"), Some((Mode::Grpc, Serialization::Json)));
        assert_eq!(
            classify("application/grpc+json"),
            Some((Mode::Grpc, Serialization::Json))
        );
        assert_eq!(
            classify("application/grpc+proto"),
            Some((Mode::Grpc, Serialization::Json))
        );
        assert_eq!(
            classify("application/grpc+bincode"),
            Some((Mode::Grpc, Serialization::Bincode))
        );
        assert_eq!(
            classify("application/json; charset=utf-8"),
            Some((Mode::Json, Serialization::Json))
        );
        assert_eq!(classify("application/grpcx"), None);
        assert_eq!(classify("text/plain"), None);
        assert_eq!(classify(""), None);
    }

    #[test]
    fn paths_split_into_interface_and_method() {
        assert_eq!(
            split_path("/org.example.Greeter/sayHello"),
            Some(("org.example.Greeter", "sayHello"))
        );
        assert_eq!(split_path("/org.example.Greeter/"), None);
        assert_eq!(split_path("/org.example.Greeter"), None);
        assert_eq!(split_path("//m"), None);
        assert_eq!(split_path("/a/b/c"), None);
    }
}

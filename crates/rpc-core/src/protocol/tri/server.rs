//! The provider side of Triple: one hyper connection (HTTP/2 with gRPC
//! framing, or HTTP/1.1 with JSON) per TCP connection, dispatched to the
//! same [`Dispatcher`](crate::Dispatcher) as the native protocol.
//!
//! The [`rpc` server](crate::protocol::rpc::Server) hands a connection here
//! when its first byte is not Dubbo's magic, so every port speaks both.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::codec::{self, code};
use super::headers;
use crate::error::{ErrorKind, RpcError, Status};
use crate::invocation::{Attachments, Invocation, ServiceKey};
use crate::protocol::rpc::server::{GaugeGuard, Handshake, ServerShared};
use crate::serialization::Serialization;

/// Most concurrent HTTP/2 streams per connection.
pub const MAX_CONCURRENT_STREAMS: u32 = 1024;
/// Largest header block accepted (HTTP/2 header list, HTTP/1.1 head).
pub const MAX_HEADER_LIST_SIZE: u32 = 16 * 1024;
/// How long a request body may take to arrive when the call sets no deadline.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);

type Body = UnsyncBoxBody<Bytes, Infallible>;

pub(crate) async fn serve_connection(
    stream: Handshake<TcpStream>,
    peer: SocketAddr,
    server: Arc<ServerShared>,
    _count: GaugeGuard,
) {
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
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let mut going_away = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "tri connection ended with an error");
                }
                return;
            }
            _ = server.close.cancelled() => return,
            // Shutdown: GOAWAY at once (no new streams), let running ones finish.
            _ = server.readonly_changed.notified(), if !going_away => {
                going_away = true;
                connection.as_mut().graceful_shutdown();
            }
            _ = server.drain.cancelled(), if !going_away => {
                going_away = true;
                connection.as_mut().graceful_shutdown();
            }
        }
        if !going_away && server.readonly.load(Ordering::Acquire) {
            going_away = true;
            connection.as_mut().graceful_shutdown();
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
    if server.drain.is_cancelled() {
        let error = RpcError::remote(
            Status::ChannelInactive,
            format!("provider is shutting down; `{key}` accepts no new calls"),
        )
        .with_service(&key);
        return refused(answer(error), "shutting-down");
    }
    let Some(guard) = server.in_flight.try_enter(server.config.max_in_flight) else {
        return refused(answer(server.overloaded(&key, method)), "overloaded");
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
                    codec::FrameError::TooLarge(_) => ErrorKind::PayloadTooLarge,
                    _ => ErrorKind::Remote(Status::BadRequest),
                };
                return grpc_error(&RpcError::new(kind, e.to_string()));
            }
        },
        Mode::Json => body,
    };
    let mut invocation = Invocation::new(key, method.to_owned(), args, serialization);
    invocation.set_deadline(deadline);
    invocation.set_attachments(attachments);
    let result = server.dispatcher.dispatch(invocation).await;
    drop(guard);
    match (result, mode) {
        (Ok(response), Mode::Grpc) => grpc_ok(serialization, response.into_payload()),
        (Ok(response), Mode::Json) => {
            let mut reply = Response::new(full(response.into_payload()));
            reply
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            reply
        }
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

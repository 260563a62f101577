//! The Triple channel over in-memory pipes, each served by a small hyper
//! HTTP/2 server that echoes gRPC calls, under a paused clock.

use std::convert::Infallible;

use http_body_util::StreamBody;
use hyper::body::{Frame, Incoming};
use tokio::io::DuplexStream;
use tokio::sync::mpsc;

use super::*;
use crate::invocation::ServiceKey;
use crate::protocol::connection::testing::{Attempt, Pipes, WAIT, accept, assert_backoff};

const ADDRESS: &str = "provider.test:50051";
const PIPE: usize = 64 * 1024;

/// One served connection: what its calls asked, and a way to send GOAWAY.
struct Served {
    /// The arguments of every request, as it arrives.
    requests: mpsc::UnboundedReceiver<Bytes>,
    goaway: Option<oneshot::Sender<()>>,
}

impl Served {
    async fn request(&mut self) -> Bytes {
        tokio::time::timeout(WAIT, self.requests.recv())
            .await
            .expect("no request arrived")
            .expect("the connection ended")
    }

    fn goaway(&mut self) {
        let _ = self.goaway.take().expect("GOAWAY sent already").send(());
    }
}

/// Serves gRPC calls on `stream`: echoes the argument bytes, answers `big`
/// with 4 KiB, never answers `hang`.
fn serve(stream: DuplexStream) -> Served {
    let (seen, requests) = mpsc::unbounded_channel();
    let (goaway, shutdown) = oneshot::channel::<()>();
    let service = hyper::service::service_fn(move |request: http::Request<Incoming>| {
        let seen = seen.clone();
        async move {
            let body = request.into_body().collect().await.unwrap().to_bytes();
            let args = codec::unframe(body, 1 << 20).unwrap();
            let _ = seen.send(args.clone());
            if &args[..] == b"hang" {
                std::future::pending::<()>().await;
            }
            let reply = if &args[..] == b"big" {
                Bytes::from(vec![0u8; 4096])
            } else {
                args
            };
            let mut trailers = HeaderMap::new();
            trailers.insert(headers::GRPC_STATUS, HeaderValue::from_static("0"));
            let frames = [
                Ok::<_, Infallible>(Frame::data(codec::frame(&reply))),
                Ok(Frame::trailers(trailers)),
            ];
            let response = http::Response::builder()
                .header(CONTENT_TYPE, "application/grpc+bincode")
                .body(StreamBody::new(futures::stream::iter(frames)))
                .unwrap();
            Ok::<_, Infallible>(response)
        }
    });
    tokio::spawn(async move {
        let connection = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .serve_connection(TokioIo::new(stream), service);
        tokio::pin!(connection);
        tokio::select! {
            _ = connection.as_mut() => {}
            _ = shutdown => {
                connection.as_mut().graceful_shutdown();
                let _ = connection.await;
            }
        }
    });
    Served {
        requests,
        goaway: Some(goaway),
    }
}

fn channel(config: TriChannelConfig) -> (TriChannel, Arc<Pipes>, mpsc::UnboundedReceiver<DuplexStream>) {
    let (pipes, accepted) = Pipes::new(PIPE);
    (
        TriChannel::with_connector(ADDRESS, config, pipes.clone()),
        pipes,
        accepted,
    )
}

/// A call with a 5 s deadline, as the channel's `Service` impl makes it.
fn call(channel: &TriChannel, args: &'static [u8]) -> BoxFuture<Result<Response, RpcError>> {
    let key = ServiceKey::new("org.test.Echo", Some("1.0.0"), None);
    let mut invocation = Invocation::new(key, "echo", Bytes::from_static(args), Serialization::Bincode);
    invocation.set_deadline(Some(Instant::now() + Duration::from_secs(5)));
    Box::pin(channel.clone().invoke(invocation))
}

/// Connects `channel` with one answered call; the served connection.
async fn connected(channel: &TriChannel, accepted: &mut mpsc::UnboundedReceiver<DuplexStream>) -> Served {
    let first = tokio::spawn(call(channel, b"hello"));
    let mut served = serve(accept(accepted).await);
    assert_eq!(&served.request().await[..], b"hello");
    assert_eq!(&first.await.unwrap().unwrap().payload()[..], b"hello");
    served
}

/// Waits, a millisecond of (paused) time at a time, until `done` holds.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < WAIT, "gave up waiting for {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[test]
fn a_native_config_carries_over() {
    let native = crate::protocol::rpc::RpcChannelConfig {
        max_payload: 1,
        heartbeat: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(3),
        backoff_initial: Duration::from_secs(4),
        backoff_max: Duration::from_secs(5),
    };
    assert_eq!(
        TriChannelConfig::from(native),
        TriChannelConfig {
            max_payload: 1,
            heartbeat: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(3),
            backoff_initial: Duration::from_secs(4),
            backoff_max: Duration::from_secs(5),
        }
    );
}

#[tokio::test(start_paused = true)]
async fn calls_are_answered_over_one_connection() {
    let (channel, pipes, mut accepted) = channel(TriChannelConfig::default());
    assert_eq!(channel.health(), Health::Ready, "not tried yet");
    let mut served = connected(&channel, &mut accepted).await;
    let calls: Vec<_> = [&b"a"[..], b"b", b"c"]
        .into_iter()
        .map(|args| tokio::spawn(call(&channel, args)))
        .collect();
    for _ in 0..3 {
        served.request().await;
    }
    for (call, expected) in calls.into_iter().zip([b"a", b"b", b"c"]) {
        assert_eq!(&call.await.unwrap().unwrap().payload()[..], expected);
    }
    assert_eq!(pipes.attempts().len(), 1);
    assert_eq!(channel.health(), Health::Ready);
    assert_eq!(channel.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn an_oversized_answer_is_a_clear_error() {
    let config = TriChannelConfig {
        max_payload: 1024,
        ..TriChannelConfig::default()
    };
    let (channel, _pipes, mut accepted) = channel(config);
    let _served = connected(&channel, &mut accepted).await;
    let error = call(&channel, b"big").await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Decode, "{error}");
    assert!(
        error.message().contains("exceeds the payload limit of 1024 bytes"),
        "{error}"
    );
}

#[tokio::test(start_paused = true)]
async fn goaway_makes_the_channel_leaving_until_it_reconnects() {
    let (channel, pipes, mut accepted) = channel(TriChannelConfig::default());
    let mut served = connected(&channel, &mut accepted).await;
    // The provider shuts down; the probe's first attempt finds nobody.
    pipes.script([Attempt::Refuse]);
    served.goaway();
    until("the probe's first attempt", || pipes.attempts().len() == 2).await;
    assert_eq!(channel.health(), Health::Leaving);
    assert!(!channel.is_available());
    let error = call(&channel, b"x").await.unwrap_err();
    assert_eq!(error.outcome(), Outcome::NotSent, "{error}");
    // It comes back: the probe finds it after its backoff.
    let mut served = serve(accept(&mut accepted).await);
    let attempts = pipes.attempts();
    assert_backoff(attempts[2] - attempts[1], 1, Duration::from_millis(1));
    until("the probe to connect", || channel.health() == Health::Ready).await;
    let answered = tokio::spawn(call(&channel, b"back"));
    served.request().await;
    assert_eq!(&answered.await.unwrap().unwrap().payload()[..], b"back");
}

#[tokio::test(start_paused = true)]
async fn abandoning_fails_the_calls_in_flight_at_once_and_keeps_the_connection() {
    let (channel, pipes, mut accepted) = channel(TriChannelConfig::default());
    let mut served = connected(&channel, &mut accepted).await;
    let stalled = tokio::spawn(call(&channel, b"hang"));
    served.request().await;
    assert_eq!(channel.in_flight(), 1);
    let at = Instant::now();
    assert_eq!(channel.abandon_in_flight("the provider stalled"), 1);
    let error = stalled.await.unwrap().unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error}");
    assert_eq!(error.outcome(), Outcome::Unknown, "{error}");
    assert!(error.message().contains("the provider stalled"), "{error}");
    assert_eq!(at.elapsed(), Duration::ZERO);
    assert_eq!(channel.in_flight(), 0);

    let answered = tokio::spawn(call(&channel, b"next"));
    served.request().await;
    assert_eq!(&answered.await.unwrap().unwrap().payload()[..], b"next");
    assert_eq!(pipes.attempts().len(), 1, "the connection was kept");
}

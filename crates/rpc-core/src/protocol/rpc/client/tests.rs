//! The native channel over in-memory pipes, its provider played by the test
//! frame by frame, under a paused clock: timing is exact, and a wait that
//! nothing ends runs out instead of hanging.

use std::collections::HashSet;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, ReadHalf, WriteHalf};

use super::*;
use crate::error::Outcome;
use crate::invocation::ServiceKey;
use crate::protocol::connection::testing::{Attempt, Pipes, WAIT, accept, assert_backoff};
use crate::protocol::rpc::frame::READONLY_EVENT;
use crate::protocol::rpc::frame::{HEADER_LEN, split_request};
use crate::serialization::Serialization;

const ADDRESS: &str = "provider.test:20880";
const PIPE: usize = 64 * 1024;

/// The provider end of one connection.
struct Provider {
    frames: FramedRead<ReadHalf<DuplexStream>, FrameCodec>,
    write: WriteHalf<DuplexStream>,
}

impl Provider {
    async fn accept(accepted: &mut mpsc::UnboundedReceiver<DuplexStream>) -> Provider {
        let (read, write) = tokio::io::split(accept(accepted).await);
        Provider {
            frames: FramedRead::new(read, FrameCodec::new(DEFAULT_MAX_PAYLOAD)),
            write,
        }
    }

    /// The next frame the channel sent.
    async fn next(&mut self) -> (Header, Bytes) {
        match tokio::time::timeout(WAIT, self.frames.next()).await {
            Ok(Some(Ok(Decoded::Frame(header, body)))) => (header, body),
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    /// The next request: its id, method and arguments.
    async fn request(&mut self) -> (u64, String, Bytes) {
        let (header, body) = self.next().await;
        assert!(header.is_request() && !header.is_event(), "not a call: {header:?}");
        let (meta, args) = split_request(Serialization::Bincode, &body).unwrap();
        (header.id, meta.method.into_owned(), args)
    }

    async fn send(&mut self, frame: OutFrame) {
        let mut buf = BytesMut::new();
        frame.write_to(&mut buf);
        self.write.write_all(&buf).await.unwrap();
    }

    async fn answer(&mut self, id: u64, body: impl Into<Bytes>) {
        self.send(OutFrame::response(
            id,
            Status::Ok,
            Serialization::Bincode.id(),
            body.into(),
        ))
        .await;
    }
}

fn channel(config: RpcChannelConfig, pipe: usize) -> (RpcChannel, Arc<Pipes>, mpsc::UnboundedReceiver<DuplexStream>) {
    let (pipes, accepted) = Pipes::new(pipe);
    (
        RpcChannel::with_connector(ADDRESS, config, pipes.clone()),
        pipes,
        accepted,
    )
}

fn invocation(args: impl Into<Bytes>, deadline: Instant) -> Invocation {
    let key = ServiceKey::new("org.test.Echo", Some("1.0.0"), None);
    let mut invocation = Invocation::new(key, "echo", args.into(), Serialization::Bincode);
    invocation.set_deadline(Some(deadline));
    invocation
}

/// A call with a 5 s deadline, made as the channel's `Service` impls make
/// it: at once when connected, else waiting for a connection.
fn call(channel: &RpcChannel, args: impl Into<Bytes>) -> ServiceFuture<Result<Response, RpcError>> {
    call_by(channel, args, Instant::now() + Duration::from_secs(5))
}

fn call_by(
    channel: &RpcChannel,
    args: impl Into<Bytes>,
    deadline: Instant,
) -> ServiceFuture<Result<Response, RpcError>> {
    let invocation = invocation(args, deadline);
    match channel.call_if_connected(&invocation) {
        Some(future) => future,
        None => Box::pin(channel.clone().invoke(invocation)),
    }
}

/// Connects `channel` with one answered call; the provider end of the connection.
async fn connected(channel: &RpcChannel, accepted: &mut mpsc::UnboundedReceiver<DuplexStream>) -> Provider {
    let first = tokio::spawn(call(channel, "hello"));
    let mut provider = Provider::accept(accepted).await;
    let (id, _, _) = provider.request().await;
    provider.answer(id, "hello").await;
    first.await.unwrap().unwrap();
    provider
}

/// Waits, a millisecond of (paused) time at a time, until `done` holds.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < WAIT, "gave up waiting for {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_call_is_answered_and_the_next_reuses_the_connection() {
    let (channel, pipes, mut accepted) = channel(RpcChannelConfig::default(), PIPE);
    assert_eq!(channel.health(), Health::Ready, "not tried yet");
    assert!(pipes.attempts().is_empty(), "nothing connects before the first call");

    let first = tokio::spawn(call(&channel, "one"));
    let mut provider = Provider::accept(&mut accepted).await;
    let (header, body) = provider.next().await;
    assert!(header.is_request() && header.is_two_way() && !header.is_event());
    let (meta, args) = split_request(Serialization::Bincode, &body).unwrap();
    assert_eq!(meta.service, "org.test.Echo");
    assert_eq!(meta.version.as_deref(), Some("1.0.0"));
    assert_eq!(meta.method, "echo");
    assert!(meta.timeout_ms.is_some_and(|ms| ms > 0 && ms <= 5_000), "{meta:?}");
    assert_eq!(&args[..], b"one");
    provider.answer(header.id, "answer one").await;
    assert_eq!(&first.await.unwrap().unwrap().payload()[..], b"answer one");
    assert!(channel.is_connected());
    assert_eq!(channel.health(), Health::Ready);

    let second = tokio::spawn(call(&channel, "two"));
    let (id, _, args) = provider.request().await;
    assert_eq!(&args[..], b"two");
    provider.answer(id, "answer two").await;
    assert_eq!(&second.await.unwrap().unwrap().payload()[..], b"answer two");
    assert_eq!(pipes.attempts().len(), 1, "one connection for both calls");
    assert_eq!(channel.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn many_calls_share_the_connection_and_are_matched_when_answered_out_of_order() {
    let (channel, pipes, mut accepted) = channel(RpcChannelConfig::default(), PIPE);
    let calls: Vec<_> = (0..32u8)
        .map(|i| tokio::spawn(call(&channel, vec![i; usize::from(i) + 1])))
        .collect();
    let mut provider = Provider::accept(&mut accepted).await;
    let mut requests = Vec::new();
    for _ in 0..calls.len() {
        requests.push(provider.request().await);
    }
    let ids: HashSet<u64> = requests.iter().map(|(id, _, _)| *id).collect();
    assert_eq!(ids.len(), calls.len(), "every call has its own id");
    assert_eq!(channel.in_flight(), calls.len());
    // Answered in an order unrelated to the requests': odd ones last, reversed.
    requests.sort_by_key(|(_, _, args)| (args.len() % 2, std::cmp::Reverse(args.len())));
    for (id, _, args) in requests {
        provider.answer(id, args).await;
    }
    for (i, call) in calls.into_iter().enumerate() {
        let response = call.await.unwrap().unwrap();
        assert_eq!(
            &response.payload()[..],
            &vec![i as u8; i + 1][..],
            "call {i} got another's answer"
        );
    }
    assert_eq!(pipes.attempts().len(), 1, "the calls shared one connection attempt");
    assert_eq!(channel.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_broken_connection_fails_every_call_at_once_with_the_outcome_it_had() {
    // A small pipe: a large request fills it, and the writer waits with it.
    let (channel, _pipes, mut accepted) = channel(RpcChannelConfig::default(), 256);
    let answered_never = tokio::spawn(call(&channel, "sent"));
    let mut provider = accept(&mut accepted).await;
    // Read the first request raw: its bytes reached the provider.
    let mut header = [0u8; HEADER_LEN];
    provider.read_exact(&mut header).await.unwrap();
    let body_len = u32::from_be_bytes([header[12], header[13], header[14], header[15]]) as usize;
    provider.read_exact(&mut vec![0; body_len]).await.unwrap();

    // A request larger than the pipe: once its first bytes arrive, the
    // writer is stuck writing the rest.
    let half_written = tokio::spawn(call(&channel, vec![7u8; 4096]));
    provider.read_exact(&mut header).await.unwrap();
    // Queued behind it (registered and queued on their first poll): never written.
    let mut queued = [call(&channel, "queued 1"), call(&channel, "queued 2")];
    for call in &mut queued {
        assert!(futures::poll!(call).is_pending());
    }
    assert_eq!(channel.in_flight(), 4);

    let broke = Instant::now();
    drop(provider);
    for call in [answered_never, half_written] {
        let error = call.await.unwrap().unwrap_err();
        assert_eq!(error.kind(), ErrorKind::ConnectionLost, "{error}");
        assert_eq!(error.outcome(), Outcome::Unknown, "{error}");
    }
    for call in queued {
        let error = call.await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Closed, "{error}");
        assert_eq!(error.outcome(), Outcome::NotSent, "{error}");
        assert!(error.to_string().contains(ADDRESS), "{error}");
    }
    assert_eq!(
        broke.elapsed(),
        Duration::ZERO,
        "the calls failed at once, not at their deadlines"
    );
    assert_eq!(channel.in_flight(), 0);
    // It died young (the clock has not moved): a failed attempt, backed off.
    assert!(channel.is_backing_off());
    assert_eq!(channel.health(), Health::Unavailable);
}

#[tokio::test(start_paused = true)]
async fn a_failed_connect_is_retried_after_a_growing_jittered_backoff() {
    let (channel, pipes, mut accepted) = channel(RpcChannelConfig::default(), PIPE);
    pipes.script([Attempt::Refuse, Attempt::Refuse, Attempt::Refuse]);
    for failures in 1..=3u32 {
        let error = call(&channel, "x").await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Connect, "{error}");
        assert_eq!(error.outcome(), Outcome::NotSent, "{error}");
        assert!(
            error.message().contains("cannot connect to provider.test:20880"),
            "{error}"
        );
        assert!(channel.is_backing_off());
        assert_eq!(channel.health(), Health::Unavailable);
        // Calls during the backoff fail at once, without an attempt.
        let error = call(&channel, "x").await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Connect, "{error}");
        assert!(
            error.message().contains(&format!("after {failures} failed attempt(s)")),
            "{error}"
        );
        assert_eq!(pipes.attempts().len(), failures as usize);
        until("the backoff to end", || !channel.is_backing_off()).await;
        assert_eq!(
            channel.health(),
            Health::Ready,
            "the backoff is over: the next call connects"
        );
    }
    let answered = tokio::spawn(call(&channel, "x"));
    let mut provider = Provider::accept(&mut accepted).await;
    let (id, _, _) = provider.request().await;
    provider.answer(id, "y").await;
    answered.await.unwrap().unwrap();

    let attempts = pipes.attempts();
    assert_eq!(attempts.len(), 4);
    for (failures, pair) in (1..).zip(attempts.windows(2)) {
        assert_backoff(pair[1] - pair[0], failures, Duration::from_millis(1));
    }
}

#[tokio::test(start_paused = true)]
async fn a_lost_connection_is_probed_again_in_the_background_backed_off_only_when_it_died_young() {
    let (channel, pipes, mut accepted) = channel(RpcChannelConfig::default(), PIPE);
    let provider = connected(&channel, &mut accepted).await;
    let mut deaths = Vec::new();
    // Twice dead at once: backoffs of the first and second failure.
    drop(provider);
    deaths.push(Instant::now());
    let provider = accept(&mut accepted).await;
    drop(provider);
    deaths.push(Instant::now());
    let provider = accept(&mut accepted).await;
    until("the probe to connect", || channel.is_connected()).await;
    // A connection that lived resets the count and is replaced at once.
    tokio::time::sleep(Duration::from_secs(2)).await;
    drop(provider);
    deaths.push(Instant::now());
    let provider = accept(&mut accepted).await;
    // And the next young death starts the backoff over.
    drop(provider);
    deaths.push(Instant::now());
    let _provider = accept(&mut accepted).await;

    let attempts = pipes.attempts();
    assert_eq!(
        attempts.len(),
        5,
        "one connect per death, made by the probe: {attempts:?}"
    );
    let slack = Duration::from_millis(1);
    assert_backoff(attempts[1] - deaths[0], 1, slack);
    assert_backoff(attempts[2] - deaths[1], 2, slack);
    assert_eq!(attempts[3], deaths[2], "a healthy connection's end costs no backoff");
    assert_backoff(attempts[4] - deaths[3], 1, slack);
}

#[tokio::test(start_paused = true)]
async fn the_read_only_event_makes_the_channel_leaving_and_refuses_new_calls_unsent() {
    let (channel, pipes, mut accepted) = channel(RpcChannelConfig::default(), PIPE);
    let mut provider = connected(&channel, &mut accepted).await;
    let before = tokio::spawn(call(&channel, "before"));
    let (before_id, _, _) = provider.request().await;

    provider.send(OutFrame::event(77, true, true, READONLY_EVENT)).await;
    // The channel answers the event once it is read-only.
    let (header, _) = provider.next().await;
    assert!(
        header.is_event() && !header.is_request() && header.id == 77,
        "{header:?}"
    );
    assert_eq!(channel.health(), Health::Leaving);
    assert!(!channel.is_connected());

    let error = call(&channel, "after").await.unwrap_err();
    assert_eq!(error.status(), Some(Status::ChannelInactive), "{error}");
    assert_eq!(error.outcome(), Outcome::NotSent, "{error}");
    assert!(error.message().contains("shutting down"), "{error}");
    // The call sent before the event is still answered.
    provider.answer(before_id, "ran").await;
    assert_eq!(&before.await.unwrap().unwrap().payload()[..], b"ran");
    // Nothing was sent after the event's answer.
    let more = tokio::time::timeout(Duration::from_secs(1), provider.frames.next()).await;
    assert!(more.is_err(), "sent after the read-only event: {more:?}");

    // The provider closes; it is leaving, not failing, until a new connection is made.
    pipes.script([Attempt::Refuse]);
    drop(provider);
    until("the probe's first attempt", || pipes.attempts().len() == 2).await;
    assert_eq!(channel.health(), Health::Leaving);
    let _restarted = accept(&mut accepted).await;
    until("the probe to reconnect", || channel.is_connected()).await;
    assert_eq!(channel.health(), Health::Ready);
}

#[tokio::test(start_paused = true)]
async fn a_leaving_provider_stays_leaving_until_a_new_connection_lives() {
    let (channel, pipes, mut accepted) = channel(RpcChannelConfig::default(), PIPE);
    let mut provider = connected(&channel, &mut accepted).await;
    provider.send(OutFrame::event(9, true, true, READONLY_EVENT)).await;
    let _ = provider.next().await;
    drop(provider);
    // The probe reconnects at once; the closing provider accepted at the
    // last moment and drops the connection at once.
    let last_moment = accept(&mut accepted).await;
    until("the probe to connect", || channel.is_connected()).await;
    drop(last_moment);
    until("the young death", || channel.is_backing_off()).await;
    assert_eq!(
        channel.health(),
        Health::Leaving,
        "a young death says nothing of a return"
    );

    // Restarted: a connection that lives a healthy lifetime, then ends, clears it.
    let restarted = accept(&mut accepted).await;
    until("the probe to connect", || channel.is_connected()).await;
    assert_eq!(channel.health(), Health::Ready);
    tokio::time::sleep(Duration::from_secs(2)).await;
    pipes.script([Attempt::Refuse]);
    drop(restarted);
    until("the probe's attempt", || pipes.attempts().len() == 4).await;
    assert!(channel.is_backing_off());
    assert_eq!(channel.health(), Health::Unavailable, "failing now, not leaving");
}

#[tokio::test(start_paused = true)]
async fn idle_connections_send_heartbeats_and_a_silent_provider_is_disconnected() {
    let heartbeat = Duration::from_secs(1);
    let config = RpcChannelConfig {
        heartbeat,
        ..RpcChannelConfig::default()
    };
    let (channel, _pipes, mut accepted) = channel(config, PIPE);
    let mut provider = connected(&channel, &mut accepted).await;
    let mut last_heard = Instant::now();
    for _ in 0..3 {
        let (header, body) = provider.next().await;
        assert!(
            header.is_event() && header.is_request() && header.is_two_way() && body.is_empty(),
            "not a heartbeat: {header:?}"
        );
        let idle = last_heard.elapsed();
        assert!(
            idle >= heartbeat && idle <= heartbeat * 2,
            "heartbeat after {idle:?} idle"
        );
        provider.send(OutFrame::event(header.id, false, false, b"")).await;
        last_heard = Instant::now();
    }
    assert!(channel.is_connected(), "answered heartbeats keep the connection");

    // The provider goes silent with a call in flight.
    let waiting = tokio::spawn(call_by(&channel, "x", Instant::now() + Duration::from_secs(60)));
    let _ = provider.request().await;
    let error = waiting.await.unwrap().unwrap_err();
    assert_eq!(error.kind(), ErrorKind::ConnectionLost, "{error}");
    assert!(error.message().contains("silent"), "{error}");
    let silent = last_heard.elapsed();
    assert!(
        silent >= heartbeat * 3 && silent <= heartbeat * 4,
        "disconnected after {silent:?} of silence"
    );
}

#[tokio::test(start_paused = true)]
async fn an_answer_to_no_waiting_call_is_dropped_without_harm() {
    let (channel, pipes, mut accepted) = channel(RpcChannelConfig::default(), PIPE);
    let mut provider = connected(&channel, &mut accepted).await;
    let waiting = tokio::spawn(call(&channel, "mine"));
    let (id, _, _) = provider.request().await;
    provider.answer(id + 1_000, "stray").await;
    provider
        .send(OutFrame::response(
            u64::MAX,
            Status::ServiceError,
            Serialization::Bincode.id(),
            Bytes::from_static(b"stray error"),
        ))
        .await;
    provider.send(OutFrame::event(5, false, false, b"")).await;
    provider.answer(id, "mine").await;
    assert_eq!(&waiting.await.unwrap().unwrap().payload()[..], b"mine");
    assert!(channel.is_connected());
    assert_eq!(channel.in_flight(), 0);
    assert_eq!(pipes.attempts().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_oversized_answer_fails_its_call_clearly_and_keeps_the_connection() {
    let config = RpcChannelConfig {
        max_payload: 1024,
        ..RpcChannelConfig::default()
    };
    let (channel, pipes, mut accepted) = channel(config, PIPE);
    let mut provider = connected(&channel, &mut accepted).await;
    let big = tokio::spawn(call(&channel, "big"));
    let (id, _, _) = provider.request().await;
    provider.answer(id, vec![1u8; 4096]).await;
    let error = big.await.unwrap().unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Decode, "{error}");
    assert!(
        error.message().contains("4096 bytes exceeds the payload limit"),
        "{error}"
    );

    let next = tokio::spawn(call(&channel, "small"));
    let (id, _, _) = provider.request().await;
    provider.answer(id, "fine").await;
    assert_eq!(&next.await.unwrap().unwrap().payload()[..], b"fine");
    assert_eq!(pipes.attempts().len(), 1, "the connection survived");
}

#[tokio::test(start_paused = true)]
async fn calls_that_cannot_be_sent_fail_unsent_and_say_why() {
    let config = RpcChannelConfig {
        max_payload: 1024,
        ..RpcChannelConfig::default()
    };
    let (channel, pipes, _accepted) = channel(config, PIPE);
    let error = call_by(&channel, "late", Instant::now()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Expired, "{error}");
    assert_eq!(error.outcome(), Outcome::NotSent);
    assert!(pipes.attempts().is_empty(), "an expired call does not connect");

    pipes.script([Attempt::Hang]);
    let started = Instant::now();
    let error = call_by(&channel, "x", started + Duration::from_millis(300))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Connect, "{error}");
    assert!(error.message().contains("before the call's deadline"), "{error}");
    assert_eq!(started.elapsed(), Duration::from_millis(300));
    assert_eq!(channel.health(), Health::Unavailable, "still connecting");
    // The attempt gives up at the connect timeout (3 s) and backs off.
    let error = call(&channel, "x").await.unwrap_err();
    assert!(
        error.message().contains("within the connect timeout of 3000 ms"),
        "{error}"
    );
    assert_eq!(started.elapsed(), Duration::from_secs(3));
    assert!(channel.is_backing_off());

    until("the backoff to end", || !channel.is_backing_off()).await;
    let error = call(&channel, vec![0u8; 2048]).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::PayloadTooLarge, "{error}");
    assert_eq!(error.outcome(), Outcome::NotSent);
}

#[tokio::test(start_paused = true)]
async fn abandoning_fails_waiting_calls_at_once_and_keeps_the_connection() {
    let (channel, pipes, mut accepted) = channel(RpcChannelConfig::default(), PIPE);
    let mut provider = connected(&channel, &mut accepted).await;
    let stalled = tokio::spawn(call(&channel, "stalled"));
    let (id, _, _) = provider.request().await;
    let at = Instant::now();
    assert_eq!(channel.abandon_in_flight("the provider stalled"), 1);
    let error = stalled.await.unwrap().unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error}");
    assert_eq!(error.outcome(), Outcome::Unknown);
    assert!(error.message().contains("the provider stalled"), "{error}");
    assert_eq!(at.elapsed(), Duration::ZERO);
    // Its late answer is dropped; the connection serves on, and answers pings.
    provider.answer(id, "late").await;
    let ping = tokio::spawn({
        let channel = channel.clone();
        async move { channel.ping(Duration::from_secs(1)).await }
    });
    let (header, _) = provider.next().await;
    assert!(header.is_event() && header.is_request());
    provider.send(OutFrame::event(header.id, false, false, b"")).await;
    assert!(ping.await.unwrap(), "an answered heartbeat");
    let unanswered = tokio::spawn({
        let channel = channel.clone();
        async move { channel.ping(Duration::from_secs(1)).await }
    });
    let _ = provider.next().await;
    assert!(!unanswered.await.unwrap(), "no answer within the timeout");
    assert_eq!(channel.in_flight(), 0, "the unanswered ping left no entry");
    assert_eq!(pipes.attempts().len(), 1);

    // A call waiting for a connection gives up too, not sent.
    channel.disconnect();
    pipes.script([Attempt::Hang]);
    let waiting = tokio::spawn(call(&channel, "x"));
    until("the attempt", || pipes.attempts().len() == 2).await;
    let at = Instant::now();
    channel.abandon_in_flight("the provider stalled");
    let error = waiting.await.unwrap().unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Connect, "{error}");
    assert!(error.message().contains("gave up connecting"), "{error}");
    assert_eq!(at.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_last_handle_closes_the_connection() {
    let (channel, _pipes, mut accepted) = channel(RpcChannelConfig::default(), PIPE);
    let mut provider = connected(&channel, &mut accepted).await;
    let weak = channel.downgrade();
    drop(channel);
    assert!(weak.upgrade().is_none());
    let end = tokio::time::timeout(WAIT, provider.frames.next()).await.unwrap();
    assert!(end.is_none(), "the connection closed: {end:?}");
}

//! What client and server connections share: the writer loop (write
//! coalescing, heartbeats, silence detection) and the close signal.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::Poll;
use std::time::Duration;

use bytes::BytesMut;
use futures::FutureExt;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior, Sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

use super::frame::{OutFrame, READONLY_EVENT};

/// How many queued frames the writer coalesces into one write at most.
const BATCH: usize = 256;
/// Frames that make a write worth doing without first waiting for more.
const WORTH_A_WRITE: usize = 16;
/// Capacity of a connection's outbound queue.
pub(crate) const QUEUE: usize = 4096;

/// State shared by a connection's reader, writer and users.
#[derive(Debug)]
pub(crate) struct ConnShared {
    /// The peer's address, for errors and logs.
    pub(crate) peer: String,
    /// Cancelled when the connection must close now.
    pub(crate) close: CancellationToken,
    /// Cancelled when the writer should flush what is queued, then close.
    pub(crate) drain: CancellationToken,
    reason: Mutex<Option<String>>,
    /// Set by every read; the writer's heartbeat ticker clears it and keeps the time.
    heard: AtomicBool,
    next_event_id: AtomicU64,
    /// Whether the peer speaks `dubbo` (Hessian2, Java): then events carry
    /// Hessian bodies and serialization id 2, which Java reads.
    dubbo: AtomicBool,
}

impl ConnShared {
    pub(crate) fn new(peer: String) -> Self {
        ConnShared {
            peer,
            close: CancellationToken::new(),
            drain: CancellationToken::new(),
            reason: Mutex::new(None),
            heard: AtomicBool::new(false),
            next_event_id: AtomicU64::new(1 << 63),
            dubbo: AtomicBool::new(false),
        }
    }

    /// Marks the peer as a `dubbo` one (it sent a Hessian2 frame, or the
    /// channel was made for `dubbo://`).
    pub(crate) fn set_dubbo(&self) {
        self.dubbo.store(true, Ordering::Relaxed);
    }

    /// Whether the peer speaks `dubbo`.
    pub(crate) fn is_dubbo(&self) -> bool {
        self.dubbo.load(Ordering::Relaxed)
    }

    /// The answer to the peer's event request `id`, in the peer's protocol.
    pub(crate) fn event_answer(&self, id: u64) -> OutFrame {
        if self.is_dubbo() {
            crate::protocol::dubbo::event_frame(id, false, false, crate::protocol::dubbo::NULL_BODY)
        } else {
            OutFrame::event(id, false, false, b"")
        }
    }

    /// Whether an event request's `body` is the read-only event, in the peer's protocol.
    pub(crate) fn is_readonly_event(&self, body: &[u8]) -> bool {
        if self.is_dubbo() {
            body == crate::protocol::dubbo::READONLY_BODY
        } else {
            body == READONLY_EVENT
        }
    }

    /// A two-way event request in the peer's protocol: a heartbeat, or the
    /// read-only event (`readonly`).
    pub(crate) fn event_request(&self, readonly: bool) -> OutFrame {
        self.event_request_with(self.next_event_id(), readonly)
    }

    /// [`event_request`](Self::event_request) with the event id `id`.
    pub(crate) fn event_request_with(&self, id: u64, readonly: bool) -> OutFrame {
        if self.is_dubbo() {
            let body = if readonly {
                crate::protocol::dubbo::READONLY_BODY
            } else {
                crate::protocol::dubbo::NULL_BODY
            };
            crate::protocol::dubbo::event_frame(id, true, true, body)
        } else {
            OutFrame::event(id, true, true, if readonly { READONLY_EVENT } else { b"" })
        }
    }

    /// Closes the connection, remembering the first reason given.
    pub(crate) fn close(&self, reason: impl Into<String>) {
        if let Ok(mut r) = self.reason.lock() {
            r.get_or_insert_with(|| reason.into());
        }
        self.close.cancel();
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.close.is_cancelled()
    }

    /// Why the connection closed.
    pub(crate) fn reason(&self) -> String {
        self.reason
            .lock()
            .ok()
            .and_then(|r| r.clone())
            .unwrap_or_else(|| "connection closed".to_string())
    }

    /// Records that the peer sent something (a store: no clock read per frame).
    pub(crate) fn touch(&self) {
        self.heard.store(true, Ordering::Relaxed);
    }

    /// Whether the peer sent anything since the last call.
    fn heard_since_last_asked(&self) -> bool {
        self.heard.swap(false, Ordering::Relaxed)
    }

    pub(crate) fn next_event_id(&self) -> u64 {
        self.next_event_id.fetch_add(1, Ordering::Relaxed)
    }
}

/// Queues `frame` for the writer, waiting for room only when the queue is
/// full (`try_send` first: the common case costs no future). Fails when the
/// connection's writer is gone.
pub(crate) async fn enqueue(tx: &mpsc::Sender<OutFrame>, frame: OutFrame) -> Result<(), ()> {
    match tx.try_send(frame) {
        Ok(()) => Ok(()),
        Err(mpsc::error::TrySendError::Full(frame)) => tx.send(frame).await.map_err(|_| ()),
        Err(mpsc::error::TrySendError::Closed(_)) => Err(()),
    }
}

/// Writes queued frames until the connection closes, coalescing whatever is
/// queued into one write. Sends a heartbeat when the peer has been silent for
/// `heartbeat`, and closes the connection when it has been silent for three,
/// or when a write made no progress for three (a peer that stopped reading).
///
/// Returns the receiver, closed, so the owner can fail frames never written.
pub(crate) async fn run_writer<W>(
    mut io: W,
    mut rx: mpsc::Receiver<OutFrame>,
    shared: &ConnShared,
    heartbeat: Duration,
) -> mpsc::Receiver<OutFrame>
where
    W: AsyncWrite + Unpin,
{
    // A write that makes no progress for this long means a peer that stopped
    // reading (the ticker below does not run while a write waits).
    let stall = heartbeat.saturating_mul(3);
    let mut ticker = tokio::time::interval_at(Instant::now() + heartbeat, heartbeat);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // When the peer was last heard from, as seen by the ticker: accurate to one heartbeat.
    let mut last_heard = Instant::now();
    let mut batch = Vec::with_capacity(BATCH);
    let mut buf = BytesMut::with_capacity(64 * 1024);
    // Made once: a new one per batch would register with the token under a lock.
    let closed = shared.close.cancelled();
    let draining = shared.drain.cancelled();
    tokio::pin!(closed, draining);
    loop {
        tokio::select! {
            biased;
            _ = &mut closed => break,
            _ = &mut draining => {
                rx.close();
                while let Ok(frame) = rx.try_recv() {
                    batch.push(frame);
                }
                if let Err(e) = write_batch(&mut io, &mut batch, &mut buf, closed.as_mut(), stall).await {
                    shared.close(format!("write to {} failed: {e}", shared.peer));
                }
                let _ = io.shutdown().await;
                shared.close("closed after draining");
                break;
            }
            n = rx.recv_many(&mut batch, BATCH) => {
                if n == 0 {
                    shared.close("connection dropped");
                    break;
                }
                // Few frames so far: let the tasks that are ready to send run
                // first, so one write carries their frames too. Under load this
                // turns a syscall per frame into a syscall per batch; idle, it
                // costs one trip through the scheduler, which a batch already
                // worth one write does without.
                if n < WORTH_A_WRITE {
                    tokio::task::yield_now().await;
                    // Whatever is queued now, in one go: the queue's permits
                    // are returned once for all (`try_recv` takes a lock per frame).
                    let room = BATCH - batch.len();
                    let _ = rx.recv_many(&mut batch, room).now_or_never();
                }
                if let Err(e) = write_batch(&mut io, &mut batch, &mut buf, closed.as_mut(), stall).await {
                    shared.close(format!("write to {} failed: {e}", shared.peer));
                    break;
                }
            }
            now = ticker.tick() => {
                if shared.heard_since_last_asked() {
                    last_heard = now;
                }
                let silent = now.saturating_duration_since(last_heard);
                if silent >= heartbeat * 3 {
                    shared.close(format!(
                        "{} silent for {} ms (3 heartbeats of {} ms)",
                        shared.peer,
                        silent.as_millis(),
                        heartbeat.as_millis()
                    ));
                    break;
                }
                if silent >= heartbeat {
                    batch.push(shared.event_request(false));
                    if let Err(e) = write_batch(&mut io, &mut batch, &mut buf, closed.as_mut(), stall).await {
                        shared.close(format!("heartbeat to {} failed: {e}", shared.peer));
                        break;
                    }
                }
            }
        }
    }
    rx.close();
    rx
}

async fn write_batch<W>(
    io: &mut W,
    batch: &mut Vec<OutFrame>,
    buf: &mut BytesMut,
    mut closed: Pin<&mut WaitForCancellationFuture<'_>>,
    stall: Duration,
) -> std::io::Result<()>
where
    W: AsyncWrite + Unpin,
{
    buf.clear();
    for frame in batch.drain(..) {
        frame.write_to(buf);
    }
    if buf.is_empty() {
        return Ok(());
    }
    let mut written = 0;
    // Armed only while a write waits: most writes complete at once, no timer for them.
    let mut stalled: Option<Pin<Box<Sleep>>> = None;
    let result = std::future::poll_fn(|cx| {
        loop {
            if closed.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(std::io::Error::other("connection closed")));
            }
            match Pin::new(&mut *io).poll_write(cx, &buf[written..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    written += n;
                    stalled = None;
                    if written == buf.len() {
                        return Poll::Ready(Ok(()));
                    }
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    let timer = stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(stall)));
                    if timer.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Err(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            format!("the peer read nothing for {} ms", stall.as_millis()),
                        )));
                    }
                    return Poll::Pending;
                }
            }
        }
    })
    .await;
    // Do not keep a huge buffer around after one large frame.
    if buf.capacity() > 1024 * 1024 {
        *buf = BytesMut::with_capacity(64 * 1024);
    }
    result
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;
    use std::task::Context;

    use bytes::Bytes;
    use futures::StreamExt;
    use tokio::io::{AsyncRead, DuplexStream};
    use tokio_util::codec::FramedRead;

    use super::*;
    use crate::error::Status;
    use crate::protocol::rpc::frame::{Decoded, FrameCodec};

    const HEARTBEAT: Duration = Duration::from_secs(1);

    /// The write half of a duplex pipe, counting the writes that moved bytes.
    struct Counting {
        io: DuplexStream,
        writes: Arc<AtomicUsize>,
    }

    impl AsyncWrite for Counting {
        fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
            let polled = Pin::new(&mut self.io).poll_write(cx, buf);
            if let Poll::Ready(Ok(n)) = polled
                && n > 0
            {
                self.writes.fetch_add(1, Ordering::SeqCst);
            }
            polled
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.io).poll_flush(cx)
        }

        fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.io).poll_shutdown(cx)
        }
    }

    /// A writer over a pipe of `capacity` bytes, the peer's end to read from,
    /// and the count of writes.
    fn pipe(capacity: usize) -> (Counting, FramedRead<DuplexStream, FrameCodec>, Arc<AtomicUsize>) {
        let (ours, theirs) = tokio::io::duplex(capacity);
        let writes = Arc::new(AtomicUsize::new(0));
        let writer = Counting {
            io: ours,
            writes: writes.clone(),
        };
        (writer, FramedRead::new(theirs, FrameCodec::new(1 << 20)), writes)
    }

    fn response(id: u64) -> OutFrame {
        OutFrame::response(id, Status::Ok, 6, Bytes::from(format!("reply {id}")))
    }

    async fn next_frame<R: AsyncRead + Unpin>(peer: &mut FramedRead<R, FrameCodec>) -> (u64, Bytes) {
        match tokio::time::timeout(Duration::from_secs(10), peer.next()).await {
            Ok(Some(Ok(Decoded::Frame(header, body)))) => (header.id, body),
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn what_is_queued_together_goes_out_in_one_write_in_order() {
        let (writer, mut peer, writes) = pipe(1 << 20);
        let (tx, rx) = mpsc::channel(QUEUE);
        for id in 1..=20 {
            enqueue(&tx, response(id)).await.unwrap();
        }
        let shared = Arc::new(ConnShared::new("peer".into()));
        let task = tokio::spawn({
            let shared = shared.clone();
            async move { run_writer(writer, rx, &shared, HEARTBEAT).await }
        });
        for id in 1..=20 {
            let (got, body) = next_frame(&mut peer).await;
            assert_eq!(got, id);
            assert_eq!(body, Bytes::from(format!("reply {id}")));
        }
        assert_eq!(writes.load(Ordering::SeqCst), 1, "twenty queued frames, one write");
        drop(tx);
        let rx = task.await.unwrap();
        assert!(rx.is_closed());
        assert!(shared.is_closed());
        assert_eq!(shared.reason(), "connection dropped");
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_peer_gets_heartbeats_then_is_closed_after_three() {
        let (writer, mut peer, _) = pipe(1 << 20);
        let (_tx, rx) = mpsc::channel(QUEUE);
        let shared = Arc::new(ConnShared::new("peer".into()));
        let started = Instant::now();
        let task = tokio::spawn({
            let shared = shared.clone();
            async move { run_writer(writer, rx, &shared, HEARTBEAT).await }
        });
        let (id, body) = next_frame(&mut peer).await;
        assert!(id >= 1 << 63, "an event id");
        assert!(body.is_empty(), "a heartbeat has no body");
        assert_eq!(started.elapsed(), HEARTBEAT);
        task.await.unwrap();
        assert_eq!(started.elapsed(), HEARTBEAT * 3);
        assert!(
            shared.reason().contains("silent for 3000 ms (3 heartbeats of 1000 ms)"),
            "{}",
            shared.reason()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_heard_from_is_neither_pinged_nor_closed() {
        let (writer, _peer, writes) = pipe(1 << 20);
        let (_tx, rx) = mpsc::channel(QUEUE);
        let shared = Arc::new(ConnShared::new("peer".into()));
        let task = tokio::spawn({
            let shared = shared.clone();
            async move { run_writer(writer, rx, &shared, HEARTBEAT).await }
        });
        for _ in 0..10 {
            shared.touch();
            tokio::time::sleep(HEARTBEAT / 2).await;
        }
        assert!(!shared.is_closed());
        assert_eq!(writes.load(Ordering::SeqCst), 0, "no heartbeat to a peer that talks");
        shared.close("done");
        task.await.unwrap();
        assert_eq!(shared.reason(), "done", "the first reason given is kept");
    }

    #[tokio::test(start_paused = true)]
    async fn draining_writes_what_is_queued_then_closes() {
        let (writer, mut peer, _) = pipe(1 << 20);
        let (tx, rx) = mpsc::channel(QUEUE);
        let shared = Arc::new(ConnShared::new("peer".into()));
        enqueue(&tx, response(7)).await.unwrap();
        shared.drain.cancel();
        let rx = run_writer(writer, rx, &shared, HEARTBEAT).await;
        assert_eq!(next_frame(&mut peer).await.0, 7);
        assert!(peer.next().await.is_none(), "the write side was shut down");
        assert_eq!(shared.reason(), "closed after draining");
        assert!(rx.is_closed());
        assert!(
            enqueue(&tx, response(8)).await.is_err(),
            "nothing is queued after the drain"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_stops_reading_is_closed_after_three_heartbeats() {
        // A 64-byte pipe nobody reads: the first write fills it.
        let (writer, _peer, _) = pipe(64);
        let (tx, rx) = mpsc::channel(QUEUE);
        let shared = Arc::new(ConnShared::new("peer".into()));
        for id in 1..=20 {
            enqueue(&tx, response(id)).await.unwrap();
        }
        let started = Instant::now();
        run_writer(writer, rx, &shared, HEARTBEAT).await;
        assert_eq!(started.elapsed(), HEARTBEAT * 3);
        assert!(
            shared.reason().contains("the peer read nothing for 3000 ms"),
            "{}",
            shared.reason()
        );
    }
}

//! From an accepted socket to a protocol: wait for the connection's first
//! byte, give it to the first protocol that claims it, and hold that protocol's
//! first message (its handshake) to [`ServerConfig::handshake_timeout`].
//!
//! [`ServerConfig::handshake_timeout`]: super::ServerConfig::handshake_timeout

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::Notify;
use tokio::time::Sleep;

use super::{PROTOCOLS, ServerShared};

/// Tracks a protocol's first message (a native frame header, an HTTP/2
/// preface, an HTTP/1 request head) as its bytes arrive, so [`Handshake`] can
/// tell when it is complete without knowing the protocol.
pub(crate) trait Greeting: Send {
    /// Takes note of `bytes`, the next bytes read; true once the first
    /// message is complete (nothing is tracked after that).
    fn complete_after(&mut self, bytes: &[u8]) -> bool;

    /// What is awaited, for the timeout's error ("frame header").
    fn awaited(&self) -> &'static str;
}

/// Serves one accepted connection: waits for its first byte and hands it to
/// the protocol that claims it, so every port speaks every protocol.
///
/// A connection that sends nothing is closed after three heartbeats of
/// silence, when the server closes, or, once the server is shutting down, after
/// [`ServerConfig::shutdown_quiet`](super::ServerConfig::shutdown_quiet) (its
/// client may have been about to send its first call).
pub(super) async fn serve_connection(stream: TcpStream, peer: SocketAddr, server: Arc<ServerShared>) {
    let _ = stream.set_nodelay(true);
    let mut first = [0u8; 1];
    let idle = server.config.heartbeat.saturating_mul(3);
    let quiet_after_shutdown = async {
        server.shutdown.leaving().await;
        tokio::time::sleep(server.config.shutdown_quiet).await;
    };
    let peeked = tokio::select! {
        peeked = tokio::time::timeout(idle, stream.peek(&mut first)) => peeked,
        _ = server.shutdown.closing() => return,
        _ = server.shutdown.draining() => return,
        _ = quiet_after_shutdown => {
            tracing::debug!(%peer, "closing a connection that sent nothing before the shutdown");
            return;
        }
    };
    match peeked {
        Ok(Ok(1..)) => match PROTOCOLS.iter().find(|protocol| protocol.claims(first[0])) {
            Some(protocol) => {
                let stream = Handshake::new(stream, protocol.greeting(), server.config.handshake_timeout);
                protocol.serve(stream, peer, server).await;
            }
            None => tracing::debug!(%peer, first = first[0], "closing a connection no protocol claims"),
        },
        Ok(Ok(_)) => tracing::debug!(%peer, "connection closed before sending anything"),
        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "connection failed before sending anything"),
        Err(_) => tracing::debug!(%peer, "closing a connection silent for three heartbeats"),
    }
}

/// Whether a connection's first message has fully arrived (been read), for
/// whoever must wait for that: a protocol that cannot announce its leaving
/// before it knows what its peer speaks (hyper drops a connection told to
/// shut down while it still reads the HTTP version, request and all).
#[derive(Debug, Clone, Default)]
pub(crate) struct Greeted(Arc<GreetedState>);

#[derive(Debug, Default)]
struct GreetedState {
    done: AtomicBool,
    changed: Notify,
}

impl Greeted {
    fn set(&self) {
        self.0.done.store(true, Ordering::Release);
        self.0.changed.notify_waiters();
    }

    /// Whether the first message has arrived.
    pub(crate) fn is_done(&self) -> bool {
        self.0.done.load(Ordering::Acquire)
    }

    /// Resolves once the first message has arrived (at once if it has).
    pub(crate) async fn wait(&self) {
        let changed = self.0.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        if !self.is_done() {
            changed.await;
        }
    }
}

/// A connection's reads, failed with [`std::io::ErrorKind::TimedOut`] when its
/// protocol's first message ([`Greeting`]) has not fully arrived by a deadline
/// set when it was made (when the connection's first byte arrived). Once the
/// first message is complete it only passes reads (and writes) through.
pub(crate) struct Handshake<S> {
    io: S,
    /// `None` once the first message is complete, and the deadline with it.
    pending: Option<Pending>,
    limit: Duration,
    greeted: Greeted,
}

struct Pending {
    greeting: Box<dyn Greeting>,
    deadline: Pin<Box<Sleep>>,
}

impl<S> std::fmt::Debug for Handshake<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handshake")
            .field("awaiting", &self.pending.as_ref().map(|p| p.greeting.awaited()))
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl<S> Handshake<S> {
    /// Reads of `io`, whose `greeting` must complete within `limit` from now.
    pub(crate) fn new(io: S, greeting: Box<dyn Greeting>, limit: Duration) -> Self {
        Handshake {
            io,
            pending: Some(Pending {
                greeting,
                deadline: Box::pin(tokio::time::sleep(limit)),
            }),
            limit,
            greeted: Greeted::default(),
        }
    }

    /// Tells when the first message has arrived, after `self` is handed on.
    pub(crate) fn greeted(&self) -> Greeted {
        self.greeted.clone()
    }
}

impl Handshake<TcpStream> {
    /// The read half, still held to the deadline, and the write half: owned
    /// halves, which cost no lock per read or write.
    pub(crate) fn into_split(self) -> (Handshake<OwnedReadHalf>, OwnedWriteHalf) {
        let (read, write) = self.io.into_split();
        let read = Handshake {
            io: read,
            pending: self.pending,
            limit: self.limit,
            greeted: self.greeted,
        };
        (read, write)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Handshake<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        let Some(pending) = this.pending.as_mut() else {
            return Pin::new(&mut this.io).poll_read(cx, buf);
        };
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if pending.greeting.complete_after(&buf.filled()[before..]) {
                    this.pending = None;
                    this.greeted.set();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match pending.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "the connection's first {} did not arrive within {} ms of its first byte",
                        pending.greeting.awaited(),
                        this.limit.as_millis()
                    ),
                ))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Handshake<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::time::Instant;

    /// Complete after `len` bytes.
    struct Fixed {
        len: usize,
        seen: usize,
    }

    impl Greeting for Fixed {
        fn complete_after(&mut self, bytes: &[u8]) -> bool {
            self.seen += bytes.len();
            self.seen >= self.len
        }

        fn awaited(&self) -> &'static str {
            "test greeting"
        }
    }

    fn fixed(len: usize) -> Box<dyn Greeting> {
        Box::new(Fixed { len, seen: 0 })
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_handshake_times_out_and_a_complete_one_never_does() {
        let limit = Duration::from_secs(5);
        let mut buf = [0u8; 64];
        let (mut client, io) = tokio::io::duplex(1024);
        let mut stalled = Handshake::new(io, fixed(24), limit);
        client.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
        assert_eq!(stalled.read(&mut buf).await.unwrap(), 16);
        let started = Instant::now();
        let error = stalled.read(&mut buf).await.unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::TimedOut, "{error}");
        assert!(error.to_string().contains("first test greeting"), "{error}");
        assert_eq!(started.elapsed(), limit);

        let (mut client, io) = tokio::io::duplex(1024);
        let mut complete = Handshake::new(io, fixed(16), limit);
        let greeted = complete.greeted();
        let waiter = tokio::spawn({
            let greeted = greeted.clone();
            async move { greeted.wait().await }
        });
        client.write_all(&[0xda; 16]).await.unwrap();
        assert!(!greeted.is_done());
        assert_eq!(complete.read(&mut buf).await.unwrap(), 16);
        assert!(greeted.is_done());
        tokio::time::timeout(Duration::from_millis(1), waiter)
            .await
            .unwrap()
            .unwrap();
        // Silent for far longer than the limit: the handshake is done, no timeout.
        let read = tokio::spawn(async move { complete.read(&mut buf).await });
        tokio::time::sleep(limit * 10).await;
        client.write_all(b"later").await.unwrap();
        assert_eq!(read.await.unwrap().unwrap(), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_runs_from_creation_across_several_reads() {
        let limit = Duration::from_secs(5);
        let mut buf = [0u8; 64];
        let (mut client, io) = tokio::io::duplex(1024);
        let mut handshake = Handshake::new(io, fixed(16), limit);
        let started = Instant::now();
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            client.write_all(b"abc").await.unwrap();
            assert_eq!(handshake.read(&mut buf).await.unwrap(), 3);
        }
        // A trickle does not extend it: 2 s are left, not 5.
        let error = handshake.read(&mut buf).await.unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), limit);
    }
}

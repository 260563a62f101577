//! The transport under the client channels: [`Connector`] opens byte streams,
//! [`Io`] is one of them.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::FutureExt;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::invoker::BoxFuture;

/// Opens the byte streams a client channel runs its protocol over.
///
/// A channel asks its connector for a stream whenever it (re)connects; the
/// channel bounds the attempt by its connect timeout (dropping the future
/// when it runs out), handles the errors (a failed attempt is a not-sent
/// [`Connect`](crate::ErrorKind::Connect) error and a backoff) and owns the
/// stream from then on. [`TcpConnector`] is the default; tests and custom
/// transports (in-memory pipes, TLS, Unix sockets) bring their own.
pub trait Connector: fmt::Debug + Send + Sync + 'static {
    /// A new stream to `address`, as the channel was given it (`host:port`
    /// for TCP). The error's text ends up in the caller's
    /// [`Connect`](crate::ErrorKind::Connect) error, after the address.
    fn connect(&self, address: &str) -> BoxFuture<io::Result<Io>>;
}

/// The default transport: TCP, with `TCP_NODELAY` set (requests are small
/// and the channels coalesce writes themselves). `address` may be a host
/// name; every address it resolves to is tried in turn.
#[derive(Clone, Copy, Debug, Default)]
pub struct TcpConnector;

impl Connector for TcpConnector {
    fn connect(&self, address: &str) -> BoxFuture<io::Result<Io>> {
        let address = address.to_string();
        async move {
            let stream = TcpStream::connect(&address).await?;
            // Best effort: a socket that refuses it still works, a little slower.
            let _ = stream.set_nodelay(true);
            Ok(Io::from(stream))
        }
        .boxed()
    }
}

/// Anything a channel can run its protocol over.
pub(crate) trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Stream for T {}

/// One byte stream a [`Connector`] opened: a TCP stream ([`Io::from`]) or
/// any other (`Io::new`, e.g. one end of `tokio::io::duplex`).
///
/// The native channel reads and writes it from two tasks: a TCP stream is
/// split into owned halves without a lock between them; any other stream
/// through `tokio::io::split`.
pub struct Io(Kind);

enum Kind {
    Tcp(TcpStream),
    Other(Box<dyn Stream>),
}

impl Io {
    /// A stream of any type: an in-memory pipe, a TLS stream, a Unix socket.
    pub fn new(stream: impl AsyncRead + AsyncWrite + Unpin + Send + 'static) -> Self {
        Io(Kind::Other(Box::new(stream)))
    }

    /// Its read and write halves, each usable from its own task.
    pub(crate) fn split(self) -> (ReadHalf, WriteHalf) {
        match self.0 {
            Kind::Tcp(stream) => {
                let (read, write) = stream.into_split();
                (ReadHalf::Tcp(read), WriteHalf::Tcp(write))
            }
            Kind::Other(stream) => {
                let (read, write) = tokio::io::split(stream);
                (ReadHalf::Other(read), WriteHalf::Other(write))
            }
        }
    }
}

impl From<TcpStream> for Io {
    fn from(stream: TcpStream) -> Self {
        Io(Kind::Tcp(stream))
    }
}

impl fmt::Debug for Io {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Kind::Tcp(stream) => f.debug_tuple("Io").field(stream).finish(),
            Kind::Other(_) => f.write_str("Io(..)"),
        }
    }
}

impl AsyncRead for Io {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().0 {
            Kind::Tcp(stream) => Pin::new(stream).poll_read(cx, buf),
            Kind::Other(stream) => Pin::new(stream).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().0 {
            Kind::Tcp(stream) => Pin::new(stream).poll_write(cx, buf),
            Kind::Other(stream) => Pin::new(stream).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().0 {
            Kind::Tcp(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
            Kind::Other(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.0 {
            Kind::Tcp(stream) => stream.is_write_vectored(),
            Kind::Other(stream) => stream.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().0 {
            Kind::Tcp(stream) => Pin::new(stream).poll_flush(cx),
            Kind::Other(stream) => Pin::new(stream).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().0 {
            Kind::Tcp(stream) => Pin::new(stream).poll_shutdown(cx),
            Kind::Other(stream) => Pin::new(stream).poll_shutdown(cx),
        }
    }
}

/// The read half of an [`Io`].
pub(crate) enum ReadHalf {
    Tcp(OwnedReadHalf),
    Other(tokio::io::ReadHalf<Box<dyn Stream>>),
}

/// The write half of an [`Io`].
pub(crate) enum WriteHalf {
    Tcp(OwnedWriteHalf),
    Other(tokio::io::WriteHalf<Box<dyn Stream>>),
}

impl AsyncRead for ReadHalf {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ReadHalf::Tcp(half) => Pin::new(half).poll_read(cx, buf),
            ReadHalf::Other(half) => Pin::new(half).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for WriteHalf {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            WriteHalf::Tcp(half) => Pin::new(half).poll_write(cx, buf),
            WriteHalf::Other(half) => Pin::new(half).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WriteHalf::Tcp(half) => Pin::new(half).poll_flush(cx),
            WriteHalf::Other(half) => Pin::new(half).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WriteHalf::Tcp(half) => Pin::new(half).poll_shutdown(cx),
            WriteHalf::Other(half) => Pin::new(half).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn tcp_connector_opens_a_stream_with_nodelay() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let (io, accepted) = tokio::join!(TcpConnector.connect(&address), listener.accept());
        let (mut server, _) = accepted.unwrap();
        let io = io.unwrap();
        assert!(matches!(&io.0, Kind::Tcp(stream) if stream.nodelay().unwrap()));
        let (mut read, mut write) = io.split();
        write.write_all(b"ping").await.unwrap();
        let mut buf = [0; 4];
        server.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        server.write_all(b"pong").await.unwrap();
        read.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"pong");
    }

    #[tokio::test]
    async fn tcp_connector_reports_a_refused_connection() {
        // Bound, then closed: nothing listens there now.
        let address = {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            listener.local_addr().unwrap().to_string()
        };
        let error = TcpConnector.connect(&address).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused, "{error}");
    }

    #[tokio::test]
    async fn any_stream_splits_into_halves() {
        let (client, mut server) = tokio::io::duplex(64);
        let (mut read, mut write) = Io::new(client).split();
        write.write_all(b"abc").await.unwrap();
        let mut buf = [0; 3];
        server.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"abc");
        server.write_all(b"xyz").await.unwrap();
        read.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"xyz");
    }
}

//! A loopback TCP proxy that can cut the network between a client and its server.
//!
//! [`Proxy::start`] listens on `127.0.0.1:0`; each accepted connection is
//! connected to the target and copied both ways. [`Proxy::cut`] closes every
//! connection and refuses (accepts, then closes at once) every new one until
//! [`Proxy::restore`]: to the client it looks like a server that went away,
//! while the server itself keeps running and sees its client go silent. That
//! is the fault that expires a ZooKeeper session without touching the server
//! or attaching anything else to the session.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// A TCP proxy from a loopback port to `target`; stops (closing every
/// connection) on drop.
#[derive(Debug)]
pub struct Proxy {
    address: SocketAddr,
    cut: watch::Sender<bool>,
    stall: watch::Sender<bool>,
    accept: JoinHandle<()>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards each connection to
    /// `target` (`host:port`), which is connected when a client connects.
    ///
    /// # Panics
    /// Outside a Tokio runtime, or when no loopback port can be bound.
    pub fn start(target: &str) -> Proxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .unwrap_or_else(|e| panic!("the proxy to {target} cannot listen on 127.0.0.1: {e}"));
        let address = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("the proxy to {target} has no local address: {e}"));
        let listener = TcpListener::from_std(listener)
            .unwrap_or_else(|e| panic!("the proxy to {target} cannot register its listener: {e}"));
        let (cut, _) = watch::channel(false);
        let (stall, _) = watch::channel(false);
        let accept = tokio::spawn(accept_loop(listener, target.to_owned(), cut.clone(), stall.clone()));
        Proxy {
            address,
            cut,
            stall,
            accept,
        }
    }

    /// `127.0.0.1:port`, the address clients connect to instead of the target's.
    pub fn address(&self) -> String {
        self.address.to_string()
    }

    /// Closes every connection now (their tasks drop both sockets as soon as
    /// they run) and every new one at once, until [`Proxy::restore`].
    pub fn cut(&self) {
        self.cut.send_replace(true);
    }

    /// Lets new connections through again (those closed stay closed), and
    /// ends a [`stall`](Proxy::stall).
    pub fn restore(&self) {
        self.cut.send_replace(false);
        self.stall.send_replace(false);
    }

    /// Stops passing the server's bytes to the client (held, not dropped),
    /// while the client's still reach the server: requests are applied, their
    /// replies lost in transit. Until [`restore`](Proxy::restore) (which passes
    /// the held bytes on) or [`cut`](Proxy::cut).
    pub fn stall(&self) {
        self.stall.send_replace(true);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // The accept loop owns the connection tasks: aborting it drops them all.
        self.accept.abort();
    }
}

async fn accept_loop(listener: TcpListener, target: String, cut: watch::Sender<bool>, stall: watch::Sender<bool>) {
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            // Reap finished connections so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let Ok((client, _)) = accepted else {
            // A failed accept (e.g. too many open files) concerns one client only.
            continue;
        };
        // Subscribed before the check: a cut after it still reaches this connection.
        let mut cut = cut.subscribe();
        if *cut.borrow_and_update() {
            drop(client);
            continue;
        }
        let target = target.clone();
        let stall = stall.subscribe();
        connections.spawn(async move {
            tokio::select! {
                () = forward(client, &target, stall) => {}
                _ = cut.wait_for(|cut| *cut) => {}
            }
        });
    }
}

/// Copies both ways until either side closes or fails; both sockets are closed on return.
/// While `stall` is set, the server's bytes wait.
async fn forward(client: TcpStream, target: &str, mut stall: watch::Receiver<bool>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(server) = TcpStream::connect(target).await else {
        return;
    };
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let upstream = tokio::io::copy(&mut client_read, &mut server_write);
    let downstream = async {
        let mut buffer = vec![0; 16 * 1024];
        loop {
            if stall.wait_for(|stalled| !*stalled).await.is_err() {
                return;
            }
            let n = match server_read.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            // Read while not stalled, but a stall may have begun since: hold these bytes too.
            if stall.wait_for(|stalled| !*stalled).await.is_err() {
                return;
            }
            if client_write.write_all(&buffer[..n]).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        _ = upstream => {}
        () = downstream => {}
    }
}

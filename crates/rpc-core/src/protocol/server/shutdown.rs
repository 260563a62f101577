//! Graceful shutdown: the signals every connection watches ([`Shutdown`]), and
//! the order in which [`ServerHandle::shutdown`] raises them.
//!
//! The stages, each a signal raised once and never lowered:
//!
//! 1. **stop accepting**: the accept loop returns and the listener closes;
//! 2. **leaving**: each connection's protocol announces it (native: the
//!    two-way read-only event; `tri`: HTTP/2 GOAWAY) and keeps serving what
//!    still arrives until its own drain is done, then closes;
//! 3. **draining**: the grace period is over: connections flush what is
//!    queued and close, abandoning calls still running;
//! 4. **close**: connections still open a moment later are closed at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::sync::futures::Notified;
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

use super::ServerHandle;

/// The shutdown stages of one server, as its accept loop and connections see them.
#[derive(Debug, Default)]
pub(crate) struct Shutdown {
    stop_accepting: CancellationToken,
    leaving: AtomicBool,
    leaving_changed: Notify,
    draining: CancellationToken,
    close: CancellationToken,
}

impl Shutdown {
    /// Resolves when the listener must close.
    pub(super) fn stop_accepting_requested(&self) -> WaitForCancellationFuture<'_> {
        self.stop_accepting.cancelled()
    }

    /// Whether the server is shutting down: connections announce they are
    /// leaving and drain.
    pub(crate) fn is_leaving(&self) -> bool {
        self.leaving.load(Ordering::Acquire)
    }

    /// A future woken when the server starts leaving. A connection that makes
    /// it once must `enable` it before reading [`is_leaving`](Self::is_leaving),
    /// so no change is missed between the two.
    pub(crate) fn leaving_changed(&self) -> Notified<'_> {
        self.leaving_changed.notified()
    }

    /// Resolves once the server is leaving (at once if it is already).
    pub(crate) async fn leaving(&self) {
        let notified = self.leaving_changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if !self.is_leaving() {
            notified.await;
        }
    }

    /// Resolves when the grace period is over: flush what is queued and close.
    pub(crate) fn draining(&self) -> WaitForCancellationFuture<'_> {
        self.draining.cancelled()
    }

    /// Whether the grace period is over.
    pub(crate) fn is_draining(&self) -> bool {
        self.draining.is_cancelled()
    }

    /// Resolves when every connection must close now.
    pub(crate) fn closing(&self) -> WaitForCancellationFuture<'_> {
        self.close.cancelled()
    }

    pub(super) fn stop_accepting(&self) {
        self.stop_accepting.cancel();
    }

    /// Stage 2: connections announce they are leaving and drain.
    pub(crate) fn start_leaving(&self) {
        self.leaving.store(true, Ordering::Release);
        self.leaving_changed.notify_waiters();
    }

    /// Stage 3: the grace period is over.
    pub(crate) fn start_draining(&self) {
        self.draining.cancel();
    }

    /// Stage 4: close every connection now.
    pub(crate) fn close_all(&self) {
        self.close.cancel();
    }
}

impl ServerHandle {
    /// Graceful shutdown, losing no call that reached the server:
    ///
    /// 1. stop accepting and close the listener, so new connections are refused;
    /// 2. tell every connection's protocol to announce that the server is
    ///    leaving: native connections get the read-only event (two-way), `tri`
    ///    connections HTTP/2 GOAWAY (streams already opened finish);
    /// 3. keep running every request that still arrives on an existing
    ///    connection, until that connection is drained: nothing is in flight on
    ///    it and its peer answered the read-only event (so it sends nothing
    ///    more) or, for peers that never answer it, sent no request for
    ///    [`ServerConfig::shutdown_quiet`](super::ServerConfig::shutdown_quiet);
    ///    a drained connection's answers are flushed, then it closes;
    /// 4. when `grace` runs out, flush and close whatever is left.
    ///
    /// Returns the number of calls still running when `grace` ran out.
    pub async fn shutdown(&self, grace: Duration) -> usize {
        let shared = &self.shared;
        let deadline = Instant::now() + grace;
        self.stop_listening().await;
        shared.shutdown.start_leaving();
        let drained = async {
            shared.connections.wait_zero().await;
            shared.in_flight.wait_zero().await;
        };
        if tokio::time::timeout_at(deadline, drained).await.is_ok() {
            return 0;
        }
        let abandoned = shared.in_flight.get();
        if abandoned > 0 {
            tracing::warn!(
                addr = %self.local_addr,
                abandoned,
                "shutdown grace period over with calls still running"
            );
        }
        shared.shutdown.start_draining();
        // Give writers a moment to flush, then force-close what is left.
        let flush = Duration::from_millis(500).min(grace.max(Duration::from_millis(50)));
        if tokio::time::timeout(flush, shared.connections.wait_zero())
            .await
            .is_err()
        {
            shared.shutdown.close_all();
            let _ = tokio::time::timeout(Duration::from_secs(1), shared.connections.wait_zero()).await;
        }
        abandoned
    }

    /// Closes every connection at once, failing in-flight calls on the clients.
    ///
    /// The listener is closed first, so a client reconnecting the moment its
    /// connection drops finds nothing listening instead of a connection that is
    /// accepted by the kernel and then reset.
    pub async fn abort(&self) {
        self.stop_listening().await;
        self.shared.shutdown.close_all();
        let _ = tokio::time::timeout(Duration::from_secs(1), self.shared.connections.wait_zero()).await;
    }

    /// Stops the accept loop and waits (at most 1 s) for the listener to close.
    async fn stop_listening(&self) {
        self.shared.shutdown.stop_accepting();
        let _ = tokio::time::timeout(Duration::from_secs(1), self.accept_done.wait_zero()).await;
    }
}

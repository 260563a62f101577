//! The listener's accept loop: the connection limit, and one task per
//! connection, counted until it ends.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::TcpListener;

use super::ServerShared;
use super::gauge::GaugeGuard;
use super::sniff::serve_connection;

/// Accepts until told to stop; the listener closes when this returns, and
/// `_running` is dropped then, which is what shutdown waits for.
pub(super) async fn accept_loop(listener: TcpListener, shared: Arc<ServerShared>, _running: GaugeGuard) {
    let mut failures = 0u32;
    loop {
        let accepted = tokio::select! {
            _ = shared.shutdown.stop_accepting_requested() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                failures = 0;
                let Some(counted) = shared.connections.try_enter(shared.config.max_connections) else {
                    shared.refused_connections.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%peer, limit = shared.config.max_connections, "connection limit reached; refusing");
                    drop(stream);
                    continue;
                };
                let shared = shared.clone();
                tokio::spawn(async move {
                    serve_connection(stream, peer, shared).await;
                    drop(counted);
                });
            }
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                failures = failures.saturating_add(1);
                let pause = Duration::from_millis(10 * u64::from(failures.min(100)));
                tracing::warn!(error = %e, "accept failed; retrying in {} ms", pause.as_millis());
                tokio::select! {
                    _ = shared.shutdown.stop_accepting_requested() => break,
                    _ = tokio::time::sleep(pause) => {}
                }
            }
        }
    }
    tracing::debug!("stopped accepting");
}

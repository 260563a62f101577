//! Test transport: every connection is a `tokio::io::duplex` pipe whose
//! provider end the test receives, so channels run their real protocol code
//! over memory, under a paused clock when the test wants one.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use tokio::io::DuplexStream;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{Connector, Io};
use crate::invoker::BoxFuture;

/// How long a test waits for something it expects (of paused time, when the
/// clock is paused: it only runs out when nothing else can happen).
pub(crate) const WAIT: Duration = Duration::from_secs(10);

/// What the next connection attempt does.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Attempt {
    /// Fails at once, connection refused.
    Refuse,
    /// Never completes (a host that drops SYNs).
    Hang,
}

/// A [`Connector`] of in-memory pipes.
#[derive(Debug)]
pub(crate) struct Pipes {
    accepted: mpsc::UnboundedSender<DuplexStream>,
    /// Scripted outcomes of the next attempts; once empty, attempts succeed.
    script: Mutex<VecDeque<Attempt>>,
    /// When each attempt was made.
    attempts: Mutex<Vec<Instant>>,
    /// Bytes each direction of a pipe buffers.
    capacity: usize,
}

impl Pipes {
    /// A connector whose pipes buffer `capacity` bytes each way, and the
    /// receiver of their provider ends.
    pub(crate) fn new(capacity: usize) -> (Arc<Pipes>, mpsc::UnboundedReceiver<DuplexStream>) {
        let (accepted, rx) = mpsc::unbounded_channel();
        let pipes = Pipes {
            accepted,
            script: Mutex::default(),
            attempts: Mutex::default(),
            capacity,
        };
        (Arc::new(pipes), rx)
    }

    /// The next attempts do `attempts`, in order.
    pub(crate) fn script(&self, attempts: impl IntoIterator<Item = Attempt>) {
        self.script.lock().unwrap().extend(attempts);
    }

    /// When each attempt so far was made.
    pub(crate) fn attempts(&self) -> Vec<Instant> {
        self.attempts.lock().unwrap().clone()
    }
}

impl Connector for Pipes {
    fn connect(&self, _address: &str) -> BoxFuture<io::Result<Io>> {
        self.attempts.lock().unwrap().push(Instant::now());
        match self.script.lock().unwrap().pop_front() {
            Some(Attempt::Refuse) => {
                return std::future::ready(Err(io::Error::from(io::ErrorKind::ConnectionRefused))).boxed();
            }
            Some(Attempt::Hang) => return std::future::pending().boxed(),
            None => {}
        }
        let (client, provider) = tokio::io::duplex(self.capacity);
        let _ = self.accepted.send(provider);
        std::future::ready(Ok(Io::new(client))).boxed()
    }
}

/// The provider end of the next connection, within [`WAIT`].
pub(crate) async fn accept(accepted: &mut mpsc::UnboundedReceiver<DuplexStream>) -> DuplexStream {
    tokio::time::timeout(WAIT, accepted.recv())
        .await
        .expect("no connection was made")
        .expect("the connector is gone")
}

/// Asserts `delay` is one the backoff may choose after `failures` failed
/// attempts (initial 100 ms, max 5 s: `[d/2, d]` for `d` = 100 ms doubled per
/// further failure), give or take `slack` of measuring.
pub(crate) fn assert_backoff(delay: Duration, failures: u32, slack: Duration) {
    let ceiling = (Duration::from_millis(100) * 2u32.pow(failures - 1)).min(Duration::from_secs(5));
    assert!(
        delay >= ceiling / 2 && delay <= ceiling + slack,
        "after {failures} failure(s) the channel waited {delay:?}, outside [{:?}, {ceiling:?}]",
        ceiling / 2
    );
}

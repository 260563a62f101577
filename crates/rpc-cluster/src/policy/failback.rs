//! Failback: failures become the zero value and are retried in the background.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::future::join_all;
use rpc_core::invocation::deadline_after;
use rpc_core::{BoxFuture, Response, RpcError};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{Policy, send};
use crate::call::Call;
use crate::select::Select;

/// Settings of the [`Failback`] retry queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FailbackConfig {
    /// Time between retries of a queued call (default 5 s, Dubbo's).
    pub interval: Duration,
    /// Retries of a queued call before it is dropped (default 3).
    pub attempts: u32,
    /// Most calls queued at once; a failed call finding the queue full is
    /// dropped with a warning (default 1,024).
    pub capacity: usize,
    /// Most bytes of arguments queued at once, likewise (default 16 MiB): with
    /// large arguments the count alone would let the queue hold gigabytes.
    pub max_bytes: usize,
}

impl Default for FailbackConfig {
    fn default() -> Self {
        FailbackConfig {
            interval: Duration::from_secs(5),
            attempts: 3,
            capacity: 1024,
            max_bytes: 16 * 1024 * 1024,
        }
    }
}

/// One attempt; on failure, log a warning, answer the zero value of the
/// return type (as [`Failsafe`](super::Failsafe)) and queue the call to be
/// retried in the background every `interval`, up to `attempts` times, each
/// retry with the call's full timeout. For notifications that must arrive
/// eventually.
///
/// Only retryable failures are queued (not-sent always; unknown outcomes for
/// idempotent methods). The queue is bounded: when `capacity` calls wait, a
/// new failure is dropped with a warning. The retry task runs on the tokio
/// runtime that created the policy and stops, dropping what is queued with a
/// warning, when the last clone of the policy is dropped.
#[derive(Debug)]
pub struct Failback {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: FailbackConfig,
    /// Started by the first failure to queue, over that call's providers.
    queue: OnceLock<Queue>,
}

/// The retry queue of a [`Failback`] policy and what it holds.
#[derive(Debug)]
struct Queue {
    sender: mpsc::UnboundedSender<Call>,
    queued: Arc<AtomicUsize>,
    /// Bytes of arguments queued.
    held: Arc<Held>,
}

/// Bytes of arguments a failback queue holds.
#[derive(Debug, Default)]
struct Held(AtomicUsize);

impl Held {
    /// Counts `size` more bytes, unless that passes `max`.
    fn admit(&self, size: usize, max: usize) -> bool {
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                held.checked_add(size).filter(|total| *total <= max)
            })
            .is_ok()
    }

    fn release(&self, size: usize) {
        let _ = self.0.fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
            Some(held.saturating_sub(size))
        });
    }
}

impl Failback {
    /// Failback with the retry queue `config` describes. The queue's task is
    /// started, on the current tokio runtime, by the first failure to queue;
    /// it stops, dropping what is queued with a warning, when the policy is dropped.
    pub fn new(config: FailbackConfig) -> Self {
        Failback {
            inner: Arc::new(Inner {
                config,
                queue: OnceLock::new(),
            }),
        }
    }

    /// Calls waiting for a retry.
    pub fn queued(&self) -> usize {
        self.inner.queue.get().map_or(0, |q| q.queued.load(Ordering::Acquire))
    }
}

impl Inner {
    fn queue(&self, select: &Arc<dyn Select>) -> &Queue {
        self.queue.get_or_init(|| {
            let (sender, rx) = mpsc::unbounded_channel();
            let queued = Arc::new(AtomicUsize::new(0));
            let held = Arc::new(Held::default());
            tokio::spawn(retry_task(
                select.clone(),
                rx,
                queued.clone(),
                held.clone(),
                self.config,
            ));
            Queue { sender, queued, held }
        })
    }
}

impl Policy for Failback {
    fn call(&self, call: Call, select: &Arc<dyn Select>) -> BoxFuture<Result<Response, RpcError>> {
        let select = select.clone();
        let inner = self.inner.clone();
        Box::pin(async move {
            let error = match send(&*select, &call, &mut Vec::new()).await {
                Ok(response) => return Ok(response),
                Err(error) => error,
            };
            let Queue { sender, queued, held } = inner.queue(&select);
            let (capacity, max_bytes) = (inner.config.capacity, inner.config.max_bytes);
            if !error.is_retryable(call.settings.idempotent) {
                tracing::warn!(%error, "failback: the call failed and cannot be retried safely; answering the zero value");
            } else if queued.fetch_add(1, Ordering::AcqRel) >= capacity {
                queued.fetch_sub(1, Ordering::AcqRel);
                tracing::warn!(%error, capacity, "failback: retry queue full, dropping the failed call");
            } else if !held.admit(call.invocation.args().len(), max_bytes) {
                queued.fetch_sub(1, Ordering::AcqRel);
                tracing::warn!(%error, max_bytes, "failback: retry queue full (bytes), dropping the failed call");
            } else if let Err(refused) = sender.send(call) {
                held.release(refused.0.invocation.args().len());
                queued.fetch_sub(1, Ordering::AcqRel);
            } else {
                tracing::warn!(%error, "failback: the call failed; queued for retry, answering the zero value");
            }
            Ok(Response::zero_instead_of(error))
        })
    }
}

struct Entry {
    call: Call,
    retries: u32,
    due: Instant,
}

/// When a retry `interval` from now is due (a year away for intervals beyond the clock).
fn due_in(interval: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(interval)
        .unwrap_or_else(|| now + Duration::from_secs(365 * 24 * 3600))
}

async fn retry_task(
    select: Arc<dyn Select>,
    mut rx: mpsc::UnboundedReceiver<Call>,
    queued: Arc<AtomicUsize>,
    held: Arc<Held>,
    config: FailbackConfig,
) {
    let mut pending: Vec<Entry> = Vec::new();
    loop {
        let next_due = pending.iter().map(|e| e.due).min();
        tokio::select! {
            received = rx.recv() => match received {
                Some(call) => pending.push(Entry { call, retries: 0, due: due_in(config.interval) }),
                None => break,
            },
            _ = tokio::time::sleep_until(next_due.unwrap_or_else(Instant::now)), if next_due.is_some() => {
                let now = Instant::now();
                let (due, waiting): (Vec<Entry>, Vec<Entry>) = pending.drain(..).partition(|e| e.due <= now);
                pending = waiting;
                let retried = join_all(due.into_iter().map(|entry| retry(&*select, entry))).await;
                for (size, outcome) in retried {
                    match outcome {
                        Some(mut entry) if entry.retries < config.attempts => {
                            entry.due = due_in(config.interval);
                            pending.push(entry);
                        }
                        Some(entry) => {
                            tracing::error!(
                                service = %entry.call.invocation.service(),
                                method = entry.call.invocation.method(),
                                retries = entry.retries,
                                "failback: giving up on a call"
                            );
                            queued.fetch_sub(1, Ordering::AcqRel);
                            held.release(size);
                        }
                        None => {
                            queued.fetch_sub(1, Ordering::AcqRel);
                            held.release(size);
                        }
                    }
                }
            }
        }
    }
    if !pending.is_empty() {
        tracing::warn!(
            dropped = pending.len(),
            "failback: the reference was dropped with calls still queued"
        );
    }
    queued.store(0, Ordering::Release);
    held.0.store(0, Ordering::Release);
}

/// Retries `entry` once: its size (bytes of arguments), and `None` when it
/// succeeded (or can never succeed), the entry with one more retry counted
/// otherwise.
async fn retry(select: &dyn Select, entry: Entry) -> (usize, Option<Entry>) {
    let size = entry.call.invocation.args().len();
    (size, retry_once(select, entry).await)
}

async fn retry_once(select: &dyn Select, mut entry: Entry) -> Option<Entry> {
    entry.retries += 1;
    let mut call = entry.call.clone();
    let settings = call.settings;
    call.invocation.set_deadline(deadline_after(settings.timeout));
    let result = send(select, &call, &mut Vec::new()).await;
    match result {
        Ok(_) => {
            tracing::info!(
                service = %entry.call.invocation.service(),
                method = entry.call.invocation.method(),
                retries = entry.retries,
                "failback: a queued call succeeded"
            );
            None
        }
        Err(error) if !error.is_retryable(settings.idempotent) => {
            tracing::error!(%error, "failback: a queued call failed for good");
            None
        }
        Err(error) => {
            tracing::debug!(%error, retries = entry.retries, "failback: retry failed");
            Some(entry)
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::MethodConfig;
    use tower::ServiceExt;

    use super::*;
    use crate::policy::test_util::*;

    fn config(capacity: usize) -> FailbackConfig {
        FailbackConfig {
            interval: Duration::from_secs(5),
            attempts: 3,
            capacity,
            ..FailbackConfig::default()
        }
    }

    async fn until(what: &str, mut done: impl FnMut() -> bool) {
        for _ in 0..10_000 {
            if done() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("timed out waiting for {what}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_call_lands_once_its_provider_returns() {
        let a = Provider::new(1, Behaviour::Fail(not_sent(), Duration::ZERO));
        let policy = Arc::new(Failback::new(config(10)));
        let failback = bind(policy.clone(), InOrder::new(&[&a]));
        let response = failback
            .clone()
            .oneshot(invocation(MethodConfig::new(), Duration::from_secs(1)))
            .await
            .unwrap();
        assert!(response.is_zero());
        assert_eq!(policy.queued(), 1);
        // The first retry (at 5 s) fails too; the provider then comes back.
        until("the first retry", || a.calls() == 2).await;
        a.set(Behaviour::Answer(Duration::ZERO));
        until("the second retry", || a.calls() == 3).await;
        until("the queue to empty", || policy.queued() == 0).await;
        // Nothing more is sent.
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert_eq!(a.calls(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_the_configured_attempts() {
        let a = Provider::new(1, Behaviour::Fail(not_sent(), Duration::ZERO));
        let policy = Arc::new(Failback::new(config(10)));
        let failback = bind(policy.clone(), InOrder::new(&[&a]));
        failback
            .clone()
            .oneshot(invocation(MethodConfig::new(), Duration::from_secs(1)))
            .await
            .unwrap();
        until("the queue to empty", || policy.queued() == 0).await;
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(a.calls(), 1 + 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_queue_drops_instead_of_growing() {
        let a = Provider::new(1, Behaviour::Fail(not_sent(), Duration::ZERO));
        let policy = Arc::new(Failback::new(config(2)));
        let failback = bind(policy.clone(), InOrder::new(&[&a]));
        for _ in 0..5 {
            let response = failback
                .clone()
                .oneshot(invocation(MethodConfig::new(), Duration::from_secs(1)))
                .await
                .unwrap();
            assert!(response.is_zero());
        }
        assert_eq!(policy.queued(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn unknown_outcomes_of_writes_are_not_queued() {
        let a = Provider::new(1, Behaviour::Fail(unknown(), Duration::ZERO));
        let policy = Arc::new(Failback::new(config(10)));
        let failback = bind(policy.clone(), InOrder::new(&[&a]));
        failback
            .clone()
            .oneshot(invocation(
                MethodConfig::new().with_idempotent(false),
                Duration::from_secs(1),
            ))
            .await
            .unwrap();
        assert_eq!(policy.queued(), 0);
    }

    /// Defect: the queue was bounded in calls only, so 1,024 calls of 8 MiB
    /// could hold 8 GiB.
    #[tokio::test(start_paused = true)]
    async fn the_queue_is_bounded_in_bytes_too() {
        let a = Provider::new(1, Behaviour::Fail(not_sent(), Duration::ZERO));
        let policy = Arc::new(Failback::new(FailbackConfig {
            max_bytes: 250,
            ..config(1024)
        }));
        let mut failback = bind(policy.clone(), InOrder::new(&[&a]));
        for _ in 0..5 {
            let mut call = invocation(MethodConfig::new(), Duration::from_secs(5));
            let deadline = call.invocation.deadline();
            call.invocation = rpc_core::Invocation::new(
                call.invocation.service().clone(),
                "m",
                bytes::Bytes::from(vec![0u8; 100]),
                rpc_core::Serialization::Json,
            );
            call.invocation.set_deadline(deadline);
            let response = (&mut failback).oneshot(call).await.unwrap();
            assert!(response.is_zero());
        }
        assert_eq!(policy.queued(), 2, "two calls of 100 bytes fit in 250");
    }
}

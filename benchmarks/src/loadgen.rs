//! The load generator: a fixed number of calls in flight, a warm-up, then a
//! measured window whose latencies go into an HDR histogram.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::time::Instant;

/// What one run measured.
#[derive(Debug)]
pub struct Measured {
    /// Calls completed in the measured window.
    pub completed: u64,
    /// Calls that failed in the measured window.
    pub failed: u64,
    /// Length of the measured window.
    pub window: Duration,
    /// Latencies of the completed calls, in microseconds.
    pub latency: Histogram<u64>,
}

impl Measured {
    /// Completed calls per second.
    pub fn qps(&self) -> f64 {
        self.completed as f64 / self.window.as_secs_f64().max(f64::EPSILON)
    }

    /// The latency at `quantile`, in microseconds.
    pub fn us(&self, quantile: f64) -> u64 {
        self.latency.value_at_quantile(quantile)
    }
}

/// Runs `concurrency` workers, worker `i` calling through `clients[i % n]`,
/// for `warmup` and then `window`, and measures the window. `on_window`
/// runs when the window starts (to sample CPU counters).
pub async fn run<C, F, Fut>(
    clients: &[C],
    call: F,
    concurrency: usize,
    warmup: Duration,
    window: Duration,
    on_window: impl FnOnce(),
) -> Measured
where
    C: Clone + Send + 'static,
    F: Fn(&C) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let start = Instant::now() + warmup;
    let end = start + window;
    let failed = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::with_capacity(concurrency);
    for i in 0..concurrency.max(1) {
        let client = clients[i % clients.len().max(1)].clone();
        let call = call.clone();
        let failed = failed.clone();
        workers.push(tokio::spawn(async move {
            let mut latency = Some(new_histogram());
            let mut completed = 0u64;
            loop {
                let began = Instant::now();
                if began >= end {
                    break;
                }
                let result = call(&client).await;
                let done = Instant::now();
                if began >= start && done <= end {
                    match result {
                        Ok(()) => {
                            completed += 1;
                            if let Some(h) = latency.as_mut() {
                                let _ = h.record((done - began).as_micros().max(1) as u64);
                            }
                        }
                        Err(_) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
            (completed, latency)
        }));
    }
    tokio::time::sleep_until(start).await;
    on_window();
    let mut total = new_histogram();
    let mut completed = 0;
    for worker in workers {
        if let Ok((n, Some(h))) = worker.await {
            completed += n;
            let _ = total.add(h);
        }
    }
    Measured {
        completed,
        failed: failed.load(Ordering::Relaxed),
        window,
        latency: total,
    }
}

/// A histogram of microseconds, 1 µs to 60 s at 3 significant digits.
#[allow(clippy::expect_used)] // constant, valid bounds: this cannot fail
fn new_histogram() -> Histogram<u64> {
    Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("constant histogram bounds are valid")
}

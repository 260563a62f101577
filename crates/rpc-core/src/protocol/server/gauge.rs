//! [`Gauge`]: a count of things in progress (connections, calls) that wakes
//! its waiters when it reaches zero, which is what draining waits for.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

/// Counts things and wakes waiters when the count reaches zero.
#[derive(Debug, Default)]
pub(crate) struct Gauge {
    count: AtomicUsize,
    zero: Notify,
}

impl Gauge {
    /// Counts one more thing until the guard is dropped.
    pub(crate) fn enter(self: &Arc<Self>) -> GaugeGuard {
        self.count.fetch_add(1, Ordering::AcqRel);
        GaugeGuard(self.clone())
    }

    /// Enters unless `limit` things are counted already.
    pub(crate) fn try_enter(self: &Arc<Self>, limit: usize) -> Option<GaugeGuard> {
        self.count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < limit).then_some(n + 1))
            .ok()
            .map(|_| GaugeGuard(self.clone()))
    }

    /// The current count.
    pub(crate) fn get(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// Resolves once the count is zero (at once if it is).
    pub(crate) async fn wait_zero(&self) {
        loop {
            let notified = self.zero.notified();
            if self.get() == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// One thing counted by a [`Gauge`], until dropped.
#[derive(Debug)]
pub(crate) struct GaugeGuard(Arc<Gauge>);

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.zero.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn try_enter_stops_at_the_limit_and_a_dropped_guard_makes_room() {
        let gauge = Arc::new(Gauge::default());
        let first = gauge.try_enter(2).unwrap();
        let _second = gauge.try_enter(2).unwrap();
        assert!(gauge.try_enter(2).is_none());
        assert_eq!(gauge.get(), 2);
        drop(first);
        assert!(gauge.try_enter(2).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn waiters_wake_when_the_last_guard_goes() {
        let gauge = Arc::new(Gauge::default());
        let guard = gauge.enter();
        let waiter = tokio::spawn({
            let gauge = gauge.clone();
            async move { gauge.wait_zero().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(guard);
        tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .unwrap()
            .unwrap();
        // At zero already: no wait.
        tokio::time::timeout(Duration::from_millis(1), gauge.wait_zero())
            .await
            .unwrap();
    }
}

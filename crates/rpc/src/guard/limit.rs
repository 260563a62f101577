//! The provider's limits: `executes` (calls of a method running at once)
//! and `tps` (calls of a service per fixed window), as Dubbo's
//! `ExecuteLimitFilter` and `DefaultTPSLimiter` count them.
//!
//! The counts live apart from the limits, so a new limit (an override rule)
//! applies to the calls already counted: raising `executes` from 2 to 3 with
//! two calls running admits exactly one more.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// Calls of one method running now.
#[derive(Debug, Default)]
pub(crate) struct Running(Arc<AtomicU32>);

impl Running {
    /// A permit when fewer than `limit` calls run (the permit counts one
    /// until dropped); `None` when `limit` are running already.
    pub(crate) fn try_start(&self, limit: u32) -> Option<Permit> {
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < limit).then_some(n + 1))
            .ok()
            .map(|_| Permit(self.0.clone()))
    }

    /// Calls running now.
    pub(crate) fn get(&self) -> u32 {
        self.0.load(Ordering::Acquire)
    }
}

/// One running call, counted until dropped.
#[derive(Debug)]
pub(crate) struct Permit(Arc<AtomicU32>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A fixed window of `interval`, starting with the first call after the
/// previous one ended (Dubbo's `StatItem`): at most `rate` calls in it.
#[derive(Debug)]
pub(crate) struct Window(Mutex<WindowState>);

#[derive(Debug)]
struct WindowState {
    started: Option<Instant>,
    taken: u64,
}

impl Default for Window {
    fn default() -> Self {
        Window(Mutex::new(WindowState {
            started: None,
            taken: 0,
        }))
    }
}

impl Window {
    /// Whether one more call fits the current window of `interval` under
    /// `rate`, counting it when it does. A call that does not fit is not counted.
    pub(crate) fn try_take(&self, rate: u64, interval: Duration) -> bool {
        let now = Instant::now();
        let mut state = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if state.started.is_none_or(|started| now >= started + interval) {
            state.started = Some(now);
            state.taken = 0;
        }
        if state.taken >= rate {
            return false;
        }
        state.taken += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn executes_admits_up_to_the_limit_and_counts_releases() {
        let running = Running::default();
        let a = running.try_start(2);
        let b = running.try_start(2);
        assert!(a.is_some() && b.is_some());
        assert!(running.try_start(2).is_none(), "a third call is refused");
        assert_eq!(running.get(), 2, "a refusal is not counted");
        drop(a);
        assert!(running.try_start(2).is_some(), "a finished call makes room");
    }

    #[test]
    fn a_new_limit_applies_to_the_calls_already_running() {
        let running = Running::default();
        let _a = running.try_start(2);
        let _b = running.try_start(2);
        // Raised to 3: exactly one more.
        let c = running.try_start(3);
        assert!(c.is_some());
        assert!(running.try_start(3).is_none());
        // Lowered to 1: none until the count falls below it.
        drop(c);
        assert!(running.try_start(1).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn tps_refuses_past_the_rate_until_the_window_ends() {
        let window = Window::default();
        let interval = Duration::from_secs(1);
        for i in 0..5 {
            assert!(window.try_take(5, interval), "call {i} of the window");
        }
        assert!(!window.try_take(5, interval), "the sixth call in the window");
        tokio::time::advance(Duration::from_millis(999)).await;
        assert!(!window.try_take(5, interval), "still the same window");
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(window.try_take(5, interval), "a new window");
        // The new window started with that call: four more fit.
        for _ in 0..4 {
            assert!(window.try_take(5, interval));
        }
        assert!(!window.try_take(5, interval));
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_rate_applies_to_the_calls_of_the_window() {
        let window = Window::default();
        let interval = Duration::from_secs(60);
        for _ in 0..3 {
            assert!(window.try_take(3, interval));
        }
        assert!(!window.try_take(3, interval));
        assert!(window.try_take(4, interval), "raised to 4: one more");
        assert!(!window.try_take(4, interval));
        assert!(!window.try_take(2, interval), "lowered below the count: none");
    }
}

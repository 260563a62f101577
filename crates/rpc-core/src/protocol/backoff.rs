//! Reconnection backoff shared by the client channels of both protocols.
//!
//! After `n` failed connection attempts a channel waits [`delay`] before the
//! next one: exponential from the configured initial delay, capped at the
//! configured maximum, and jittered, so that the consumers of a provider that
//! went away do not all come back at the same instant. A connection that dies
//! younger than [`MIN_HEALTHY_LIFETIME`] counts as a failed attempt, so a peer
//! that accepts connections and closes them at once cannot make its clients
//! reconnect in a tight loop.

use std::time::Duration;

/// A connection that ends sooner than this after it was established counts
/// as a failed attempt: its channel backs off instead of reconnecting at once.
/// A connection that lived longer resets the failure count.
pub(crate) const MIN_HEALTHY_LIFETIME: Duration = Duration::from_secs(1);

/// The shortest delay ever returned: a retry is never immediate.
const FLOOR: Duration = Duration::from_millis(1);

/// How long to wait before the next connection attempt after `failures`
/// failed ones (0 is taken as 1): `initial` doubled per further failure,
/// capped at `max`, then jittered uniformly into the upper half of that
/// (`[d/2, d]`), and never less than 1 ms.
pub(crate) fn delay(initial: Duration, max: Duration, failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(31);
    let ceiling = initial.saturating_mul(1u32 << doublings).min(max);
    let half = ceiling / 2;
    // `half * f` with f in [0, 1): no overflow, whatever `max` is.
    (half + half.mul_f64(fastrand::f64())).max(FLOOR)
}

#[cfg(test)]
mod tests {
    use super::*;

    const INITIAL: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(5);

    #[test]
    fn delays_grow_exponentially_within_jitter_and_stop_at_the_cap() {
        for failures in 0..40u32 {
            let ceiling = (INITIAL * 2u32.saturating_pow(failures.saturating_sub(1).min(20))).min(MAX);
            for _ in 0..200 {
                let d = delay(INITIAL, MAX, failures);
                assert!(
                    d >= ceiling / 2 && d <= ceiling,
                    "failures {failures}: {d:?} outside [{:?}, {ceiling:?}]",
                    ceiling / 2
                );
            }
        }
        assert!(delay(INITIAL, MAX, 3) >= Duration::from_millis(200));
        assert!(delay(INITIAL, MAX, u32::MAX) <= MAX);
    }

    #[test]
    fn delays_are_jittered_and_never_zero() {
        let samples: std::collections::HashSet<_> = (0..100).map(|_| delay(INITIAL, MAX, 4)).collect();
        assert!(
            samples.len() > 50,
            "hardly any jitter: {} distinct delays of 100",
            samples.len()
        );
        assert!(delay(Duration::ZERO, Duration::ZERO, 1) >= FLOOR);
        assert!(delay(Duration::ZERO, MAX, 10) >= FLOOR);
        // A huge maximum neither overflows nor panics.
        assert!(delay(Duration::from_secs(1), Duration::MAX, 64) >= Duration::from_secs(1));
    }
}

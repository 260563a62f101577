//! Lowest estimated response time.

use std::sync::Arc;

use rpc_core::Invocation;

use super::{Candidate, Clock, LoadBalance, SharedRng, system_clock, weighted_among};

/// Picks the provider with the lowest estimated response time: the EWMA of
/// its successful calls' response times ([`Stats::ewma`], 0 while unknown)
/// times its calls in flight plus one. Ties are broken by weighted random
/// among the tied (Dubbo's `shortestresponse`, which uses a sliding-window
/// average where this uses an EWMA).
///
/// [`Stats::ewma`]: super::Stats::ewma
#[derive(Debug)]
pub struct ShortestResponse {
    rng: SharedRng,
    clock: Arc<dyn Clock>,
}

impl ShortestResponse {
    /// A balancer seeded from the operating system's entropy.
    pub fn new() -> Self {
        Self {
            rng: SharedRng::from_entropy(),
            clock: system_clock(),
        }
    }

    /// A balancer whose tie-breaking is reproducible from `seed`.
    pub fn with_seed(seed: u64) -> Self {
        Self {
            rng: SharedRng::with_seed(seed),
            clock: system_clock(),
        }
    }

    /// Returns `self` reading warm-up time from `clock`.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
}

impl Default for ShortestResponse {
    fn default() -> Self {
        Self::new()
    }
}

impl LoadBalance for ShortestResponse {
    fn select(&self, candidates: &[Candidate<'_>], _invocation: &Invocation) -> usize {
        if candidates.len() <= 1 {
            return 0;
        }
        let estimates: Vec<u128> = candidates
            .iter()
            .map(|c| {
                let rt = c.stats.ewma().map_or(0, |d| d.as_micros());
                rt * (u128::from(c.stats.active()) + 1)
            })
            .collect();
        let shortest = estimates.iter().copied().min().unwrap_or(0);
        let tied: Vec<usize> = (0..candidates.len()).filter(|&i| estimates[i] == shortest).collect();
        if let [only] = tied.as_slice() {
            return *only;
        }
        weighted_among(&self.rng, candidates, tied, self.clock.now_ms())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::test_util::*;
    use super::*;

    #[test]
    fn single_candidate() {
        assert_single(&ShortestResponse::with_seed(1));
    }

    #[test]
    fn prefers_the_fast_provider() {
        let providers = weighted(&[100, 100, 100]);
        for _ in 0..5 {
            providers[0].1.record(Duration::from_millis(50), true);
            providers[1].1.record(Duration::from_millis(5), true);
            providers[2].1.record(Duration::from_millis(20), true);
        }
        let counts = histogram(&ShortestResponse::with_seed(2), &candidates(&providers), 1_000);
        assert_eq!(counts, vec![0, 1_000, 0]);
    }

    #[test]
    fn in_flight_calls_raise_the_estimate() {
        let providers: Vec<_> = weighted(&[100, 100])
            .into_iter()
            .map(|(url, stats)| (url, std::sync::Arc::new(stats)))
            .collect();
        providers[0].1.record(Duration::from_millis(10), true);
        providers[1].1.record(Duration::from_millis(15), true);
        let _busy = providers[0].1.start();
        let cands: Vec<_> = providers
            .iter()
            .map(|(url, stats)| Candidate::new(url, stats))
            .collect();
        // 10 ms × (1 in flight + 1) = 20 > 15 ms × 1.
        let counts = histogram(&ShortestResponse::with_seed(2), &cands, 100);
        assert_eq!(counts, vec![0, 100]);
    }

    #[test]
    fn ties_spread() {
        let providers = weighted(&[100, 100]);
        let counts = histogram(&ShortestResponse::with_seed(4), &candidates(&providers), 1_000);
        assert!(counts.iter().all(|&c| c > 400), "{counts:?}");
    }
}

//! Fewest in-flight calls.

use std::sync::Arc;

use rpc_core::Invocation;

use super::{Candidate, Clock, LoadBalance, SharedRng, system_clock, weighted_among};

/// Picks the provider with the fewest calls in flight ([`Stats::active`]);
/// ties are broken by weighted random among the tied (Dubbo's
/// `leastactive`).
///
/// [`Stats::active`]: super::Stats::active
#[derive(Debug)]
pub struct LeastActive {
    rng: SharedRng,
    clock: Arc<dyn Clock>,
}

impl LeastActive {
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

impl Default for LeastActive {
    fn default() -> Self {
        Self::new()
    }
}

impl LoadBalance for LeastActive {
    fn select(&self, candidates: &[Candidate<'_>], _invocation: &Invocation) -> usize {
        if candidates.len() <= 1 {
            return 0;
        }
        let actives: Vec<u32> = candidates.iter().map(|c| c.stats.active()).collect();
        let least = actives.iter().copied().min().unwrap_or(0);
        let tied: Vec<usize> = (0..candidates.len()).filter(|&i| actives[i] == least).collect();
        if let [only] = tied.as_slice() {
            return *only;
        }
        weighted_among(&self.rng, candidates, tied, self.clock.now_ms())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::test_util::*;
    use super::super::{Candidate, Stats};
    use super::*;

    #[test]
    fn single_candidate() {
        assert_single(&LeastActive::with_seed(1));
    }

    #[test]
    fn picks_the_idle_one() {
        let stats: Vec<Arc<Stats>> = (0..3).map(|_| Arc::new(Stats::new())).collect();
        let _busy = [stats[0].start(), stats[0].start(), stats[2].start()];
        let urls = [url(1, &[]), url(2, &[]), url(3, &[])];
        let cands: Vec<Candidate<'_>> = urls
            .iter()
            .zip(&stats)
            .map(|(url, stats)| Candidate::new(url, stats))
            .collect();
        let lb = LeastActive::with_seed(5);
        let counts = histogram(&lb, &cands, 1_000);
        assert_eq!(counts, vec![0, 1_000, 0]);
    }

    #[test]
    fn ties_spread_by_weight() {
        let stats: Vec<Arc<Stats>> = (0..3).map(|_| Arc::new(Stats::new())).collect();
        let _busy = stats[1].start();
        let urls = [url(1, &[("weight", "1")]), url(2, &[]), url(3, &[("weight", "3")])];
        let cands: Vec<Candidate<'_>> = urls
            .iter()
            .zip(&stats)
            .map(|(url, stats)| Candidate::new(url, stats))
            .collect();
        let counts = histogram(&LeastActive::with_seed(8), &cands, 4_000);
        assert_eq!(counts[1], 0);
        assert!((800..1_200).contains(&counts[0]), "{counts:?}");
        assert!((2_800..3_200).contains(&counts[2]), "{counts:?}");
    }
}

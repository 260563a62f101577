//! Power of two choices with peak-EWMA cost.

use std::time::Duration;

use rpc_core::Invocation;

use super::{Candidate, LoadBalance, SharedRng};

/// Response-time estimate of a provider that has not answered yet.
pub const DEFAULT_RTT: Duration = Duration::from_millis(30);

/// Picks two distinct providers at random and takes the cheaper one (the
/// first on ties). A provider's cost is tower's peak-EWMA load: its
/// response-time estimate ([`Stats::peak_ewma`], or a default before its
/// first answer) times its calls in flight plus one. Weights are not used.
///
/// [`Stats::peak_ewma`]: super::Stats::peak_ewma
#[derive(Debug)]
pub struct P2c {
    rng: SharedRng,
    default_rtt: Duration,
}

impl P2c {
    /// A balancer seeded from the operating system's entropy.
    pub fn new() -> Self {
        Self {
            rng: SharedRng::from_entropy(),
            default_rtt: DEFAULT_RTT,
        }
    }

    /// A balancer whose picks are reproducible from `seed`.
    pub fn with_seed(seed: u64) -> Self {
        Self {
            rng: SharedRng::with_seed(seed),
            default_rtt: DEFAULT_RTT,
        }
    }

    /// Returns `self` assuming `rtt` for providers that have not answered yet
    /// (default [`DEFAULT_RTT`]).
    pub fn with_default_rtt(mut self, rtt: Duration) -> Self {
        self.default_rtt = rtt;
        self
    }

    fn cost(&self, candidate: &Candidate<'_>) -> f64 {
        let rtt = candidate.stats.peak_ewma().unwrap_or(self.default_rtt);
        rtt.as_secs_f64() * (f64::from(candidate.stats.active()) + 1.0)
    }
}

impl Default for P2c {
    fn default() -> Self {
        Self::new()
    }
}

impl LoadBalance for P2c {
    fn select(&self, candidates: &[Candidate<'_>], _invocation: &Invocation) -> usize {
        let len = u64::try_from(candidates.len()).unwrap_or(u64::MAX);
        if len <= 1 {
            return 0;
        }
        // Two distinct indices: a uniform, b uniform among the others.
        let a = self.rng.below(len);
        let mut b = self.rng.below(len - 1);
        if b >= a {
            b += 1;
        }
        let (a, b) = (usize::try_from(a).unwrap_or(0), usize::try_from(b).unwrap_or(0));
        match (candidates.get(a), candidates.get(b)) {
            (Some(ca), Some(cb)) if self.cost(cb) < self.cost(ca) => b,
            _ => a,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::Stats;
    use super::super::test_util::*;
    use super::*;

    #[test]
    fn single_candidate() {
        assert_single(&P2c::with_seed(1));
    }

    #[test]
    fn expensive_provider_is_rarely_picked() {
        let providers = weighted(&[1, 1, 1, 1]);
        providers[0].1.record(Duration::from_millis(500), true);
        for (_, stats) in &providers[1..] {
            stats.record(Duration::from_millis(5), true);
        }
        let counts = histogram(&P2c::with_seed(11), &candidates(&providers), 10_000);
        assert!(counts[0] < 1_000, "{counts:?}");
        assert!(counts[1..].iter().all(|&c| c > 2_500), "{counts:?}");
    }

    #[test]
    fn in_flight_calls_count() {
        let stats: Vec<Arc<Stats>> = (0..2).map(|_| Arc::new(Stats::new())).collect();
        let _busy = stats[0].start();
        let urls = [url(1, &[]), url(2, &[])];
        let cands: Vec<_> = urls
            .iter()
            .zip(&stats)
            .map(|(url, stats)| super::super::Candidate::new(url, stats))
            .collect();
        let counts = histogram(&P2c::with_seed(3), &cands, 100);
        assert_eq!(counts, vec![0, 100]);
    }

    #[test]
    fn picks_spread_when_equal() {
        let providers = weighted(&[1, 1, 1]);
        let counts = histogram(&P2c::with_seed(12), &candidates(&providers), 3_000);
        assert!(counts.iter().all(|&c| c > 600), "{counts:?}");
    }
}

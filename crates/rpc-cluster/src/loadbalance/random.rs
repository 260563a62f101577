//! Weighted random, with warm-up.

use std::sync::Arc;

use rpc_core::Invocation;

use super::{Candidate, Clock, LoadBalance, SharedRng, system_clock, weighted_among};

/// Picks a provider at random, in proportion to its (warmed-up) weight;
/// uniformly when all weights are equal. Dubbo's `random`, its default.
#[derive(Debug)]
pub struct Random {
    rng: SharedRng,
    clock: Arc<dyn Clock>,
}

impl Random {
    /// A balancer seeded from the operating system's entropy.
    pub fn new() -> Self {
        Self {
            rng: SharedRng::from_entropy(),
            clock: system_clock(),
        }
    }

    /// A balancer whose picks are reproducible from `seed`.
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

impl Default for Random {
    fn default() -> Self {
        Self::new()
    }
}

impl LoadBalance for Random {
    fn select(&self, candidates: &[Candidate<'_>], _invocation: &Invocation) -> usize {
        if candidates.len() <= 1 {
            return 0;
        }
        weighted_among(&self.rng, candidates, 0..candidates.len(), self.clock.now_ms())
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;

    #[test]
    fn single_candidate() {
        assert_single(&Random::with_seed(1));
    }

    #[test]
    fn follows_weights_1_2_3() {
        let providers = weighted(&[1, 2, 3]);
        let counts = histogram(&Random::with_seed(42), &candidates(&providers), 60_000);
        // Each within 3% of its expected count.
        for (count, expected) in counts.iter().zip([10_000.0, 20_000.0, 30_000.0]) {
            assert!((*count as f64 - expected).abs() / expected < 0.03, "{counts:?}");
        }
    }

    #[test]
    fn equal_weights_are_uniform() {
        let providers = weighted(&[5, 5, 5, 5]);
        let counts = histogram(&Random::with_seed(3), &candidates(&providers), 40_000);
        for count in counts {
            assert!((9_000..11_000).contains(&count));
        }
    }

    #[test]
    fn weight_zero_never_picked() {
        let providers = weighted(&[0, 1, 0]);
        let counts = histogram(&Random::with_seed(7), &candidates(&providers), 10_000);
        assert_eq!(counts, vec![0, 10_000, 0]);
        let all_zero = weighted(&[0, 0]);
        let counts = histogram(&Random::with_seed(7), &candidates(&all_zero), 10_000);
        assert!(counts.iter().all(|&c| c > 4_000), "{counts:?}");
    }

    #[test]
    fn warming_provider_gets_a_tenth_of_its_weight() {
        let now = 1_700_000_000_000_u64;
        let started = (now - 60_000).to_string();
        let providers = vec![
            (url(1, &[]), Default::default()),
            (
                url(2, &[("timestamp", started.as_str()), ("warmup", "600000")]),
                Default::default(),
            ),
        ];
        let lb = Random::with_seed(9).with_clock(clock(now));
        let counts = histogram(&lb, &candidates(&providers), 55_000);
        // Weights 100 and 10: the warming one gets 1/11 of the picks.
        let share = counts[1] as f64 / 55_000.0;
        assert!((share - 1.0 / 11.0).abs() < 0.01, "{counts:?}");
    }
}

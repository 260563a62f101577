//! Smooth weighted round robin.

use std::sync::{Arc, Mutex, PoisonError};

use rpc_core::Invocation;
use rustc_hash::FxHashMap;
use smallvec::SmallVec;

use super::{Candidate, Clock, LoadBalance, system_clock};

/// How long the state of a provider absent from the candidates is kept
/// (Dubbo's recycle period).
const RECYCLE_MS: u64 = 60_000;

/// nginx's smooth weighted round robin, per method (Dubbo's `roundrobin`).
///
/// Each pick adds every candidate's weight to its running `current`, picks
/// the largest `current` (the first one on ties) and subtracts the total
/// weight from it. Weights 5:1:1 give `a a b a c a a`. The state is keyed by
/// provider identity (`protocol://host:port/path`), so it survives changes of
/// the candidate list; a provider absent for a minute is forgotten. A
/// provider's `current` restarts when its weight changes. When every
/// candidate weighs 0 they all count as 1.
#[derive(Debug)]
pub struct RoundRobin {
    state: Mutex<State>,
    clock: Arc<dyn Clock>,
}

#[derive(Debug, Default)]
struct State {
    /// Method name → provider identity (already a hash) → state.
    methods: FxHashMap<String, FxHashMap<u64, Entry>>,
    /// When states of absent providers were last dropped.
    recycled_ms: u64,
}

#[derive(Debug)]
struct Entry {
    weight: i64,
    current: i64,
    last_seen_ms: u64,
}

impl RoundRobin {
    /// A balancer with no state.
    pub fn new() -> Self {
        Self {
            state: Mutex::default(),
            clock: system_clock(),
        }
    }

    /// Returns `self` reading time (warm-up, state expiry) from `clock`.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
}

impl Default for RoundRobin {
    fn default() -> Self {
        Self::new()
    }
}

impl LoadBalance for RoundRobin {
    fn select(&self, candidates: &[Candidate<'_>], invocation: &Invocation) -> usize {
        if candidates.len() <= 1 {
            return 0;
        }
        let now = self.clock.now_ms();
        let weights: SmallVec<[i64; 8]> = candidates.iter().map(|c| i64::from(c.weighting.at(now))).collect();
        let all_zero = weights.iter().all(|&w| w == 0);
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let state = &mut *state;
        let method = invocation.method();
        // One lookup when the method is known (a key is allocated only for a new one).
        let entries = match state.methods.get_mut(method) {
            Some(entries) => entries,
            None => state.methods.entry(method.to_owned()).or_default(),
        };
        let mut total = 0_i64;
        let mut best: Option<(usize, i64, u64)> = None;
        for (index, (candidate, &w)) in candidates.iter().zip(&weights).enumerate() {
            let w = if all_zero { 1 } else { w };
            let key = candidate.identity;
            let entry = entries.entry(key).or_insert(Entry {
                weight: w,
                current: 0,
                last_seen_ms: now,
            });
            if entry.weight != w {
                entry.weight = w;
                entry.current = 0;
            }
            entry.last_seen_ms = now;
            entry.current += w;
            total += w;
            if best.is_none_or(|(_, current, _)| entry.current > current) {
                best = Some((index, entry.current, key));
            }
        }
        if let Some(entry) = best.and_then(|(_, _, key)| entries.get_mut(&key)) {
            entry.current -= total;
        }
        // Forget providers absent for a while; checked at most once a second.
        if now.saturating_sub(state.recycled_ms) >= 1_000 {
            state.recycled_ms = now;
            for entries in state.methods.values_mut() {
                entries.retain(|_, e| now.saturating_sub(e.last_seen_ms) < RECYCLE_MS);
            }
        }
        best.map_or(0, |(index, _, _)| index)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;

    fn picks(lb: &RoundRobin, cands: &[Candidate<'_>], n: usize) -> String {
        let inv = invocation(b"");
        (0..n)
            .map(|_| char::from(b'a' + u8::try_from(lb.select(cands, &inv)).unwrap_or(0)))
            .collect()
    }

    #[test]
    fn single_candidate() {
        assert_single(&RoundRobin::new());
    }

    #[test]
    fn nginx_sequence_5_1_1() {
        let providers = weighted(&[5, 1, 1]);
        let lb = RoundRobin::new();
        let cands = candidates(&providers);
        assert_eq!(picks(&lb, &cands, 7), "aabacaa");
        assert_eq!(picks(&lb, &cands, 7), "aabacaa");
    }

    #[test]
    fn equal_weights_rotate() {
        let providers = weighted(&[3, 3, 3]);
        let lb = RoundRobin::new();
        assert_eq!(picks(&lb, &candidates(&providers), 9), "abcabcabc");
    }

    #[test]
    fn weight_zero_never_picked() {
        let providers = weighted(&[0, 2, 1]);
        let lb = RoundRobin::new();
        assert!(!picks(&lb, &candidates(&providers), 30).contains('a'));
        let all_zero = weighted(&[0, 0]);
        assert_eq!(picks(&lb, &candidates(&all_zero), 4), "abab");
    }

    #[test]
    fn state_survives_reordering() {
        let providers = weighted(&[5, 1, 1]);
        let lb = RoundRobin::new();
        assert_eq!(picks(&lb, &candidates(&providers), 3), "aab");
        // Same providers, reversed: c b a.
        let reversed: Vec<_> = candidates(&providers).into_iter().rev().collect();
        let inv = invocation(b"");
        let rest: Vec<u16> = (0..4)
            .map(|_| reversed[lb.select(&reversed, &inv)].url.port() - 20880)
            .collect();
        assert_eq!(rest, vec![0, 2, 0, 0]); // a c a a
    }

    #[test]
    fn absent_providers_are_forgotten() {
        let providers = weighted(&[1, 1, 1]);
        let clk = clock(1_000);
        let lb = RoundRobin::new().with_clock(clk.clone());
        let cands = candidates(&providers);
        picks(&lb, &cands, 3);
        clk.0.store(1_000 + RECYCLE_MS, std::sync::atomic::Ordering::Relaxed);
        picks(&lb, &cands[..2], 1);
        let state = lb.state.lock().unwrap_or_else(PoisonError::into_inner);
        assert_eq!(state.methods.get("greet").map(std::collections::HashMap::len), Some(2));
    }
}

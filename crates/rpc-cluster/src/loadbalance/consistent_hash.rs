//! Consistent hashing on the call's arguments.

use std::sync::{Mutex, PoisonError};

use rpc_core::Invocation;

use super::{Candidate, LoadBalance, mix, stable_hash};

/// Virtual nodes per provider on the ring (Dubbo's default).
pub const VIRTUAL_NODES: usize = 160;

/// Sends calls with the same arguments to the same provider, and moves only
/// the keys of a provider that goes away (Dubbo's `consistenthash`).
///
/// Each provider owns [`VIRTUAL_NODES`] points of a hash ring, at the hashes
/// of `host:port#i`. A call goes to the owner of the first point at or after
/// the hash of its key: the arguments chosen by the method's
/// `hash_arguments` setting (the first by default, as in Dubbo), hashed by
/// the stub into [`Invocation::hash_key`]. When the stub did not compute one
/// (the balancer was chosen by the provider's URL, not by the consumer), the
/// key is the whole encoded argument tuple. Hashes are FNV-1a with a mixing
/// finalizer: stable across runs and processes, so every consumer maps a key
/// the same way.
///
/// Rings are kept for the last [`RINGS`] candidate sets: while a provider
/// fails, calls alternate between the whole set and the set without it (or
/// without the providers a call already tried), and rebuilding a ring of 160
/// points per provider on every such call would spend CPU exactly when the
/// cluster is short of it.
#[derive(Debug, Default)]
pub struct ConsistentHash {
    /// Most recently used last.
    rings: Mutex<Vec<Ring>>,
}

/// Candidate sets whose rings are kept.
pub const RINGS: usize = 8;

#[derive(Debug)]
struct Ring {
    /// Identity of the candidate list the ring was built for.
    fingerprint: u64,
    /// `(hash, candidate index)`, sorted by hash.
    points: Vec<(u64, usize)>,
}

impl Ring {
    fn build(addresses: &[String], fingerprint: u64) -> Self {
        let mut points = Vec::with_capacity(addresses.len() * VIRTUAL_NODES);
        for (index, address) in addresses.iter().enumerate() {
            for i in 0..VIRTUAL_NODES {
                points.push((stable_hash(format!("{address}#{i}").as_bytes()), index));
            }
        }
        points.sort_unstable();
        Ring { fingerprint, points }
    }

    fn lookup(&self, hash: u64) -> usize {
        let at = self.points.partition_point(|&(h, _)| h < hash);
        self.points
            .get(at)
            .or_else(|| self.points.first())
            .map_or(0, |&(_, index)| index)
    }
}

impl ConsistentHash {
    /// A balancer with no ring yet.
    pub fn new() -> Self {
        Self::default()
    }
}

impl LoadBalance for ConsistentHash {
    fn select(&self, candidates: &[Candidate<'_>], invocation: &Invocation) -> usize {
        if candidates.len() <= 1 {
            return 0;
        }
        // The candidates' identities, in order: no allocation per call.
        let fingerprint = candidates
            .iter()
            .fold(candidates.len() as u64, |h, c| mix(h ^ c.identity));
        let key = match invocation.hash_key() {
            Some(key) => mix(key),
            None => stable_hash(invocation.args()),
        };
        let mut rings = self.rings.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(at) = rings.iter().position(|r| r.fingerprint == fingerprint) {
            let index = rings[at].lookup(key);
            if at + 1 != rings.len() {
                let ring = rings.remove(at);
                rings.push(ring);
            }
            return index;
        }
        let addresses: Vec<String> = candidates.iter().map(|c| c.url.address()).collect();
        let ring = Ring::build(&addresses, fingerprint);
        let index = ring.lookup(key);
        if rings.len() >= RINGS {
            rings.remove(0);
        }
        rings.push(ring);
        index
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;

    fn owner(lb: &ConsistentHash, cands: &[Candidate<'_>], key: usize) -> u16 {
        cands[lb.select(cands, &invocation(format!("key-{key}").as_bytes()))]
            .url
            .port()
    }

    #[test]
    fn single_candidate() {
        assert_single(&ConsistentHash::new());
    }

    #[test]
    fn same_key_same_provider() {
        let providers = weighted(&[1; 5]);
        let cands = candidates(&providers);
        let lb = ConsistentHash::new();
        for key in 0..100 {
            let first = owner(&lb, &cands, key);
            assert_eq!(owner(&lb, &cands, key), first);
            // A fresh balancer (another consumer) agrees.
            assert_eq!(owner(&ConsistentHash::new(), &cands, key), first);
        }
    }

    #[test]
    fn even_distribution() {
        let providers = weighted(&[1; 10]);
        let cands = candidates(&providers);
        let lb = ConsistentHash::new();
        let mut counts = [0_usize; 10];
        for key in 0..10_000 {
            counts[usize::from(owner(&lb, &cands, key) - 20880)] += 1;
        }
        for count in counts {
            assert!((500..=1_500).contains(&count), "{counts:?}");
        }
    }

    #[test]
    fn removal_moves_only_the_removed_keys() {
        let providers = weighted(&[1; 10]);
        let all = candidates(&providers);
        let removed = all[3].url.port();
        let rest: Vec<_> = all.iter().copied().filter(|c| c.url.port() != removed).collect();
        let lb = ConsistentHash::new();
        let before: Vec<u16> = (0..10_000).map(|k| owner(&lb, &all, k)).collect();
        let after: Vec<u16> = (0..10_000).map(|k| owner(&lb, &rest, k)).collect();
        let mut moved = 0;
        for (b, a) in before.iter().zip(&after) {
            if *b == removed {
                moved += 1;
                assert_ne!(*a, removed);
            } else {
                assert_eq!(a, b);
            }
        }
        assert!(moved > 0);
    }

    /// Defect: one ring was kept, so calls alternating between two candidate
    /// sets (a failing provider in and out) rebuilt it on every call.
    #[test]
    fn rings_are_built_once_per_candidate_set_while_sets_alternate() {
        let providers = weighted(&[1; 3]);
        let cands = candidates(&providers);
        let lb = ConsistentHash::new();
        let built = |lb: &ConsistentHash| lb.rings.lock().unwrap_or_else(PoisonError::into_inner).len();
        let points = |lb: &ConsistentHash| {
            lb.rings
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .map(|r| r.points.as_ptr() as usize)
                .collect::<Vec<_>>()
        };
        owner(&lb, &cands, 1);
        owner(&lb, &cands[..2], 1);
        let kept = points(&lb);
        for key in 0..100 {
            owner(&lb, &cands, key);
            owner(&lb, &cands[..2], key);
        }
        assert_eq!(built(&lb), 2);
        let mut after = points(&lb);
        let mut before = kept.clone();
        before.sort_unstable();
        after.sort_unstable();
        assert_eq!(after, before, "the same two rings, never rebuilt");
        // At most RINGS sets are kept.
        let many = weighted(&[1; 12]);
        let many = candidates(&many);
        for n in 2..12 {
            owner(&lb, &many[..n], 1);
        }
        assert_eq!(built(&lb), RINGS);
    }
}

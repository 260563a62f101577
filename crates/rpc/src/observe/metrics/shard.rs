//! Per-thread shards of a method's counters.
//!
//! Recording a call must not make the threads that record calls at once
//! fight over one cache line: a relaxed atomic addition is cheap while the
//! line stays in one core's cache, and costs many times as much when every
//! call moves it to another core. So each method's counters are kept in
//! [`Shard`]s, one per recording thread, summed when rendered.
//!
//! Threads take a slot number when they first record, given back when they
//! end. The first [`OWNED`] slots have a shard that only their thread
//! writes, so it counts with a plain load and store (no read-modify-write);
//! threads beyond them share one more shard, with atomic additions. Either
//! way every call is counted exactly once. A method's shard of a slot is
//! made when that slot's thread first records a call of it, so a method
//! costs memory for the threads that call it, not for every thread.

use std::cell::Cell;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

use tokio::time::Instant;

use super::{RT_BUCKETS_MS, RT_WINDOW};

/// How many threads get a shard of their own; the rest share one more.
pub(super) const OWNED: usize = 64;

/// Succeeded, then one per [`FailureKind`](super::FailureKind).
pub(super) const OUTCOMES: usize = 8;

/// One thread's counters of one method. Aligned to keep two shards off one
/// cache line (128 bytes: adjacent lines are fetched in pairs).
#[derive(Debug)]
#[repr(align(128))]
pub(super) struct Shard {
    pub(super) requests: AtomicU64,
    /// Succeeded (0), then failed by [`FailureKind`](super::FailureKind) (1 + its index).
    pub(super) outcomes: [AtomicU64; OUTCOMES],
    pub(super) bytes_out: AtomicU64,
    pub(super) bytes_in: AtomicU64,
    pub(super) rt_sum_us: AtomicU64,
    /// The latency of this shard's latest call, and when it ended ([`stamp`]).
    pub(super) last_us: AtomicU64,
    pub(super) last_at: AtomicU64,
    /// Calls per latency bucket (not cumulative); slower ones are counted
    /// by the outcomes alone.
    pub(super) buckets: [AtomicU64; RT_BUCKETS_MS.len()],
    /// This shard's latest [`RT_WINDOW`] latencies, a ring.
    pub(super) window: Box<[AtomicU32]>,
    pub(super) window_next: AtomicUsize,
}

impl Shard {
    fn new() -> Self {
        Shard {
            requests: AtomicU64::new(0),
            outcomes: Default::default(),
            bytes_out: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            rt_sum_us: AtomicU64::new(0),
            last_us: AtomicU64::new(0),
            last_at: AtomicU64::new(0),
            buckets: Default::default(),
            window: (0..RT_WINDOW).map(|_| AtomicU32::new(0)).collect(),
            window_next: AtomicUsize::new(0),
        }
    }

    /// Adds `n` to `counter` of this shard: a load and a store when this
    /// thread owns the shard (no other thread writes it), an atomic
    /// addition when threads share it.
    #[inline]
    pub(super) fn add(&self, counter: &AtomicU64, n: u64, owned: bool) {
        if owned {
            counter.store(counter.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
        } else {
            counter.fetch_add(n, Ordering::Relaxed);
        }
    }
}

/// A method's shards, by slot: [`OWNED`] owned ones and the shared one.
#[derive(Debug)]
pub(super) struct Shards(Box<[OnceLock<Box<Shard>>]>);

impl Default for Shards {
    fn default() -> Self {
        Shards((0..=OWNED).map(|_| OnceLock::new()).collect())
    }
}

impl Shards {
    /// The calling thread's shard, and whether the thread owns it.
    #[inline]
    pub(super) fn mine(&self) -> (&Shard, bool) {
        let slot = slot();
        let shard = self.0[slot.min(OWNED)].get_or_init(|| Box::new(Shard::new()));
        (shard, slot < OWNED)
    }

    /// Every shard made so far.
    pub(super) fn iter(&self) -> impl Iterator<Item = &Shard> {
        self.0.iter().filter_map(|s| s.get().map(|s| &**s))
    }
}

/// Slots given back by threads that ended.
static FREE: Mutex<Vec<usize>> = Mutex::new(Vec::new());
/// The next slot never taken.
static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A thread's slot, given back when the thread ends. The mutex orders the
/// last writes of the thread that gave it back before the first of the
/// thread that takes it next, so the slot keeps a single writer at a time.
struct Slot(usize);

impl Slot {
    fn take() -> Slot {
        if let Some(slot) = FREE.lock().unwrap_or_else(PoisonError::into_inner).pop() {
            return Slot(slot);
        }
        Slot(NEXT.fetch_add(1, Ordering::Relaxed).min(OWNED))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        // Whatever this thread records from now on (other thread-locals'
        // destructors may) goes to the shared shard.
        let _ = CACHED.try_with(|c| c.set(OWNED));
        if self.0 < OWNED {
            FREE.lock().unwrap_or_else(PoisonError::into_inner).push(self.0);
        }
    }
}

thread_local! {
    static SLOT: Slot = Slot::take();
    /// [`SLOT`]'s number, read without touching the key's lazy state.
    static CACHED: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// The calling thread's slot: the shared one while the thread ends (its own
/// may be taken by another thread already).
#[inline]
fn slot() -> usize {
    let cached = CACHED.try_with(Cell::get).unwrap_or(OWNED);
    if cached != usize::MAX {
        return cached;
    }
    let slot = SLOT.try_with(|s| s.0).unwrap_or(OWNED);
    let _ = CACHED.try_with(|c| c.set(slot));
    slot
}

/// `at` as a number that orders the ends of calls: nanoseconds since the
/// first call any method recorded.
pub(super) fn stamp(at: Instant) -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    let base = *BASE.get_or_init(|| at);
    u64::try_from(at.saturating_duration_since(base).as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_count_into_shards_of_their_own_and_every_call_is_counted() {
        let shards = std::sync::Arc::new(Shards::default());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let shards = shards.clone();
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        let (shard, owned) = shards.mine();
                        shard.add(&shard.requests, 1, owned);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let total: u64 = shards.iter().map(|s| s.requests.load(Ordering::Relaxed)).sum();
        assert_eq!(total, 40_000);
    }
}

//! Load balancers: which of the usable providers gets one call.
//!
//! The cluster narrows the directory's endpoints down to the candidates a call
//! may use (routers, providers already tried by failover), then asks a
//! [`LoadBalance`] for one of them. A balancer sees each candidate as a
//! [`Candidate`]: its registry [`Url`] (weight, warm-up, registration time) and
//! its [`Stats`] (in-flight calls, response-time estimates), which the cluster
//! owns and keeps across directory updates.
//!
//! The balancers follow Dubbo's semantics:
//!
//! | balancer | picks |
//! |---|---|
//! | [`Random`] | weighted random, with warm-up |
//! | [`RoundRobin`] | smooth weighted round robin (nginx) |
//! | [`LeastActive`] | fewest in-flight calls, ties by weighted random |
//! | [`ShortestResponse`] | lowest estimated response time × (in-flight + 1) |
//! | [`ConsistentHash`] | a ring of 160 virtual nodes per provider, keyed by the arguments |
//! | [`P2c`] | the cheaper of two random providers, cost from peak-EWMA latency |
//!
//! # Weight and warm-up
//!
//! A provider's weight is its URL parameter `weight` (default 100; negative or
//! unparsable values count as 100; 0 means "never picked unless every
//! candidate weighs 0"). A freshly started provider warms up: during the first
//! `warmup` milliseconds (URL parameter, default ten minutes) after its
//! `timestamp` (registration time, ms since the Unix epoch) its weight ramps
//! linearly, `weight × uptime / warmup`, at least 1. Time comes from a
//! [`Clock`] so that tests are deterministic.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::rngs::SmallRng;
use rand::{Rng as _, SeedableRng};
use rpc_core::url::keys;
use rpc_core::{Invocation, Url};

mod consistent_hash;
mod least_active;
mod p2c;
mod random;
mod round_robin;
mod shortest_response;

pub use consistent_hash::{ConsistentHash, RINGS, VIRTUAL_NODES};
pub use least_active::LeastActive;
pub use p2c::{DEFAULT_RTT, P2c};
pub use random::Random;
pub use round_robin::RoundRobin;
pub use shortest_response::ShortestResponse;

/// Picks the provider of one call among candidates.
pub trait LoadBalance: Send + Sync + fmt::Debug {
    /// Index into `candidates` (non-empty) of the provider for `invocation`.
    ///
    /// An empty slice is a caller bug; balancers return 0 for it.
    fn select(&self, candidates: &[Candidate<'_>], invocation: &Invocation) -> usize;
}

/// What a balancer sees of one candidate provider.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    /// The provider's URL (weight, warm-up, timestamp parameters).
    pub url: &'a Url,
    /// The provider's call statistics.
    pub stats: &'a Stats,
    /// The URL's weight parameters, parsed.
    pub weighting: Weighting,
    /// The URL's [`identity`].
    pub identity: u64,
}

impl<'a> Candidate<'a> {
    /// A candidate, parsing what it needs of `url` (endpoints keep it parsed).
    pub fn new(url: &'a Url, stats: &'a Stats) -> Self {
        Candidate {
            url,
            stats,
            weighting: Weighting::of(url),
            identity: identity(url),
        }
    }
}

/// URL parameter: warm-up duration in milliseconds.
pub const WARMUP: &str = "warmup";
/// Weight of a provider whose URL says nothing (Dubbo's default).
pub const DEFAULT_WEIGHT: u32 = 100;
/// Warm-up duration when the URL says nothing: ten minutes (Dubbo's default).
pub const DEFAULT_WARMUP_MS: u64 = 10 * 60 * 1000;

/// The configured weight of `url`: parameter `weight`, 100 when absent,
/// negative or unparsable.
pub fn configured_weight(url: &Url) -> u32 {
    match url.param_parsed::<i64>(keys::WEIGHT) {
        Some(w) if w >= 0 => u32::try_from(w).unwrap_or(u32::MAX),
        _ => DEFAULT_WEIGHT,
    }
}

/// The effective weight of `url` at `now_ms` (ms since the Unix epoch):
/// the configured weight, ramped up linearly during warm-up (at least 1 while
/// warming up; 0 stays 0).
pub fn weight(url: &Url, now_ms: u64) -> u32 {
    Weighting::of(url).at(now_ms)
}

/// A provider URL's weight parameters (weight, start timestamp, warm-up),
/// parsed once: what [`weight`] computes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Weighting {
    weight: u32,
    /// Start time (ms since the Unix epoch) and warm-up length, when ramping applies.
    ramp: Option<(u64, u64)>,
}

impl Weighting {
    /// The parameters of `url`.
    pub fn of(url: &Url) -> Weighting {
        let weight = configured_weight(url);
        let timestamp = url.param_parsed::<u64>(keys::TIMESTAMP).filter(|&t| t > 0);
        let warmup = match url.param_parsed::<i64>(WARMUP) {
            Some(w) if w <= 0 => None,
            Some(w) => Some(w.unsigned_abs()),
            None => Some(DEFAULT_WARMUP_MS),
        };
        Weighting {
            weight,
            ramp: timestamp.zip(warmup),
        }
    }

    /// The effective weight at `now_ms`.
    pub fn at(&self, now_ms: u64) -> u32 {
        let weight = self.weight;
        let Some((timestamp, warmup)) = self.ramp.filter(|_| weight > 0) else {
            return weight;
        };
        // A timestamp in the future (clock skew) counts as "just started".
        let uptime = now_ms.saturating_sub(timestamp);
        if uptime >= warmup {
            return weight;
        }
        let ramped = u128::from(weight) * u128::from(uptime) / u128::from(warmup);
        u32::try_from(ramped).unwrap_or(weight).clamp(1, weight)
    }
}

/// A provider's identity, `protocol://host:port/path`, hashed: what
/// per-provider balancer state is keyed by.
pub fn identity(url: &Url) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    (url.protocol(), url.host(), url.port(), url.path()).hash(&mut hasher);
    hasher.finish()
}

/// A source of wall-clock time in milliseconds since the Unix epoch.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }
}

/// The default clock shared by balancers.
pub(crate) fn system_clock() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

/// Smoothing factor of the success-latency EWMA ([`Stats::ewma`]): each
/// sample counts for this share of the new estimate.
const EWMA_ALPHA: f64 = 0.3;
/// Decay time constant of the peak-EWMA estimate ([`Stats::peak_ewma`]).
const PEAK_EWMA_TAU: Duration = Duration::from_secs(10);

/// Per-provider statistics that balancers read.
///
/// Owned by the cluster, one per endpoint, kept across directory updates.
/// A call is counted with [`Stats::start`]; the returned [`CallGuard`] keeps
/// it in flight until dropped and records its latency on
/// [`CallGuard::finish`].
#[derive(Debug, Default)]
pub struct Stats {
    active: AtomicU32,
    /// Calls the provider answered (successes and provider errors): how the
    /// outlier detector sees progress.
    answered: AtomicU64,
    /// Taken out of rotation by the outlier detector.
    ejected: AtomicBool,
    latency: Mutex<Latency>,
}

#[derive(Debug, Default)]
struct Latency {
    /// EWMA of successful response times, nanoseconds.
    ewma_ns: Option<f64>,
    /// Peak-EWMA of all response times, nanoseconds, and when it was updated.
    peak: Option<(f64, Instant)>,
}

impl Stats {
    /// Fresh statistics: nothing in flight, no latency known.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one call as in flight until the guard drops.
    pub fn start(self: &Arc<Self>) -> CallGuard {
        self.active.fetch_add(1, Ordering::AcqRel);
        CallGuard {
            stats: Arc::clone(self),
            started: Some(Instant::now()),
        }
    }

    /// Counts one call as in flight until the guard drops, without timing
    /// it: for calls whose balancer reads no response times, which then stay
    /// as they were.
    pub fn start_untimed(self: &Arc<Self>) -> CallGuard {
        self.active.fetch_add(1, Ordering::AcqRel);
        CallGuard {
            stats: Arc::clone(self),
            started: None,
        }
    }

    /// Calls in flight.
    pub fn active(&self) -> u32 {
        self.active.load(Ordering::Acquire)
    }

    /// Records that the provider answered a call (with a result or a
    /// provider error, not a timeout or a broken connection).
    pub fn note_answer(&self) {
        self.answered.fetch_add(1, Ordering::Relaxed);
    }

    /// Calls the provider has answered so far.
    pub fn answered(&self) -> u64 {
        self.answered.load(Ordering::Relaxed)
    }

    /// Whether the outlier detector has taken the provider out of rotation.
    pub fn is_ejected(&self) -> bool {
        self.ejected.load(Ordering::Relaxed)
    }

    pub(crate) fn set_ejected(&self, ejected: bool) {
        self.ejected.store(ejected, Ordering::Relaxed);
    }

    /// Records one finished call that took `elapsed`; `ok` tells whether it
    /// succeeded. Does not touch the in-flight count.
    pub fn record(&self, elapsed: Duration, ok: bool) {
        self.record_at(elapsed, ok, Instant::now());
    }

    fn record_at(&self, elapsed: Duration, ok: bool, now: Instant) {
        let sample = elapsed.as_nanos() as f64;
        let mut latency = self.lock();
        if ok {
            latency.ewma_ns = Some(match latency.ewma_ns {
                Some(old) => old + EWMA_ALPHA * (sample - old),
                None => sample,
            });
        }
        // tower's peak-EWMA: jump to peaks, decay towards lower samples with
        // the time since the last update.
        let estimate = match latency.peak {
            Some((old, _)) if sample > old => sample,
            Some((old, at)) => {
                let since = now.saturating_duration_since(at).as_secs_f64();
                let decay = (-since / PEAK_EWMA_TAU.as_secs_f64()).exp();
                old * decay + sample * (1.0 - decay)
            }
            None => sample,
        };
        latency.peak = Some((estimate, now));
    }

    /// EWMA of the successful calls' response times; `None` before the first
    /// success.
    pub fn ewma(&self) -> Option<Duration> {
        self.lock().ewma_ns.map(nanos)
    }

    /// Peak-EWMA response-time estimate of all calls (tower's model: follows
    /// peaks at once, decays towards lower samples over about 10 s); `None`
    /// before the first call finished.
    pub fn peak_ewma(&self) -> Option<Duration> {
        self.lock().peak.map(|(ns, _)| nanos(ns))
    }

    fn lock(&self) -> MutexGuard<'_, Latency> {
        self.latency.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn nanos(ns: f64) -> Duration {
    // Saturating float-to-int conversion.
    Duration::from_nanos(ns as u64)
}

/// One in-flight call of a provider; dropping it ends the call.
#[derive(Debug)]
pub struct CallGuard {
    stats: Arc<Stats>,
    /// When the call started, if it is timed.
    started: Option<Instant>,
}

impl CallGuard {
    /// Ends the call, recording the time since [`Stats::start`] (nothing
    /// after [`Stats::start_untimed`]).
    pub fn finish(self, ok: bool) {
        let Some(started) = self.started else { return };
        // One clock read for both the response time and the decay.
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(started);
        self.stats.record_at(elapsed, ok, now);
    }

    /// Records that the provider answered this call (see [`Stats::note_answer`]).
    pub fn note_answer(&self) {
        self.stats.note_answer();
    }

    /// Ends the call, recording `elapsed` as its response time.
    pub fn finish_with(self, elapsed: Duration, ok: bool) {
        self.stats.record(elapsed, ok);
    }
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.stats.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A seedable random source shared by a balancer's calls.
#[derive(Debug)]
pub(crate) struct SharedRng(Mutex<SmallRng>);

impl SharedRng {
    pub(crate) fn from_entropy() -> Self {
        Self(Mutex::new(SmallRng::from_os_rng()))
    }

    pub(crate) fn with_seed(seed: u64) -> Self {
        Self(Mutex::new(SmallRng::seed_from_u64(seed)))
    }

    /// Uniform in `0..n`; `n` must be positive.
    pub(crate) fn below(&self, n: u64) -> u64 {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .random_range(0..n.max(1))
    }

    /// Weighted random pick among `items` (index, weight): a weight-0 item is
    /// never picked unless all weigh 0, in which case the pick is uniform.
    pub(crate) fn weighted(&self, items: &[(usize, u32)]) -> usize {
        let total: u64 = items.iter().map(|&(_, w)| u64::from(w)).sum();
        if total == 0 {
            let len = u64::try_from(items.len()).unwrap_or(u64::MAX);
            let at = usize::try_from(self.below(len)).unwrap_or(0);
            return items.get(at).map_or(0, |&(i, _)| i);
        }
        let mut offset = self.below(total);
        for &(index, w) in items {
            let w = u64::from(w);
            if offset < w {
                return index;
            }
            offset -= w;
        }
        items.last().map_or(0, |&(i, _)| i)
    }
}

/// Weighted random pick among the candidates at `indices`.
pub(crate) fn weighted_among(
    rng: &SharedRng,
    candidates: &[Candidate<'_>],
    indices: impl IntoIterator<Item = usize>,
    now_ms: u64,
) -> usize {
    let items: Vec<(usize, u32)> = indices
        .into_iter()
        .filter_map(|i| candidates.get(i).map(|c| (i, c.weighting.at(now_ms))))
        .collect();
    rng.weighted(&items)
}

/// A stable 64-bit hash: FNV-1a followed by a murmur3-style finalizer so that
/// similar inputs land far apart. Stable across runs and platforms.
pub(crate) fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix(h)
}

/// A murmur3-style finalizer: spreads similar 64-bit values far apart.
pub(crate) fn mix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

#[cfg(test)]
pub(crate) mod test_util {
    //! Helpers shared by the balancers' tests.
    #![allow(clippy::unwrap_used)]

    use std::sync::atomic::AtomicU64;

    use bytes::Bytes;
    use rpc_core::{Serialization, ServiceKey};

    use super::*;

    /// A clock that says what it is told.
    #[derive(Debug, Default)]
    pub(crate) struct FixedClock(pub(crate) AtomicU64);

    impl Clock for FixedClock {
        fn now_ms(&self) -> u64 {
            self.0.load(Ordering::Relaxed)
        }
    }

    pub(crate) fn clock(now_ms: u64) -> Arc<FixedClock> {
        Arc::new(FixedClock(AtomicU64::new(now_ms)))
    }

    /// A provider on port `port` with the given extra parameters.
    pub(crate) fn url(port: u16, params: &[(&str, &str)]) -> Url {
        let mut url = Url::new("dubbo", "10.0.0.1", port).with_path("demo.Greeter");
        for (k, v) in params {
            url.set_param(*k, *v);
        }
        url
    }

    /// Providers with the given weights, ports 20880, 20881, ...
    pub(crate) fn weighted(weights: &[u32]) -> Vec<(Url, Stats)> {
        weights
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let port = 20880 + u16::try_from(i).unwrap();
                (url(port, &[("weight", &w.to_string())]), Stats::new())
            })
            .collect()
    }

    pub(crate) fn candidates(providers: &[(Url, Stats)]) -> Vec<Candidate<'_>> {
        providers
            .iter()
            .map(|(url, stats)| Candidate::new(url, stats))
            .collect()
    }

    pub(crate) fn invocation(args: &[u8]) -> Invocation {
        Invocation::new(
            ServiceKey::new("demo.Greeter", None, None),
            "greet",
            Bytes::copy_from_slice(args),
            Serialization::Bincode,
        )
    }

    /// How often each index is picked over `n` selections.
    pub(crate) fn histogram(lb: &dyn LoadBalance, candidates: &[Candidate<'_>], n: usize) -> Vec<usize> {
        let inv = invocation(b"x");
        let mut counts = vec![0; candidates.len()];
        for _ in 0..n {
            counts[lb.select(candidates, &inv)] += 1;
        }
        counts
    }

    /// Every balancer: a single candidate is index 0.
    pub(crate) fn assert_single(lb: &dyn LoadBalance) {
        let providers = weighted(&[7]);
        let cands = candidates(&providers);
        for _ in 0..10 {
            assert_eq!(lb.select(&cands, &invocation(b"k")), 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_util::url;
    use super::*;

    #[test]
    fn weight_defaults_and_garbage() {
        assert_eq!(weight(&url(1, &[]), 0), 100);
        assert_eq!(weight(&url(1, &[("weight", "-5")]), 0), 100);
        assert_eq!(weight(&url(1, &[("weight", "abc")]), 0), 100);
        assert_eq!(weight(&url(1, &[("weight", "0")]), 0), 0);
        assert_eq!(weight(&url(1, &[("weight", "7")]), 0), 7);
    }

    #[test]
    fn warmup_ramps_linearly() {
        let t0 = 1_000_000_000;
        let u = url(1, &[("weight", "100"), ("timestamp", &t0.to_string())]);
        assert_eq!(weight(&u, t0 + 60_000), 10);
        assert_eq!(weight(&u, t0 + 300_000), 50);
        assert_eq!(weight(&u, t0), 1);
        assert_eq!(weight(&u, t0 - 5), 1);
        assert_eq!(weight(&u, t0 + DEFAULT_WARMUP_MS), 100);
        let short = url(1, &[("timestamp", &t0.to_string()), ("warmup", "1000")]);
        assert_eq!(weight(&short, t0 + 500), 50);
        assert_eq!(weight(&short, t0 + 2000), 100);
    }

    #[test]
    fn stats_count_in_flight_and_latency() {
        let stats = Arc::new(Stats::new());
        let a = stats.start();
        let b = stats.start();
        assert_eq!(stats.active(), 2);
        a.finish_with(Duration::from_millis(10), true);
        assert_eq!(stats.active(), 1);
        drop(b);
        assert_eq!(stats.active(), 0);
        assert_eq!(stats.ewma(), Some(Duration::from_millis(10)));
        stats.record(Duration::from_millis(20), false);
        assert_eq!(stats.ewma(), Some(Duration::from_millis(10)));
        assert_eq!(stats.peak_ewma(), Some(Duration::from_millis(20)));
    }

    #[test]
    fn stable_hash_is_stable() {
        assert_eq!(stable_hash(b"abc"), stable_hash(b"abc"));
        assert_ne!(stable_hash(b"abc"), stable_hash(b"abd"));
    }
}

//! Outlier detection: a provider that stops answering while the others of
//! its service answer is taken out of rotation, and probed back.
//!
//! A provider that hangs (a long GC pause, SIGSTOP, a host whose packets
//! vanish) keeps its connection open, so nothing tells the consumer it is
//! gone: without this, the balancers keep sending it calls for its whole
//! stall, and every one of them waits for its deadline. In the spirit of
//! Finagle's failure accrual and Envoy's outlier ejection, a detector task per
//! reference looks at every provider every [`interval`](OutlierConfig::interval):
//!
//! * a provider is **stalled** when it has calls in flight and has answered
//!   none of them for longer than the silence threshold: the longer of
//!   [`min_silence`](OutlierConfig::min_silence) and
//!   [`latency_factor`](OutlierConfig::latency_factor) times the service's
//!   mean latency (estimated, without timing any call, from the calls in
//!   flight and the answers per second: Little's law);
//! * a stalled provider is **ejected** only when another provider of the
//!   service answered since it went silent and is not silent itself (a slow
//!   service is not mistaken for slow providers), and never beyond
//!   [`max_ejected_share`](OutlierConfig::max_ejected_share) of the providers
//!   (by default half; the last one is never ejected);
//! * an ejected provider takes no new calls, and the calls waiting on it are
//!   **abandoned** at once as timed out (outcome unknown), so failover moves
//!   the idempotent ones to another provider while they still have time;
//! * after [`base_ejection`](OutlierConfig::base_ejection) (doubling with
//!   each ejection in a row, up to [`max_ejection`](OutlierConfig::max_ejection))
//!   it is **probed**: a protocol-level ping (the native protocol's
//!   heartbeat) that risks no call; it is taken back when it answers, and held
//!   out for longer when not. A provider whose channel cannot be pinged is
//!   taken back when its time is up.
//!
//! With the defaults a provider that stops answering is out of rotation
//! within `min_silence + interval` (200 ms) of its last answer.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use crate::directory::Directory;
use crate::endpoint::Endpoint;

/// Settings of outlier detection (see the [module docs](self)).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OutlierConfig {
    /// Whether the detector runs (default `true`).
    pub enabled: bool,
    /// How often providers are checked (default 50 ms).
    pub interval: Duration,
    /// Shortest silence that makes a provider with calls in flight stalled
    /// (default 150 ms).
    pub min_silence: Duration,
    /// A silence must also last this many times the service's mean latency
    /// (default 10).
    pub latency_factor: u32,
    /// Most providers held out of rotation at once, as a share of them
    /// (default 0.5); the last provider is never held out.
    pub max_ejected_share: f64,
    /// How long a provider is held out the first time (default 1 s); each
    /// ejection in a row doubles it.
    pub base_ejection: Duration,
    /// Longest a provider is held out before it is probed again (default 30 s).
    pub max_ejection: Duration,
}

impl Default for OutlierConfig {
    fn default() -> Self {
        OutlierConfig {
            enabled: true,
            interval: Duration::from_millis(50),
            min_silence: Duration::from_millis(150),
            latency_factor: 10,
            max_ejected_share: 0.5,
            base_ejection: Duration::from_secs(1),
            max_ejection: Duration::from_secs(30),
        }
    }
}

impl OutlierConfig {
    /// No outlier detection.
    pub fn disabled() -> Self {
        OutlierConfig {
            enabled: false,
            ..OutlierConfig::default()
        }
    }
}

/// How much of the latency window each check keeps (about ten checks' worth).
const WINDOW_DECAY: f64 = 0.9;

/// Starts the detector for `directory`'s providers (when enabled); it stops
/// when the directory is dropped.
pub fn spawn(directory: &Arc<Directory>, config: OutlierConfig) {
    if config.enabled {
        tokio::spawn(run(Arc::downgrade(directory), config));
    }
}

/// What the detector knows of one provider.
struct Tracked {
    /// Its answer count at the last check.
    answered: u64,
    /// Last time it answered, or had nothing in flight.
    progress_at: Instant,
    /// Last time it answered.
    answer_at: Option<Instant>,
    /// Held out of rotation until then.
    ejected_until: Option<Instant>,
    /// Ejections in a row.
    ejections: u32,
    /// A ping under way, after the ejection time ran out.
    ping: Option<JoinHandle<bool>>,
    /// When it was last taken back.
    readmitted_at: Option<Instant>,
}

async fn run(directory: Weak<Directory>, config: OutlierConfig) {
    let mut ticker = tokio::time::interval(config.interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut tracked: HashMap<usize, Tracked> = HashMap::new();
    // Little's law over a decaying window: calls in flight × time, and
    // answers; their ratio is the service's mean latency. Weighted by answers,
    // so a tick with few of them (start-up, connecting) counts little.
    let mut busy_seconds = 0.0f64;
    let mut answered_calls = 0.0f64;
    let mut last_tick = Instant::now();
    loop {
        ticker.tick().await;
        let Some(directory) = directory.upgrade() else { return };
        let endpoints = directory.endpoints();
        let service = directory.key().to_string();
        drop(directory);
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(last_tick).as_secs_f64();
        last_tick = now;

        // Progress since the last check.
        let mut answers = 0u64;
        let mut in_flight = 0u64;
        for endpoint in endpoints.iter() {
            let stats = endpoint.stats();
            let answered = stats.answered();
            let entry = tracked.entry(key(endpoint)).or_insert_with(|| Tracked {
                answered,
                progress_at: now,
                answer_at: None,
                ejected_until: None,
                ejections: 0,
                ping: None,
                readmitted_at: None,
            });
            if answered != entry.answered {
                answers += answered.wrapping_sub(entry.answered);
                entry.answered = answered;
                entry.progress_at = now;
                entry.answer_at = Some(now);
                // The latency estimate counts providers that answer: a
                // stalled one's calls would raise it without bound.
                in_flight += u64::from(stats.active());
            } else if stats.active() == 0 {
                entry.progress_at = now;
            }
        }
        tracked.retain(|k, t| {
            let present = endpoints.iter().any(|e| key(e) == *k);
            if !present && let Some(ping) = t.ping.take() {
                ping.abort();
            }
            present
        });
        if answers > 0 {
            busy_seconds = busy_seconds * WINDOW_DECAY + in_flight as f64 * elapsed;
            answered_calls = answered_calls * WINDOW_DECAY + answers as f64;
        }
        let latency = if answered_calls > 0.0 {
            busy_seconds / answered_calls
        } else {
            0.0
        };
        let threshold = config.min_silence.max(Duration::from_secs_f64(
            (latency * f64::from(config.latency_factor)).min(3600.0),
        ));

        let total = endpoints.len();
        let max_out = ((total as f64 * config.max_ejected_share).floor() as usize).min(total.saturating_sub(1));
        let mut out = tracked.values().filter(|t| t.ejected_until.is_some()).count();
        for endpoint in endpoints.iter() {
            let k = key(endpoint);
            let Some(entry) = tracked.get_mut(&k) else { continue };
            if entry.ejected_until.is_some() {
                if readmit(endpoint, entry, now, threshold, &config, &service).await {
                    out -= 1;
                }
                continue;
            }
            if entry
                .readmitted_at
                .is_some_and(|at| now.saturating_duration_since(at) > config.max_ejection)
            {
                entry.ejections = 0;
                entry.readmitted_at = None;
            }
            let silent = now.saturating_duration_since(entry.progress_at);
            if endpoint.stats().active() == 0 || silent <= threshold || out >= max_out {
                continue;
            }
            // Another provider is well: it answered since this one went
            // silent (checks are coarse: in the same check counts), and is not
            // silent itself now. Under load every caller soon waits on the
            // silent provider, so the others may be idle by now; when the
            // whole service hangs, every provider is silent and none is out.
            let since = entry.progress_at;
            let others_answer = endpoints.iter().any(|other| {
                key(other) != k
                    && tracked.get(&key(other)).is_some_and(|t| {
                        t.ejected_until.is_none()
                            && t.answer_at.is_some_and(|at| at >= since)
                            && (other.stats().active() == 0
                                || now.saturating_duration_since(t.progress_at) <= threshold)
                    })
            });
            if !others_answer {
                continue;
            }
            let Some(entry) = tracked.get_mut(&k) else { continue };
            eject(endpoint, entry, now, silent, &config, &service);
            out += 1;
        }
    }
}

/// The detector's key for an endpoint: its statistics, shared by every
/// version of the provider's URL.
fn key(endpoint: &Endpoint) -> usize {
    Arc::as_ptr(endpoint.stats()) as usize
}

/// How long the `ejections`-th ejection in a row lasts.
fn ejection_time(config: &OutlierConfig, ejections: u32) -> Duration {
    config
        .base_ejection
        .saturating_mul(1u32 << ejections.saturating_sub(1).min(16))
        .min(config.max_ejection)
}

fn eject(
    endpoint: &Endpoint,
    entry: &mut Tracked,
    now: Instant,
    silent: Duration,
    config: &OutlierConfig,
    service: &str,
) {
    entry.ejections = entry.ejections.saturating_add(1);
    let time = ejection_time(config, entry.ejections);
    entry.ejected_until = Some(now + time);
    endpoint.stats().set_ejected(true);
    let reason = format!(
        "abandoned: the provider answered nothing for {} ms while others of the service answered (outcome unknown)",
        silent.as_millis()
    );
    let abandoned = endpoint.probe().map_or(0, |probe| probe.abandon_in_flight(&reason));
    tracing::warn!(
        %service,
        provider = endpoint.address(),
        silent_ms = silent.as_millis() as u64,
        abandoned,
        ejected_ms = time.as_millis() as u64,
        "provider stalled: taken out of rotation"
    );
}

/// Takes an ejected provider back once its time is up and it answers a ping
/// (or at once, when it cannot be pinged); holds it out longer when it does
/// not answer. Returns whether it was taken back.
async fn readmit(
    endpoint: &Endpoint,
    entry: &mut Tracked,
    now: Instant,
    threshold: Duration,
    config: &OutlierConfig,
    service: &str,
) -> bool {
    if entry.ejected_until.is_some_and(|until| now < until) {
        return false;
    }
    let answered = match (&mut entry.ping, endpoint.probe()) {
        (None, Some(probe)) => {
            let timeout = threshold.max(Duration::from_secs(1));
            entry.ping = Some(tokio::spawn(probe.ping(timeout)));
            return false;
        }
        (Some(ping), _) if !ping.is_finished() => return false,
        (Some(ping), _) => matches!(ping.await, Ok(true)),
        (None, None) => true,
    };
    entry.ping = None;
    if !answered {
        entry.ejections = entry.ejections.saturating_add(1);
        let time = ejection_time(config, entry.ejections);
        entry.ejected_until = Some(now + time);
        tracing::info!(%service, provider = endpoint.address(), ejected_ms = time.as_millis() as u64, "stalled provider still silent: held out longer");
        return false;
    }
    entry.ejected_until = None;
    entry.readmitted_at = Some(now);
    entry.progress_at = now;
    entry.answer_at = Some(now);
    endpoint.stats().set_ejected(false);
    tracing::info!(%service, provider = endpoint.address(), "stalled provider answers again: back in rotation");
    true
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Mutex;

    use crate::config::MethodConfig;

    use super::*;
    use crate::endpoint::Probe;
    use crate::policy::test_util::*;

    /// A channel control that records abandonments and answers pings as told.
    #[derive(Default)]
    struct Scripted {
        abandoned: Mutex<Vec<String>>,
        alive: std::sync::atomic::AtomicBool,
    }

    impl Probe for Scripted {
        fn abandon_in_flight(&self, reason: &str) -> usize {
            self.abandoned.lock().unwrap().push(reason.to_string());
            1
        }

        fn ping(&self, _timeout: Duration) -> rpc_core::BoxFuture<bool> {
            let alive = self.alive.load(std::sync::atomic::Ordering::SeqCst);
            Box::pin(async move { alive })
        }
    }

    fn with_probe(provider: &mut Provider) -> Arc<Scripted> {
        let probe = Arc::new(Scripted::default());
        provider.endpoint = provider.endpoint.clone().with_probe(probe.clone());
        probe
    }

    /// Calls `provider` in the background, `count` times.
    fn load(provider: &Provider, count: usize) {
        for _ in 0..count {
            let call = invocation(MethodConfig::new(), Duration::from_secs(30));
            let call = provider.endpoint.call(call.invocation, &call.settings);
            tokio::spawn(call);
        }
    }

    async fn advance(by: Duration) {
        tokio::time::advance(by).await;
        // Let the detector's tick and the calls run.
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_provider_is_ejected_within_the_bound_while_others_answer_and_its_calls_abandoned() {
        let mut stalled = Provider::new(1, Behaviour::Hang);
        let healthy = Provider::new(2, Behaviour::Answer(Duration::from_millis(1)));
        let probe = with_probe(&mut stalled);
        let directory = directory(&[&stalled, &healthy]).await;
        spawn(&directory, OutlierConfig::default());
        let started = Instant::now();
        load(&stalled, 3);
        while !stalled.endpoint.stats().is_ejected() {
            load(&healthy, 1);
            advance(Duration::from_millis(5)).await;
            assert!(
                started.elapsed() < Duration::from_millis(250),
                "not ejected within 250 ms"
            );
        }
        assert!(
            started.elapsed() >= Duration::from_millis(150),
            "{:?}",
            started.elapsed()
        );
        assert!(!stalled.endpoint.is_available());
        assert!(!healthy.endpoint.stats().is_ejected());
        let abandoned = probe.abandoned.lock().unwrap().clone();
        assert_eq!(abandoned.len(), 1);
        assert!(abandoned[0].contains("answered nothing for"), "{abandoned:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_service_is_not_mistaken_for_slow_providers() {
        let a = Provider::new(1, Behaviour::Hang);
        let b = Provider::new(2, Behaviour::Hang);
        let directory = directory(&[&a, &b]).await;
        spawn(&directory, OutlierConfig::default());
        load(&a, 2);
        load(&b, 2);
        advance(Duration::from_secs(2)).await;
        assert!(!a.endpoint.stats().is_ejected() && !b.endpoint.stats().is_ejected());
    }

    #[tokio::test(start_paused = true)]
    async fn at_most_the_configured_share_is_held_out_and_never_the_last() {
        let providers: Vec<Provider> = (1..=4).map(|p| Provider::new(p, Behaviour::Hang)).collect();
        let healthy = Provider::new(5, Behaviour::Answer(Duration::from_millis(1)));
        let mut all: Vec<&Provider> = providers.iter().collect();
        all.push(&healthy);
        let directory = directory(&all).await;
        spawn(&directory, OutlierConfig::default());
        for provider in &providers {
            load(provider, 1);
        }
        for _ in 0..100 {
            load(&healthy, 1);
            advance(Duration::from_millis(10)).await;
        }
        let out = providers.iter().filter(|p| p.endpoint.stats().is_ejected()).count();
        assert_eq!(out, 2, "half of five, rounded down");
    }

    #[tokio::test(start_paused = true)]
    async fn an_ejected_provider_comes_back_only_when_it_answers_a_ping() {
        let mut stalled = Provider::new(1, Behaviour::Hang);
        let healthy = Provider::new(2, Behaviour::Answer(Duration::from_millis(1)));
        let probe = with_probe(&mut stalled);
        let directory = directory(&[&stalled, &healthy]).await;
        spawn(&directory, OutlierConfig::default());
        load(&stalled, 1);
        for _ in 0..40 {
            load(&healthy, 1);
            advance(Duration::from_millis(10)).await;
        }
        assert!(stalled.endpoint.stats().is_ejected());
        // Its time is up (1 s), but it does not answer the ping: held out longer.
        advance(Duration::from_millis(1500)).await;
        advance(Duration::from_millis(100)).await;
        assert!(stalled.endpoint.stats().is_ejected(), "a silent provider stays out");
        // It answers again: taken back at the next probe (2 s after the last).
        probe.alive.store(true, std::sync::atomic::Ordering::SeqCst);
        advance(Duration::from_millis(2500)).await;
        advance(Duration::from_millis(100)).await;
        assert!(!stalled.endpoint.stats().is_ejected(), "back in rotation");
        assert!(stalled.endpoint.is_available());
    }

    /// Under load every caller soon waits on the silent provider, and the
    /// others, answered and idle, get no more calls: it is still the outlier.
    #[tokio::test(start_paused = true)]
    async fn a_silent_provider_holding_every_caller_is_ejected() {
        let mut stalled = Provider::new(1, Behaviour::Hang);
        let healthy = Provider::new(2, Behaviour::Answer(Duration::from_millis(1)));
        let probe = with_probe(&mut stalled);
        let directory = directory(&[&stalled, &healthy]).await;
        spawn(&directory, OutlierConfig::default());
        load(&healthy, 16);
        load(&stalled, 16);
        advance(Duration::from_millis(5)).await;
        // Nothing more reaches the healthy one.
        let started = Instant::now();
        while !stalled.endpoint.stats().is_ejected() {
            advance(Duration::from_millis(5)).await;
            assert!(
                started.elapsed() < Duration::from_millis(250),
                "not ejected within 250 ms"
            );
        }
        assert_eq!(probe.abandoned.lock().unwrap().len(), 1);
    }
}

//! ZooKeeper lock figures: acquire and release latency and acquisitions per
//! second under contention (1, 5, 20 contenders), each contender with its own
//! ZooKeeper session (as separate processes would have), against one real server.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rpc::registry::Url;
use rpc::registry::zookeeper::ZookeeperRegistry;
use tokio::time::Instant;

/// One contention level's figures.
#[derive(Debug)]
pub struct Figures {
    /// Contenders, each looping acquire → release.
    pub contenders: usize,
    /// Acquisitions per second, all contenders together.
    pub per_second: f64,
    /// Median and 99th percentile of acquire (call to held, queueing included).
    pub acquire_p50: Duration,
    /// 99th percentile of acquire.
    pub acquire_p99: Duration,
    /// Median of release (call to ZooKeeper's confirmation).
    pub release_p50: Duration,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Measures each contention level for `window` against a fresh ZooKeeper server.
pub async fn measure(levels: &[usize], window: Duration) -> Result<Vec<Figures>, String> {
    crate::registry::ensure_zookeeper()?;
    let zk = rpc_tests::zk::ZooKeeper::start();
    let url = Url::parse(&format!("{}?session=30000&timeout=10000", zk.url())).map_err(|e| e.to_string())?;
    let mut figures = Vec::new();
    // A first, unreported level warms the server (JIT) and the client.
    for (round, &contenders) in std::iter::once(&1).chain(levels).enumerate() {
        let path = format!("/bench/lock{round}");
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for _ in 0..contenders {
            let registry = ZookeeperRegistry::new(&url).map_err(|e| e.to_string())?;
            let lock = registry.lock(&path);
            let stop = stop.clone();
            tasks.push(tokio::spawn(async move {
                let _registry = registry;
                let (mut acquires, mut releases) = (Vec::new(), Vec::new());
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let guard = lock.acquire(Duration::from_secs(60)).await.map_err(|e| e.to_string())?;
                    acquires.push(started.elapsed());
                    let started = Instant::now();
                    guard.release().await.map_err(|e| e.to_string())?;
                    releases.push(started.elapsed());
                }
                Ok::<_, String>((acquires, releases))
            }));
        }
        let window = if round == 0 { Duration::from_secs(1) } else { window };
        tokio::time::sleep(window).await;
        stop.store(true, Ordering::Relaxed);
        let (mut acquires, mut releases) = (Vec::new(), Vec::new());
        for task in tasks {
            let (a, r) = task.await.map_err(|e| e.to_string())??;
            acquires.extend(a);
            releases.extend(r);
        }
        acquires.sort();
        releases.sort();
        if round > 0 {
            figures.push(Figures {
                contenders,
                per_second: acquires.len() as f64 / window.as_secs_f64(),
                acquire_p50: percentile(&acquires, 0.5),
                acquire_p99: percentile(&acquires, 0.99),
                release_p50: percentile(&releases, 0.5),
            });
        }
    }
    Ok(figures)
}

//! Registry scale: how long a consumer's routing takes to reflect a change
//! when one service has 10, 100 or 1,000 providers in a real ZooKeeper, and
//! what 1,000 providers cost the consumer in memory.

use std::sync::Arc;
use std::time::Duration;

use rpc::cluster::{Connect, Directory, Endpoint};
use rpc::protocol::rpc::{RpcChannel, RpcChannelConfig};
use rpc::registry::{Registry, ZookeeperRegistry};
use rpc::{BoxInvoker, ServiceKey, Url};
use tokio::time::Instant;

/// Makes real (lazily connecting) native channels, as a consumer does.
struct Channels;

impl Connect for Channels {
    fn connect(&self, url: &Url) -> Option<Endpoint> {
        let channel = RpcChannel::new(url.address(), RpcChannelConfig::default());
        let health = channel.clone();
        Some(Endpoint::new(
            url.clone(),
            BoxInvoker::always_ready(channel),
            move || !health.is_backing_off(),
        ))
    }
}

fn provider(port: u32) -> Url {
    // Ports above 65535 are not needed: spread providers over loopback hosts.
    let host = format!("127.0.{}.{}", port / 250 + 1, port % 250 + 1);
    Url::new("rpc", host, 20880)
        .with_path("bench.Echo")
        .with_param("interface", "bench.Echo")
        .with_param("version", "1.0.0")
        .with_param("side", "provider")
        .with_param("methods", "small,large")
        .with_param("timestamp", "1700000000000")
}

/// One size's figures.
#[derive(Debug)]
pub struct Figures {
    /// Providers registered.
    pub providers: usize,
    /// Median time from registering one more provider to the consumer routing to it.
    pub add: Duration,
    /// Median time from unregistering it to the consumer no longer routing to it.
    pub remove: Duration,
    /// Consumer resident memory growth for the providers, MiB.
    pub memory_mib: f64,
}

async fn wait_for(directory: &Directory, count: usize) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while directory.endpoints().len() != count {
        if Instant::now() > deadline {
            return Err(format!("the directory never reached {count} providers"));
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    Ok(())
}

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// Installs Debian's `zookeeper` package when it is missing (as root), as
/// `./scripts/test.sh` does, so the benchmark runs on a fresh machine.
pub(crate) fn ensure_zookeeper() -> Result<(), String> {
    let java = std::process::Command::new("java")
        .arg("-version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    // Like ./scripts/test.sh: the jar and a Java to run it.
    if java && std::path::Path::new("/usr/share/java/zookeeper.jar").exists() {
        return Ok(());
    }
    let root = nix::unistd::Uid::effective().is_root();
    if !root {
        return Err("ZooKeeper is missing: run `apt-get install -y zookeeper` as root (or `./scripts/test.sh`)".into());
    }
    eprintln!("installing Debian's zookeeper package (the registry-scale figures start a ZooKeeper server)");
    let ok = |args: &[&str]| {
        std::process::Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success())
    };
    if ok(&["update", "-qq"]) && ok(&["install", "-y", "-qq", "zookeeper"]) {
        Ok(())
    } else {
        Err("`apt-get install -y zookeeper` failed".into())
    }
}

/// Measures each of `sizes` against a fresh ZooKeeper server.
pub async fn measure(sizes: &[usize]) -> Result<Vec<Figures>, String> {
    ensure_zookeeper()?;
    let zk = rpc_tests::zk::ZooKeeper::start();
    let url = Url::parse(&format!("{}?session=30000&timeout=10000", zk.url())).map_err(|e| e.to_string())?;
    let providers = ZookeeperRegistry::new(&url).map_err(|e| e.to_string())?;
    let mut figures = Vec::new();
    // A first, unreported round of 10 providers takes the one-time
    // allocations (ZooKeeper session buffers, runtime) off the first row.
    let rounds = std::iter::once(10).chain(sizes.iter().copied());
    for (round, size) in rounds.enumerate() {
        let interface = format!("bench.Echo{round}");
        let urls: Vec<Url> = (0..size as u32 + 1)
            .map(|i| {
                let mut u = provider(i).with_path(interface.clone());
                u.set_param("interface", interface.clone());
                u
            })
            .collect();
        let (extra, initial) = urls.split_last().ok_or("no sizes")?;
        for u in initial {
            providers.register(u).await.map_err(|e| e.to_string())?;
        }
        let consumer = ZookeeperRegistry::new(&url).map_err(|e| e.to_string())?;
        let consumer_url = Url::new("consumer", "127.0.0.1", 0)
            .with_path(interface.clone())
            .with_param("interface", interface.clone());
        let before = rss_mib();
        let subscription = consumer.subscribe(&consumer_url).await.map_err(|e| e.to_string())?;
        let key = ServiceKey::new(&interface, Some("1.0.0"), None);
        let directory = Directory::new(key, Arc::new(Channels), vec![subscription]).await;
        wait_for(&directory, size).await?;
        let memory_mib = rss_mib() - before;
        let (mut adds, mut removes) = (Vec::new(), Vec::new());
        for _ in 0..7 {
            let started = Instant::now();
            providers.register(extra).await.map_err(|e| e.to_string())?;
            wait_for(&directory, size + 1).await?;
            adds.push(started.elapsed());
            let started = Instant::now();
            providers.unregister(extra).await.map_err(|e| e.to_string())?;
            wait_for(&directory, size).await?;
            removes.push(started.elapsed());
        }
        adds.sort();
        removes.sort();
        if round > 0 {
            figures.push(Figures {
                providers: size,
                add: adds[adds.len() / 2],
                remove: removes[removes.len() / 2],
                memory_mib,
            });
        }
        for u in initial {
            providers.unregister(u).await.map_err(|e| e.to_string())?;
        }
    }
    Ok(figures)
}

//! The greeter consumer as a load generator.
//!
//! ```text
//! cargo run --example greeter-consumer -- --calls 1000 --concurrency 16
//! cargo run --example greeter-consumer -- --registry rpc://127.0.0.1:20880 --duration 10
//! cargo run --example greeter-consumer -- --registry zookeeper://127.0.0.1:2181 \
//!     --cluster failover --retries 2 --loadbalance leastactive --version 2.0.0 --duration 30
//! cargo run --example greeter-consumer -- --registry zookeeper://127.0.0.1:2181 --duration 60 --qos-port 22223
//! ```
//!
//! Calls `say_hello` until the call count or the duration is reached, with
//! `--concurrency` calls in flight, and ends with one line
//! `ok=<n> failed=<m> degraded=<k>`: `ok` counts real answers of providers;
//! `degraded` counts calls answered by the consumer itself (a failsafe or
//! failback zero value, a mock), which are not `ok`. Exits 0 when every call
//! was ok, 1 when some failed or were degraded, 2 when it could not start.
//! With `-v`, every reply is printed, and the failures, grouped by kind with
//! a count and one message each, on stderr at the end. Ctrl-C (SIGINT) stops
//! the calls early and still prints the summary.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use rpc_examples::GreeterClient;
use tokio::time::Instant;

#[derive(Debug, Parser)]
#[command(about = "Calls org.example.Greeter.sayHello and reports `ok=<n> failed=<m>`.")]
struct Args {
    /// Where to find providers: a registry (`memory://`) or a direct provider list
    /// (`rpc://host:port[,host:port]`). Repeat for several.
    #[arg(long, default_value = "rpc://127.0.0.1:20880")]
    registry: Vec<String>,
    /// Number of calls to make (default 10 unless --duration is given).
    #[arg(long, conflicts_with = "duration")]
    calls: Option<u64>,
    /// Keep calling for this many seconds instead of a fixed count.
    #[arg(long)]
    duration: Option<f64>,
    /// Calls in flight at once.
    #[arg(long, default_value_t = 1)]
    concurrency: u32,
    /// Timeout of each call, in milliseconds, across all its attempts.
    #[arg(long, default_value_t = 1000)]
    timeout_ms: u64,
    /// Longest one attempt may take before the policy moves on, in milliseconds
    /// (default: the whole timeout).
    #[arg(long)]
    attempt_timeout_ms: Option<u64>,
    /// Fault-tolerance policy: failover, failfast, failsafe, failback, forking, broadcast.
    #[arg(long, default_value = "failover")]
    cluster: rpc::ClusterPolicy,
    /// Load balancer: random, roundrobin, leastactive, shortestresponse, consistenthash, p2c
    /// (default: the provider's, else random).
    #[arg(long)]
    loadbalance: Option<rpc::Balancer>,
    /// Extra attempts of the failover policy.
    #[arg(long, default_value_t = 2)]
    retries: u32,
    /// Payload serialization: bincode (Rust to Rust) or json (to providers in
    /// other languages, e.g. Python Dubbo over `tri`).
    #[arg(long, default_value = "bincode", value_parser = parse_serialization)]
    serialization: rpc::Serialization,
    /// Providers called at once by the forking policy.
    #[arg(long, default_value_t = 2)]
    forks: u32,
    /// Service version to call (`*` for any).
    #[arg(long, default_value = "1.0.0")]
    version: String,
    /// Tag every call (tag routing: providers tagged so, else untagged ones).
    #[arg(long)]
    tag: Option<String>,
    /// Turn off outlier detection (on by default: a provider that stops
    /// answering while the others answer is taken out of rotation).
    #[arg(long, default_value_t = false)]
    no_outlier_detection: bool,
    /// Fail at start when no provider exists.
    #[arg(long, default_value_t = false)]
    check: bool,
    /// Print every reply, and the failures grouped by kind at the end.
    #[arg(long, short)]
    verbose: bool,
    /// Serve the QoS port (`ls` lists the reference and its providers) on
    /// this port, all interfaces; without it, none.
    #[arg(long)]
    qos_port: Option<u16>,
}

#[tokio::main]
async fn main() {
    rpc_examples::init_logging("warn");
    let args = Args::parse();
    match run(args).await {
        Ok(Summary { ok, failed, degraded }) => {
            println!("ok={ok} failed={failed} degraded={degraded}");
            std::process::exit(if failed == 0 && degraded == 0 { 0 } else { 1 });
        }
        Err(e) => {
            eprintln!("greeter-consumer: {e}");
            std::process::exit(2);
        }
    }
}

/// What the calls came to.
struct Summary {
    /// Answered by a provider.
    ok: u64,
    /// Failed.
    failed: u64,
    /// Answered by the consumer itself (zero value, mock).
    degraded: u64,
}

async fn run(args: Args) -> Result<Summary, rpc::Error> {
    let mut builder = rpc::Consumer::builder().application("greeter-consumer");
    if args.no_outlier_detection {
        builder = builder.outlier_detection(rpc::cluster::OutlierConfig::disabled());
    }
    for registry in &args.registry {
        builder = builder.registry(registry.clone());
    }
    // With a QoS port, the consumer's metrics are served there (`/metrics`).
    let metrics = args.qos_port.map(|_| rpc::observe::Metrics::new());
    if let Some(metrics) = &metrics {
        builder = builder.metrics(metrics);
    }
    let consumer = builder.build().await?;
    let mut reference = consumer
        .reference::<GreeterClient>()
        .version(args.version.clone())
        .timeout(Duration::from_millis(args.timeout_ms))
        .cluster(args.cluster)
        .retries(args.retries)
        .forks(args.forks)
        .serialization(args.serialization)
        .check(args.check);
    if let Some(loadbalance) = args.loadbalance {
        reference = reference.loadbalance(loadbalance);
    }
    if let Some(ms) = args.attempt_timeout_ms {
        reference = reference.attempt_timeout(Duration::from_millis(ms));
    }
    if let Some(tag) = &args.tag {
        reference = reference.tag(tag.clone());
    }
    let greeter: GreeterClient = reference.build().await?;
    let _qos = match (args.qos_port, metrics) {
        (Some(port), Some(metrics)) => {
            let qos = rpc::qos::Qos::builder()
                .port(port)
                .consumer(&consumer)
                .metrics(move || metrics.render())
                .start()
                .await?;
            if let Some(addr) = qos.local_addr() {
                eprintln!("qos on {addr}");
            }
            Some(qos)
        }
        _ => None,
    };

    let calls = match (args.calls, args.duration) {
        (Some(n), _) => Some(n),
        (None, Some(_)) => None,
        (None, None) => Some(10),
    };
    let until = args
        .duration
        .map(|secs| Instant::now() + Duration::from_secs_f64(secs.max(0.0)));
    let interrupted = Arc::new(std::sync::atomic::AtomicBool::new(false));
    tokio::spawn({
        let interrupted = interrupted.clone();
        async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                interrupted.store(true, Ordering::Relaxed);
            }
        }
    });
    let issued = Arc::new(AtomicU64::new(0));
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    // Failures by kind: how many, and the first message.
    let failures: Arc<Mutex<BTreeMap<String, (u64, String)>>> = Arc::default();
    let started = Instant::now();
    let mut workers = Vec::new();
    for worker in 0..args.concurrency.max(1) {
        let (greeter, issued, ok, failed) = (greeter.clone(), issued.clone(), ok.clone(), failed.clone());
        let failures = failures.clone();
        let interrupted = interrupted.clone();
        let verbose = args.verbose;
        workers.push(tokio::spawn(async move {
            loop {
                if until.is_some_and(|t| Instant::now() >= t) || interrupted.load(Ordering::Relaxed) {
                    break;
                }
                let n = issued.fetch_add(1, Ordering::Relaxed);
                if calls.is_some_and(|limit| n >= limit) {
                    break;
                }
                match greeter.say_hello(format!("caller-{worker}-{n}")).await {
                    Ok(reply) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                        if verbose {
                            println!("{reply}");
                        }
                    }
                    Err(e) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        if verbose {
                            let mut failures = failures.lock().unwrap_or_else(|p| p.into_inner());
                            let kind = format!("{:?} ({:?})", e.kind(), e.outcome());
                            failures.entry(kind).or_insert_with(|| (0, e.to_string())).0 += 1;
                        }
                    }
                }
            }
        }));
    }
    for worker in workers {
        let _ = worker.await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let done = ok.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed);
    for (kind, (count, message)) in failures.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        eprintln!("failed: {count} x {kind}, e.g. {message}");
    }
    // Throughput for load experiments, on stderr: stdout ends with ok/failed.
    eprintln!(
        "elapsed={elapsed:.2}s calls={done} qps={:.0}",
        done as f64 / elapsed.max(f64::EPSILON)
    );
    // Successes the consumer answered itself are not real answers.
    let degraded = rpc::ServiceClient::stub(&greeter).degraded_answers();
    Ok(Summary {
        ok: ok.load(Ordering::Relaxed).saturating_sub(degraded),
        failed: failed.load(Ordering::Relaxed),
        degraded,
    })
}

fn parse_serialization(name: &str) -> Result<rpc::Serialization, String> {
    rpc::Serialization::from_name(name).ok_or_else(|| format!("unknown serialization `{name}` (bincode, json)"))
}

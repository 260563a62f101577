//! `cargo run --release -p benchmarks [-- --quick] [--csv FILE]`: every
//! system, every scenario, one table. See the README's Benchmarks section.

use std::io::{BufRead, BufReader, Write as _};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use benchmarks::payload::Payload;
use benchmarks::peers::{tarpc_peer, tonic_peer};
use benchmarks::{loadgen, ours, raw, sys};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(about = "Benchmarks rpc against tonic, tarpc and a raw tokio floor; prints one table.")]
struct Args {
    #[command(subcommand)]
    command: Option<Cmd>,
    /// Only the 64-byte echo at concurrency 64 on one connection, for every system.
    #[arg(long)]
    quick: bool,
    /// Also write the rows as CSV to this file.
    #[arg(long)]
    csv: Option<std::path::PathBuf>,
    /// Only these systems (comma-separated: rpc,rpc-cluster,tri,dubbo,tarpc,tonic,raw;
    /// and `java-dubbo`, only when named: a Java Dubbo provider, which needs
    /// `tests/java/build.sh` run first).
    #[arg(long, value_delimiter = ',')]
    systems: Vec<String>,
    /// Seconds of warm-up before each measurement.
    #[arg(long)]
    warmup: Option<f64>,
    /// Seconds measured per run.
    #[arg(long)]
    duration: Option<f64>,
    /// Skip the registry-scale figures (part of the full run; they start a
    /// ZooKeeper server from Debian's `zookeeper` package).
    #[arg(long)]
    no_registry: bool,
    /// Only the registry-scale figures.
    #[arg(long, conflicts_with_all = ["quick", "no_registry"])]
    registry_only: bool,
    /// Only the ZooKeeper lock figures (acquire/release latency and
    /// throughput with 1, 5 and 20 contenders).
    #[arg(long, conflicts_with_all = ["quick", "registry_only"])]
    locks_only: bool,
    /// Only the in-process cluster-layer figures (with `--features rules`,
    /// also each governance rule type's cost per call).
    #[arg(long, conflicts_with_all = ["quick", "registry_only", "locks_only"])]
    layers_only: bool,
    /// Only these concurrencies (comma-separated), instead of the run's.
    #[arg(long, value_delimiter = ',')]
    concurrency: Vec<usize>,
    /// Only these connection counts (comma-separated), instead of the run's.
    #[arg(long, value_delimiter = ',')]
    connections: Vec<usize>,
    /// Providers behind `rpc-cluster` (1 isolates the cost of the cluster
    /// layers from that of spreading the load over processes).
    #[arg(long, default_value_t = 3)]
    cluster_providers: usize,
    /// Record Dubbo-named metrics on both sides (rpc::observe::Metrics).
    #[arg(long)]
    metrics: bool,
    /// Turn off the consumer stack's tracing (spans, trace context), on by default.
    #[arg(long)]
    no_tracing: bool,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Serves one system's echo service (run by the benchmark itself).
    Serve {
        /// The system.
        system: String,
        /// The CPU to pin to.
        #[arg(long, default_value_t = 0)]
        cpu: usize,
        /// Listening sockets (providers, for `rpc-cluster`), all served by this one process.
        #[arg(long, default_value_t = 1)]
        listeners: usize,
        /// Record metrics of the requests served.
        #[arg(long)]
        metrics: bool,
    },
}

const SYSTEMS: [&str; 7] = ["rpc", "rpc-cluster", "tri", "dubbo", "tarpc", "tonic", "raw"];

/// Systems run only when `--systems` names them.
const OPT_IN_SYSTEMS: [&str; 1] = ["java-dubbo"];

fn main() {
    let args = Args::parse();
    let code = match args.command {
        Some(Cmd::Serve {
            ref system,
            cpu,
            listeners,
            metrics,
        }) => {
            if metrics {
                let _ = ours::METRICS.set(rpc::observe::Metrics::new());
            }
            sys::pin_to(cpu);
            serve(system, listeners)
        }
        None => {
            if args.metrics {
                let _ = ours::METRICS.set(rpc::observe::Metrics::new());
            }
            ours::TRACING.store(!args.no_tracing, std::sync::atomic::Ordering::Relaxed);
            sys::pin_to(1);
            bench(&args)
        }
    };
    std::process::exit(code);
}

fn runtime() -> Option<tokio::runtime::Runtime> {
    // One worker: each side owns one core.
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| eprintln!("cannot start a tokio runtime: {e}"))
        .ok()
}

fn serve(system: &str, listeners: usize) -> i32 {
    if system == "java-dubbo" {
        // Returns only when the Java provider could not be started.
        if let Err(e) = benchmarks::java_dubbo::serve() {
            eprintln!("benchmarks serve {system}: {e}");
        }
        return 2;
    }
    let Some(rt) = runtime() else { return 2 };
    let result = rt.block_on(async {
        let mut bound = Vec::with_capacity(listeners.max(1));
        let mut addrs = Vec::with_capacity(listeners.max(1));
        for _ in 0..listeners.max(1) {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(|e| e.to_string())?;
            addrs.push(listener.local_addr().map_err(|e| e.to_string())?.to_string());
            bound.push(listener);
        }
        println!("listening {}", addrs.join(","));
        let _ = std::io::stdout().flush();
        if bound.len() > 1 && system != "rpc-cluster" {
            return Err(format!("only rpc-cluster serves several listeners, not `{system}`"));
        }
        let Some(listener) = bound.pop() else {
            return Err("no listener".into());
        };
        match system {
            "rpc" | "tri" | "dubbo" => ours::serve(vec![listener]).await,
            "rpc-cluster" => {
                bound.push(listener);
                ours::serve(bound).await
            }
            "tarpc" => tarpc_peer::serve(listener).await,
            "tonic" => tonic_peer::serve(listener).await,
            "raw" => raw::serve(listener).await,
            other => Err(format!("unknown system `{other}`")),
        }
    });
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("benchmarks serve {system}: {e}");
            2
        }
    }
}

/// A server process, killed on drop.
struct Server {
    child: Child,
    addrs: Vec<SocketAddr>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_server(system: &str, listeners: usize) -> Result<Server, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let listeners = listeners.to_string();
    let mut command = Command::new(exe);
    command.args(["serve", system, "--cpu", "0", "--listeners", &listeners]);
    if ours::METRICS.get().is_some() {
        command.arg("--metrics");
    }
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start the {system} server: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout);
    let mut line = String::new();
    lines
        .read_line(&mut line)
        .map_err(|e| format!("the {system} server said nothing: {e}"))?;
    let addrs = line
        .trim()
        .strip_prefix("listening ")
        .and_then(|list| list.split(',').map(|a| a.parse().ok()).collect::<Option<Vec<_>>>())
        .ok_or_else(|| format!("the {system} server said `{}`", line.trim()))?;
    if system == "java-dubbo" {
        // The Java provider listens once it prints `ready`; its output ends if it fails.
        loop {
            line.clear();
            match lines.read_line(&mut line) {
                Ok(0) | Err(_) => return Err("the Java provider exited before `ready` (its stderr is above)".into()),
                Ok(_) if line.trim() == "ready" => break,
                Ok(_) => {}
            }
        }
    }
    Ok(Server { child, addrs })
}

/// One row of the table.
#[derive(Debug, Clone)]
struct Row {
    system: &'static str,
    scenario: &'static str,
    concurrency: usize,
    connections: usize,
    qps: f64,
    p50: u64,
    p99: u64,
    p999: u64,
    client_cpu_ms_per_1k: f64,
    server_cpu_ms_per_1k: f64,
    rss_mb: f64,
    failed: u64,
}

impl Row {
    fn cpu_ms_per_1k(&self) -> f64 {
        self.client_cpu_ms_per_1k + self.server_cpu_ms_per_1k
    }
}

/// The load of one run, whatever the system.
#[derive(Clone, Copy)]
struct Plan {
    connections: usize,
    concurrency: usize,
    warmup: Duration,
    window: Duration,
}

impl Plan {
    /// Opens `connections` clients with `connect`, then drives `call` through them.
    async fn run<C, Connect, Connecting, Call, Calling>(
        self,
        connect: Connect,
        call: Call,
        on_window: impl FnOnce(),
    ) -> Result<loadgen::Measured, String>
    where
        C: Clone + Send + 'static,
        Connect: Fn() -> Connecting,
        Connecting: std::future::Future<Output = Result<C, String>>,
        Call: Fn(&C) -> Calling + Clone + Send + 'static,
        Calling: std::future::Future<Output = Result<(), String>> + Send + 'static,
    {
        let mut clients = Vec::with_capacity(self.connections);
        for _ in 0..self.connections {
            clients.push(connect().await?);
        }
        Ok(loadgen::run(&clients, call, self.concurrency, self.warmup, self.window, on_window).await)
    }
}

#[derive(Clone, Copy)]
enum AnyClient {
    Ours,
    JavaDubbo,
    Tarpc,
    Tonic,
    Raw,
}

async fn measure(
    system: &'static str,
    payload: Payload,
    concurrency: usize,
    connections: usize,
    warmup: Duration,
    window: Duration,
    cluster_providers: usize,
) -> Result<Row, String> {
    // The providers of rpc-cluster share one process, so the server side
    // gets the same core and runtime as every other system.
    let listeners = if system == "rpc-cluster" {
        cluster_providers.max(1)
    } else {
        1
    };
    let servers = [spawn_server(system, listeners)?];
    let addrs: Vec<SocketAddr> = servers.iter().flat_map(|s| s.addrs.iter().copied()).collect();
    let kind = match system {
        "tarpc" => AnyClient::Tarpc,
        "tonic" => AnyClient::Tonic,
        "raw" => AnyClient::Raw,
        "java-dubbo" => AnyClient::JavaDubbo,
        _ => AnyClient::Ours,
    };
    let mut cpu_marks = (Duration::ZERO, Duration::ZERO);
    let pids: Vec<u32> = servers.iter().map(|s| s.child.id()).collect();
    let sample = |marks: &mut (Duration, Duration)| {
        *marks = (sys::cpu_time(None), pids.iter().map(|&p| sys::cpu_time(Some(p))).sum());
    };
    let plan = Plan {
        connections,
        concurrency,
        warmup,
        window,
    };
    let on_window = || sample(&mut cpu_marks);
    let measured = match kind {
        AnyClient::Ours => {
            let route = match system {
                "tri" => ours::Route::Tri,
                "dubbo" => ours::Route::Dubbo,
                "rpc-cluster" => ours::Route::Cluster,
                _ => ours::Route::Direct,
            };
            let addrs = &addrs;
            plan.run(
                || ours::Client::connect(route, addrs, payload),
                |c: &ours::Client| c.call(),
                on_window,
            )
            .await?
        }
        AnyClient::JavaDubbo => {
            let addr = addrs[0];
            plan.run(
                || benchmarks::java_dubbo::Client::connect(addr, payload),
                |c: &benchmarks::java_dubbo::Client| c.call(),
                on_window,
            )
            .await?
        }
        AnyClient::Tarpc => {
            let addr = addrs[0];
            plan.run(
                || tarpc_peer::Client::connect(addr, payload),
                |c: &tarpc_peer::Client| c.call(),
                on_window,
            )
            .await?
        }
        AnyClient::Tonic => {
            let addr = addrs[0];
            plan.run(
                || tonic_peer::Client::connect(addr, payload),
                |c: &tonic_peer::Client| c.call(),
                on_window,
            )
            .await?
        }
        AnyClient::Raw => {
            let addr = addrs[0];
            plan.run(
                || raw::Client::connect(addr, payload),
                |c: &raw::Client| c.call(),
                on_window,
            )
            .await?
        }
    };
    let client_cpu = sys::cpu_time(None).saturating_sub(cpu_marks.0);
    let server_cpu = pids
        .iter()
        .map(|&p| sys::cpu_time(Some(p)))
        .sum::<Duration>()
        .saturating_sub(cpu_marks.1);
    let thousands = (measured.completed as f64 / 1000.0).max(f64::EPSILON);
    let rss = pids.iter().map(|&p| sys::peak_rss_mib(p)).fold(0.0, f64::max);
    Ok(Row {
        system,
        scenario: payload.name(),
        concurrency,
        connections,
        qps: measured.qps(),
        p50: measured.us(0.5),
        p99: measured.us(0.99),
        p999: measured.us(0.999),
        client_cpu_ms_per_1k: client_cpu.as_secs_f64() * 1000.0 / thousands,
        server_cpu_ms_per_1k: server_cpu.as_secs_f64() * 1000.0 / thousands,
        rss_mb: rss,
        failed: measured.failed,
    })
}

fn bench(args: &Args) -> i32 {
    let Some(rt) = runtime() else { return 2 };
    let systems: Vec<&'static str> = SYSTEMS
        .iter()
        .copied()
        .filter(|s| args.systems.is_empty() || args.systems.iter().any(|w| w == s))
        .chain(
            OPT_IN_SYSTEMS
                .iter()
                .copied()
                .filter(|s| args.systems.iter().any(|w| w == s)),
        )
        .collect();
    if systems.contains(&"java-dubbo")
        && let Err(e) = benchmarks::java_dubbo::classpath()
    {
        eprintln!("java-dubbo: {e}");
        return 1;
    }
    let (payloads, concurrencies, connection_counts): (Vec<Payload>, Vec<usize>, Vec<usize>) = if args.quick {
        (vec![Payload::Small], vec![64], vec![1])
    } else {
        (vec![Payload::Small, Payload::Large], vec![1, 64, 256], vec![1, 4])
    };
    let concurrencies = if args.concurrency.is_empty() {
        concurrencies
    } else {
        args.concurrency.clone()
    };
    let connection_counts = if args.connections.is_empty() {
        connection_counts
    } else {
        args.connections.clone()
    };
    let warmup = Duration::from_secs_f64(args.warmup.unwrap_or(1.0));
    let window = Duration::from_secs_f64(args.duration.unwrap_or(if args.quick { 3.0 } else { 5.0 }));
    if args.layers_only {
        let layers = rt.block_on(benchmarks::layers::measure());
        #[cfg(feature = "rules")]
        let rules = rt.block_on(benchmarks::layers::measure_rules());
        return match layers {
            Ok(found) => {
                print_layers(&found);
                #[cfg(feature = "rules")]
                match rules {
                    Ok(rules) => print_rules(&rules),
                    Err(e) => {
                        eprintln!("rules: {e}");
                        return 1;
                    }
                }
                0
            }
            Err(e) => {
                eprintln!("cluster layers: {e}");
                1
            }
        };
    }
    if args.locks_only {
        eprintln!("ZooKeeper lock (1, 5, 20 contenders) ...");
        return match rt.block_on(benchmarks::locks::measure(&[1, 5, 20], window)) {
            Ok(figures) => {
                print_locks(&figures);
                0
            }
            Err(e) => {
                eprintln!("locks: {e}");
                1
            }
        };
    }
    let mut rows = Vec::new();
    // Registry scale first, in a process that has not run any load yet, so
    // its memory figure is not blurred by memory the load runs freed.
    let registry = if args.registry_only || !(args.quick || args.no_registry) {
        eprintln!("registry scale (ZooKeeper) ...");
        match rt.block_on(benchmarks::registry::measure(&[10, 100, 1000])) {
            Ok(figures) => Some(figures),
            Err(e) => {
                eprintln!("registry scale: {e}");
                return 1;
            }
        }
    } else {
        None
    };
    let payloads = if args.registry_only { Vec::new() } else { payloads };
    for &payload in &payloads {
        for &concurrency in &concurrencies {
            for &connections in &connection_counts {
                for &system in &systems {
                    // The cluster runs over its 3 providers' connections only.
                    if system == "rpc-cluster" && connections != 1 {
                        continue;
                    }
                    eprint!(
                        "{system:<12} {:<10} c={concurrency:<4} conns={connections} ... ",
                        payload.name()
                    );
                    match rt.block_on(measure(
                        system,
                        payload,
                        concurrency,
                        connections,
                        warmup,
                        window,
                        args.cluster_providers,
                    )) {
                        Ok(row) => {
                            eprintln!("{:>9.0} qps  p99 {:>6} us", row.qps, row.p99);
                            rows.push(row);
                        }
                        Err(e) => eprintln!("failed: {e}"),
                    }
                }
            }
        }
    }
    if !rows.is_empty() {
        print_table(&rows);
        print_markdown(&rows);
        print_targets(&rows, args.cluster_providers);
        print_java(&rows);
    }
    if !args.registry_only {
        match rt.block_on(benchmarks::layers::measure()) {
            Ok(found) => print_layers(&found),
            Err(e) => {
                eprintln!("cluster layers: {e}");
                return 1;
            }
        }
    }
    if let Some(figures) = &registry {
        print_registry(figures);
    }
    if let Some(path) = &args.csv
        && let Err(e) = write_csv(path, &rows)
    {
        eprintln!("cannot write {}: {e}", path.display());
        return 1;
    }
    0
}

/// QPS of `system` in the same scenario as `row`.
fn peer_qps(rows: &[Row], row: &Row, system: &str) -> Option<f64> {
    rows.iter()
        .find(|r| {
            r.system == system
                && r.scenario == row.scenario
                && r.concurrency == row.concurrency
                && r.connections == row.connections
        })
        .map(|r| r.qps)
}

fn ratio(rows: &[Row], row: &Row, peer: &str) -> String {
    if !row.system.starts_with("rpc") && row.system != "tri" && row.system != "dubbo" && row.system != "java-dubbo" {
        return "".into();
    }
    match peer_qps(rows, row, peer) {
        Some(q) if q > 0.0 => format!("{:.2}", row.qps / q),
        _ => "-".into(),
    }
}

fn print_table(rows: &[Row]) {
    println!(
        "{:<12} {:<10} {:>5} {:>5} {:>10} {:>8} {:>8} {:>8} {:>9} {:>9} {:>7} {:>8} {:>8} {:>7}",
        "system",
        "scenario",
        "conc",
        "conns",
        "qps",
        "p50 us",
        "p99 us",
        "p999 us",
        "cli ms/1k",
        "srv ms/1k",
        "rss MB",
        "/tonic",
        "/tarpc",
        "/raw"
    );
    for row in rows {
        println!(
            "{:<12} {:<10} {:>5} {:>5} {:>10.0} {:>8} {:>8} {:>8} {:>9.1} {:>9.1} {:>7.1} {:>8} {:>8} {:>7}{}",
            row.system,
            row.scenario,
            row.concurrency,
            row.connections,
            row.qps,
            row.p50,
            row.p99,
            row.p999,
            row.client_cpu_ms_per_1k,
            row.server_cpu_ms_per_1k,
            row.rss_mb,
            ratio(rows, row, "tonic"),
            ratio(rows, row, "tarpc"),
            ratio(rows, row, "raw"),
            if row.failed > 0 {
                format!("  ({} failed)", row.failed)
            } else {
                String::new()
            },
        );
    }
}

fn print_markdown(rows: &[Row]) {
    println!();
    println!(
        "| system | scenario | conc | conns | QPS | p50 µs | p99 µs | p999 µs | CPU ms/1k req (client+server) | server RSS MB | ours/tonic | ours/tarpc | ours/raw |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        println!(
            "| {} | {} | {} | {} | {:.0} | {} | {} | {} | {:.1} ({:.1}+{:.1}) | {:.1} | {} | {} | {} |",
            row.system,
            row.scenario,
            row.concurrency,
            row.connections,
            row.qps,
            row.p50,
            row.p99,
            row.p999,
            row.cpu_ms_per_1k(),
            row.client_cpu_ms_per_1k,
            row.server_cpu_ms_per_1k,
            row.rss_mb,
            ratio(rows, row, "tonic"),
            ratio(rows, row, "tarpc"),
            ratio(rows, row, "raw"),
        );
    }
}

/// The targets, for the 64-byte echo at concurrency 64 on one
/// connection, each as met or not with its figures.
fn print_targets(rows: &[Row], cluster_providers: usize) {
    let find = |system: &str| {
        rows.iter()
            .find(|r| r.system == system && r.scenario == "echo-64B" && r.concurrency == 64 && r.connections == 1)
    };
    let Some(rpc) = find("rpc") else { return };
    let verdict = |met: bool| if met { "met" } else { "NOT met" };
    println!();
    println!("Targets (echo-64B, concurrency 64, one connection):");
    println!();
    // QPS at least `times` the peer's, p99 no worse.
    let against = |peer: &str, times: f64, claim: &str| {
        if let Some(other) = find(peer) {
            let ratio = rpc.qps / other.qps.max(f64::EPSILON);
            println!(
                "- rpc at least {claim}, p99 no worse: {ratio:.2}x, p99 {} vs {} us: {}",
                rpc.p99,
                other.p99,
                verdict(ratio >= times && rpc.p99 <= other.p99)
            );
        }
    };
    against("tonic", 1.5, "1.5x tonic's QPS");
    against("tarpc", 1.0, "tarpc's QPS");
    if let Some(raw) = find("raw") {
        let ratio = rpc.qps / raw.qps.max(f64::EPSILON);
        println!(
            "- rpc at least 70% of the raw floor: {:.0}%: {}",
            ratio * 100.0,
            verdict(ratio >= 0.7)
        );
    }
    if let Some(cluster) = find("rpc-cluster") {
        let cost = 1.0 - cluster.qps / rpc.qps.max(f64::EPSILON);
        println!(
            "- the consumer stack ({cluster_providers} provider(s)) costs under 10% of the direct QPS: {:.0}%: {}",
            cost * 100.0,
            verdict(cost < 0.10)
        );
        // Several providers mean several connections, which cost something of
        // their own: the direct figure over several connections tells it apart.
        let spread = rows
            .iter()
            .find(|r| r.system == "rpc" && r.scenario == "echo-64B" && r.concurrency == 64 && r.connections > 1);
        if let (Some(spread), true) = (spread, cluster_providers > 1) {
            println!(
                "  (direct over {} connections: {:.0} QPS; the stack over {cluster_providers} providers costs {:.0}% of that)",
                spread.connections,
                spread.qps,
                (1.0 - cluster.qps / spread.qps.max(f64::EPSILON)) * 100.0
            );
        }
    }
}

/// Our `dubbo` provider against the Java one, scenario by scenario.
fn print_java(rows: &[Row]) {
    for java in rows.iter().filter(|r| r.system == "java-dubbo") {
        let Some(ours) = rows.iter().find(|r| {
            r.system == "dubbo"
                && r.scenario == java.scenario
                && r.concurrency == java.concurrency
                && r.connections == java.connections
        }) else {
            continue;
        };
        println!();
        println!(
            "- {} c={} conns={}: our dubbo provider {:.0} QPS (p99 {} us), the Java one {:.0} QPS (p99 {} us): {:.2}x",
            java.scenario,
            java.concurrency,
            java.connections,
            ours.qps,
            ours.p99,
            java.qps,
            java.p99,
            ours.qps / java.qps.max(f64::EPSILON)
        );
    }
}

fn print_locks(figures: &[benchmarks::locks::Figures]) {
    println!();
    println!("| contenders (one session each) | acquisitions/s | acquire p50 | acquire p99 | release p50 |");
    println!("|---:|---:|---:|---:|---:|");
    for f in figures {
        println!(
            "| {} | {:.0} | {:.2} ms | {:.2} ms | {:.2} ms |",
            f.contenders,
            f.per_second,
            f.acquire_p50.as_secs_f64() * 1000.0,
            f.acquire_p99.as_secs_f64() * 1000.0,
            f.release_p50.as_secs_f64() * 1000.0
        );
    }
}

fn print_registry(figures: &[benchmarks::registry::Figures]) {
    println!();
    println!(
        "| providers in ZooKeeper | add one: routing updated | remove one: routing updated | consumer RSS growth |"
    );
    println!("|---:|---:|---:|---:|");
    for f in figures {
        println!(
            "| {} | {:.1} ms | {:.1} ms | {:.0} KiB |",
            f.providers,
            f.add.as_secs_f64() * 1000.0,
            f.remove.as_secs_f64() * 1000.0,
            f.memory_mib * 1024.0
        );
    }
    if let Some(f) = figures.iter().find(|f| f.providers == 1000) {
        let slowest = f.add.max(f.remove);
        println!();
        println!(
            "- routing reflects a change in under 50 ms at 1,000 providers: {:.1} ms: {}",
            slowest.as_secs_f64() * 1000.0,
            if slowest < Duration::from_millis(50) {
                "met"
            } else {
                "NOT met"
            }
        );
    }
}

fn print_layers(found: &[benchmarks::layers::Layers]) {
    println!();
    println!("Cluster layers alone, in process (failover + round robin, providers answering at once):");
    println!();
    println!("| providers | straight to a provider | through the cluster layers | the layers' own cost |");
    println!("|---:|---:|---:|---:|");
    for l in found {
        println!(
            "| {} | {:.0} ns/call | {:.0} ns/call | {:.0} ns/call |",
            l.providers,
            l.direct_ns,
            l.cluster_ns,
            l.cluster_ns - l.direct_ns
        );
    }
}

#[cfg(feature = "rules")]
fn print_rules(found: &[benchmarks::layers::RuleCost]) {
    println!();
    println!("Governance rules, in process (3 providers, failover + round robin):");
    println!();
    println!("| rules in force | through the cluster layers | over no rule |");
    println!("|---|---:|---:|");
    let base = found.first().map(|r| r.cluster_ns).unwrap_or(0.0);
    for r in found {
        println!(
            "| {} | {:.0} ns/call | {:+.0} ns/call |",
            r.name,
            r.cluster_ns,
            r.cluster_ns - base
        );
    }
}

fn write_csv(path: &std::path::Path, rows: &[Row]) -> std::io::Result<()> {
    let mut out =
        String::from("system,scenario,concurrency,connections,qps,p50_us,p99_us,p999_us,cpu_ms_per_1k,rss_mb\n");
    for row in rows {
        out.push_str(&format!(
            "{},{},{},{},{:.0},{},{},{},{:.3},{:.1}\n",
            row.system,
            row.scenario,
            row.concurrency,
            row.connections,
            row.qps,
            row.p50,
            row.p99,
            row.p999,
            row.cpu_ms_per_1k(),
            row.rss_mb
        ));
    }
    std::fs::write(path, out)
}

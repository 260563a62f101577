//! The greeter provider as a program.
//!
//! ```text
//! cargo run --example greeter-provider -- --port 20880
//! cargo run --example greeter-provider -- --registry memory:// --port 0
//! cargo run --example greeter-provider -- --registry zookeeper://127.0.0.1:2181 --port 0 \
//!     --version 2.0.0 --tag b --weight 200 --delay-ms 50
//! cargo run --example greeter-provider -- --registry zookeeper://127.0.0.1:2181 --port 0 \
//!     --token random --executes 10 --tps 100 --accesslog /tmp/greeter-access.log --qos-port 22222
//! ```
//!
//! Prints `qos on <address>` when serving the QoS port (`--qos-port`), then
//! `listening on <url>` once per protocol when ready, serves until
//! Ctrl-C or SIGTERM, then shuts down gracefully.

use std::time::Duration;

use clap::Parser;
use rpc::Export;
use rpc_examples::{GreeterImpl, GreeterServer};

#[derive(Debug, Parser)]
#[command(about = "Serves org.example.Greeter (version 1.0.0) until Ctrl-C or SIGTERM.")]
struct Args {
    /// Registry to register in, e.g. `memory://`. Without it, serve without registering
    /// (consumers then use a direct URL such as `rpc://127.0.0.1:20880`). Repeat for several.
    #[arg(long)]
    registry: Vec<String>,
    /// Host published to consumers and listened on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = rpc::DEFAULT_RPC_PORT)]
    port: u16,
    /// Protocol to serve.
    #[arg(long, default_value = "rpc")]
    protocol: String,
    /// Application name published in the registry.
    #[arg(long, default_value = "greeter-provider")]
    application: String,
    /// Appended to greetings (`Hello, x from TAG`), to tell providers apart.
    #[arg(long)]
    tag: Option<String>,
    /// Version to export (the trait declares 1.0.0).
    #[arg(long)]
    version: Option<String>,
    /// A parameter to publish in the provider URL, `key=value` (repeatable):
    /// `--param region=eu` for condition rules, `--param dubbo.tag=gray` for tag routing.
    #[arg(long = "param", value_parser = parse_param)]
    params: Vec<(String, String)>,
    /// Load-balancing weight published to consumers.
    #[arg(long, default_value_t = 100)]
    weight: u32,
    /// Warm-up published to consumers, in milliseconds (0: none; default: ten minutes).
    #[arg(long)]
    warmup_ms: Option<u64>,
    /// Wait this long before answering each greeting (to play a slow provider).
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
    /// Require callers to send this token (`random`: a random one, published
    /// to the registry's consumers); direct calls without it are refused.
    #[arg(long)]
    token: Option<String>,
    /// At most this many calls of each method run at once; more are refused
    /// (overloaded, not run: a failover consumer goes elsewhere).
    #[arg(long)]
    executes: Option<u32>,
    /// At most this many calls per `--tps-interval-ms` (default 60 s); more are refused.
    #[arg(long)]
    tps: Option<u64>,
    /// The window of `--tps`, in milliseconds.
    #[arg(long)]
    tps_interval_ms: Option<u64>,
    /// Log every call: `true` as `tracing` events (target `rpc::accesslog`),
    /// or a file to append one line per call to.
    #[arg(long)]
    accesslog: Option<String>,
    /// Seconds to wait for in-flight calls on shutdown.
    #[arg(long, default_value_t = 10)]
    grace_secs: u64,
    /// Serve the QoS port (Dubbo's: `ls`, `offline`, `online`, probes) on
    /// this port, all interfaces; without it, none (22222 is Dubbo's default).
    #[arg(long)]
    qos_port: Option<u16>,
}

#[tokio::main]
async fn main() {
    rpc_examples::init_logging("info");
    let args = Args::parse();
    if let Err(e) = run(args).await {
        eprintln!("greeter-provider: {e}");
        std::process::exit(2);
    }
}

async fn run(args: Args) -> Result<(), rpc::Error> {
    let mut builder = rpc::Provider::builder()
        .application(args.application)
        .host(args.host)
        .protocol(args.protocol.clone(), args.port)
        .shutdown_grace(Duration::from_secs(args.grace_secs))
        .export({
            let greeter = GreeterImpl::new(args.tag).with_delay(Duration::from_millis(args.delay_ms));
            let mut export = Export::new(GreeterServer::new(greeter)).weight(args.weight);
            for (key, value) in &args.params {
                export = export.param(key.clone(), value.clone());
            }
            if let Some(version) = args.version {
                export = export.version(version);
            }
            if let Some(warmup) = args.warmup_ms {
                export = export.warmup(Duration::from_millis(warmup));
            }
            if let Some(token) = args.token {
                export = export.token(match token.as_str() {
                    "random" => rpc::Token::Random,
                    _ => rpc::Token::Fixed(token),
                });
            }
            if let Some(executes) = args.executes {
                export = export.executes(executes);
            }
            if let Some(tps) = args.tps {
                export = export.tps(tps, args.tps_interval_ms.map(Duration::from_millis));
            }
            if let Some(accesslog) = args.accesslog {
                export = export.accesslog(accesslog);
            }
            export
        });
    for registry in args.registry {
        builder = builder.registry(registry);
    }
    // With a QoS port, the provider's metrics are served there (`/metrics`).
    let metrics = args.qos_port.map(|_| rpc::observe::Metrics::new());
    if let Some(metrics) = &metrics {
        builder = builder.metrics(metrics);
    }
    let provider = builder.start().await?;
    // Printed before `listening on`, which scripts and tests wait for.
    let qos = match (args.qos_port, metrics) {
        (Some(port), Some(metrics)) => {
            let qos = rpc::qos::Qos::builder()
                .port(port)
                .provider(&provider)
                .metrics(move || metrics.render())
                .start()
                .await?;
            if let Some(addr) = qos.local_addr() {
                println!("qos on {addr}");
            }
            Some(qos)
        }
        _ => None,
    };
    if let Some(addr) = provider.local_addr(&args.protocol) {
        // Scripts and tests wait for this line.
        println!("listening on {}://{addr}", args.protocol);
    }
    rpc::shutdown_signal().await;
    let abandoned = provider.shutdown().await;
    drop(qos);
    println!("stopped (abandoned {abandoned} in-flight calls)");
    Ok(())
}

/// `key=value`.
fn parse_param(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => Ok((key.trim().to_string(), value.to_string())),
        _ => Err(format!("`{text}` is not key=value")),
    }
}

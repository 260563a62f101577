//! A provider that calls another provider: the middle of a call chain.
//!
//! ```text
//! cargo run --example greeter-provider -- --port 20881 --tag b
//! cargo run --example chain -- --port 20880 --next rpc://127.0.0.1:20881 --tag a
//! cargo run --example greeter-consumer -- --calls 1 -v
//! # Hello, world from b via a
//! ```
//!
//! Serves `org.example.Greeter` 1.0.0; `sayHello` asks the Greeter found at
//! `--next` and answers its greeting followed by ` via TAG` (the other
//! methods are answered here). The nested call continues the trace of the
//! request that caused it: run all three with `RPC_TRACE_FILE=spans.jsonl`
//! to see one trace across the three processes. Prints `listening on
//! rpc://host:port` when ready, serves until Ctrl-C or SIGTERM.

use std::time::Duration;

use clap::Parser;
use rpc_examples::{Greeter, GreeterClient, GreeterImpl, GreeterServer, Order, OrderError, OrderId};

#[derive(Debug, Parser)]
#[command(about = "Serves org.example.Greeter by asking the next Greeter in the chain.")]
struct Args {
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = rpc::DEFAULT_RPC_PORT)]
    port: u16,
    /// Where the next Greeter is: a registry or a direct URL (`rpc://127.0.0.1:20881`).
    #[arg(long)]
    next: String,
    /// Appended to the next Greeter's answers (` via TAG`).
    #[arg(long, default_value = "chain")]
    tag: String,
    /// Timeout of the nested call, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    timeout_ms: u64,
}

/// A Greeter answering greetings by asking the next one.
struct Chain {
    next: GreeterClient,
    tag: String,
    local: GreeterImpl,
}

impl Greeter for Chain {
    async fn say_hello(&self, name: String) -> String {
        match self.next.say_hello(name).await {
            Ok(reply) => format!("{reply} via {}", self.tag),
            Err(e) => format!("the next Greeter failed: {e}"),
        }
    }

    async fn place_order(&self, order: Order) -> Result<OrderId, OrderError> {
        self.local.place_order(order).await
    }

    async fn sleep(&self, millis: u64) -> u64 {
        self.local.sleep(millis).await
    }
}

#[tokio::main]
async fn main() {
    rpc_examples::init_logging("info");
    let args = Args::parse();
    if let Err(e) = run(args).await {
        eprintln!("chain: {e}");
        std::process::exit(2);
    }
}

async fn run(args: Args) -> Result<(), rpc::Error> {
    let consumer = rpc::Consumer::builder()
        .application("chain")
        .registry(args.next)
        .build()
        .await?;
    let next: GreeterClient = consumer
        .reference::<GreeterClient>()
        .timeout(Duration::from_millis(args.timeout_ms))
        .build()
        .await?;
    let chain = Chain {
        next,
        tag: args.tag,
        local: GreeterImpl::new(None),
    };
    let provider = rpc::Provider::builder()
        .application("chain")
        .protocol("rpc", args.port)
        .serve(GreeterServer::new(chain))
        .start()
        .await?;
    if let Some(addr) = provider.local_addr("rpc") {
        // Scripts and tests wait for this line.
        println!("listening on rpc://{addr}");
    }
    rpc::shutdown_signal().await;
    provider.shutdown().await;
    Ok(())
}

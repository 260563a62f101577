//! A job that runs on exactly one process of a cluster: the leader of a
//! ZooKeeper election.
//!
//! ```text
//! cargo run --example leader-job -- --registry zookeeper://127.0.0.1:2181 \
//!     --path /election/job --name a --log /tmp/job.log
//! ```
//!
//! Joins the election at `--path` (Curator `LeaderLatch` nodes holding
//! `--name`); while leading, appends `NAME` to `--log` every 100 ms (the job),
//! and stops the moment leadership is suspended or lost. Prints, on stdout:
//! * `NAME not leading` when joining and whenever leadership ends;
//! * `NAME leading` whenever it starts;
//! * `leader=ID` whenever the leader it sees (the first participant's id,
//!   Rust or Java) changes.
//!
//! On SIGTERM or Ctrl-C it relinquishes (deletes its node, so the next
//! participant leads at once) and exits 0. When its session expires it joins
//! again with the registry's next session.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use rpc::registry::Url;
use rpc::registry::zookeeper::{LeaderElection, LeaderState, Participant, ZookeeperRegistry};

#[derive(Debug, Parser)]
#[command(about = "Runs a job only while leading a ZooKeeper election.")]
struct Args {
    /// ZooKeeper registry URL, e.g. `zookeeper://127.0.0.1:2181?session=4000`.
    #[arg(long)]
    registry: String,
    /// The election's path.
    #[arg(long, default_value = "/election/job")]
    path: String,
    /// This participant's id.
    #[arg(long)]
    name: String,
    /// The job's output: NAME is appended every 100 ms while leading.
    #[arg(long)]
    log: std::path::PathBuf,
}

#[tokio::main]
async fn main() -> ExitCode {
    rpc_examples::init_logging("warn");
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("leader-job: {e}");
            ExitCode::from(2)
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let url = Url::parse(&args.registry).map_err(|e| format!("--registry: {e}"))?;
    let registry = ZookeeperRegistry::new(&url).map_err(|e| e.to_string())?;
    let election = registry.leader_election(&args.path, &args.name);
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&args.log)
        .map_err(|e| format!("cannot open {}: {e}", args.log.display()))?;
    let watcher = tokio::spawn(print_leader(election.clone()));
    let shutdown = rpc::shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        let participant = election.join().await.map_err(|e| e.to_string())?;
        let printer = tokio::spawn(print_leadership(args.name.clone(), participant.watch()));
        let over = tokio::select! {
            _ = &mut shutdown => None,
            () = lead_while_standing(&participant, &args.name, &mut log) => Some(participant.state()),
        };
        let Some(state) = over else {
            let result = participant.relinquish().await;
            printer.abort();
            watcher.abort();
            return result.map_err(|e| e.to_string());
        };
        printer.abort();
        tracing::warn!(name = %args.name, ?state, "out of the election; joining again");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs the job each time this participant leads, until the participation is over.
async fn lead_while_standing(participant: &Participant, name: &str, log: &mut std::fs::File) {
    while !participant.state().is_over() {
        participant.while_leading(job(name, log)).await;
    }
}

/// The job: append the name every 100 ms, forever (cancelled when leadership ends).
async fn job(name: &str, log: &mut std::fs::File) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tick.tick().await;
        if let Err(e) = writeln!(log, "{name}") {
            tracing::warn!(error = %e, "cannot append to the job's log");
        }
    }
}

/// Prints `NAME leading` / `NAME not leading` on every change.
async fn print_leadership(name: String, mut states: tokio::sync::watch::Receiver<LeaderState>) {
    let mut leading = states.borrow_and_update().is_leading();
    println!("{name} {}", if leading { "leading" } else { "not leading" });
    while states.changed().await.is_ok() {
        let now = states.borrow_and_update().is_leading();
        if now != leading {
            leading = now;
            println!("{name} {}", if leading { "leading" } else { "not leading" });
        }
    }
}

/// Prints `leader=ID` whenever the leader seen in ZooKeeper changes.
async fn print_leader(election: LeaderElection) {
    let mut seen: Option<String> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tick.tick().await;
        if let Ok(leader) = election.leader().await
            && leader != seen
        {
            if let Some(id) = &leader {
                println!("leader={id}");
            }
            seen = leader;
        }
    }
}

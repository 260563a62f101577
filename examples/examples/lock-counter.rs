//! A counter in ZooKeeper, incremented under a distributed lock: run several
//! at once and no update is ever lost.
//!
//! ```text
//! cargo run --example lock-counter -- --registry zookeeper://127.0.0.1:2181 \
//!     --path /locks/counter --rounds 40 [--hold-ms 5] [--counter /counters/counter] [--name a]
//! ```
//!
//! Each round: take the lock at `--path` (Curator `InterProcessMutex` nodes);
//! create the *ephemeral* marker `{counter}-holder` holding `--name` (if
//! another holder's marker is there, print `VIOLATION marker held by OTHER`
//! and exit 3); read the integer in `--counter` (created as `0` if missing);
//! write it plus one; hold for `--hold-ms`; delete the marker; release. Every
//! write is fenced: it fails if the lock node is gone, so a holder that lost
//! its lock (session expired while it was paused) cannot write.
//!
//! Prints one line per event, on stdout:
//! * `round K counter=V` when round K is done (V: the value it wrote);
//! * `round K lost the lock before writing: REASON` or `round K lost the lock
//!   after writing counter=V: REASON` when the lock went away mid-round (the
//!   round is then run again);
//! * `lock suspended`, `lock held` as the lock's state changes, and
//!   `lock lost (REASON)` when a round finds the lock gone;
//! * `rounds=N` at the end.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use rpc::registry::Url;
use rpc::registry::zookeeper::zookeeper_client::Error as ZkError;
use rpc::registry::zookeeper::{CoordinationError, LockGuard, LockState, ZookeeperRegistry};

#[derive(Debug, Parser)]
#[command(about = "Increments a counter znode N times under a ZooKeeper lock.")]
struct Args {
    /// ZooKeeper registry URL, e.g. `zookeeper://127.0.0.1:2181?session=4000`.
    #[arg(long)]
    registry: String,
    /// The lock's path.
    #[arg(long, default_value = "/locks/counter")]
    path: String,
    /// How many increments.
    #[arg(long, default_value_t = 10)]
    rounds: u32,
    /// How long to hold the lock after each increment, in milliseconds.
    #[arg(long, default_value_t = 0)]
    hold_ms: u64,
    /// The counter's znode (its marker is `{counter}-holder`).
    #[arg(long, default_value = "/counters/counter")]
    counter: String,
    /// This holder's name, in the lock node and the marker.
    #[arg(long)]
    name: Option<String>,
    /// How long to wait for the lock each round, in seconds.
    #[arg(long, default_value_t = 120)]
    wait_secs: u64,
}

/// What went wrong, and the exit code that says so.
enum Failure {
    /// Another holder's marker: mutual exclusion was broken.
    Violation(String),
    /// Anything else.
    Error(String),
}

#[tokio::main]
async fn main() -> ExitCode {
    rpc_examples::init_logging("warn");
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Violation(holder)) => {
            println!("VIOLATION marker held by {holder}");
            ExitCode::from(3)
        }
        Err(Failure::Error(e)) => {
            eprintln!("lock-counter: {e}");
            ExitCode::from(2)
        }
    }
}

async fn run(args: Args) -> Result<(), Failure> {
    let url = Url::parse(&args.registry).map_err(|e| Failure::Error(format!("--registry: {e}")))?;
    let registry = ZookeeperRegistry::new(&url).map_err(|e| Failure::Error(e.to_string()))?;
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("pid-{}", std::process::id()));
    let lock = registry.lock(&args.path).with_id(name.clone());
    let marker = format!("{}-holder", args.counter);
    let mut round = 1;
    while round <= args.rounds {
        let guard = lock
            .acquire(Duration::from_secs(args.wait_secs))
            .await
            .map_err(|e| Failure::Error(format!("round {round}: {e}")))?;
        let printer = tokio::spawn(print_states(guard.watch()));
        let mut written = None;
        let outcome = one_round(&args, &guard, &name, &marker, &mut written).await;
        let lost = match outcome {
            // As the guard reports it (at once: its fenced write said so).
            Err(RoundError::Lost(_)) => tokio::time::timeout(Duration::from_secs(10), guard.lost()).await.ok(),
            _ => None,
        };
        match outcome {
            Ok(()) => {
                let released = guard.release().await;
                // The state's sender went with the guard: the printer prints what is left, then ends.
                finish(printer).await;
                released.map_err(|e| Failure::Error(format!("round {round}: release: {e}")))?;
                // `written` is set by a completed round.
                println!("round {round} counter={}", written.unwrap_or_default());
                round += 1;
            }
            Err(RoundError::Lost(e)) => {
                // Dropped: its node (if any is left) goes in the background. The round runs again.
                drop(guard);
                finish(printer).await;
                if let Some(reason) = lost {
                    println!("lock lost ({reason})");
                }
                match written {
                    Some(value) => println!("round {round} lost the lock after writing counter={value}: {e}"),
                    None => println!("round {round} lost the lock before writing: {e}"),
                }
            }
            Err(RoundError::Failed(failure)) => {
                printer.abort();
                return Err(failure);
            }
        }
    }
    println!("rounds={}", args.rounds);
    Ok(())
}

enum RoundError {
    /// The lock went away (fenced writes refused): run the round again.
    Lost(CoordinationError),
    Failed(Failure),
}

impl From<CoordinationError> for RoundError {
    fn from(e: CoordinationError) -> RoundError {
        if e.is_lost() {
            RoundError::Lost(e)
        } else {
            RoundError::Failed(Failure::Error(e.to_string()))
        }
    }
}

async fn one_round(
    args: &Args,
    guard: &LockGuard,
    name: &str,
    marker: &str,
    written: &mut Option<u64>,
) -> Result<(), RoundError> {
    // The marker lives in the lock's session: it vanishes with a dead holder's lock.
    let mut retried = false;
    loop {
        held(guard).await?;
        match guard.create(marker, name.as_bytes(), true).await {
            Ok(_) => break,
            Err(CoordinationError::Zookeeper {
                source: ZkError::NodeExists,
                ..
            }) => {
                let holder = match guard.client().get_data(marker).await {
                    Ok((data, _)) => String::from_utf8_lossy(&data).into_owned(),
                    Err(e) => format!("(unreadable: {e})"),
                };
                // Ours, from a create whose reply was lost.
                if retried && holder == name {
                    break;
                }
                return Err(RoundError::Failed(Failure::Violation(holder)));
            }
            Err(CoordinationError::Zookeeper {
                source: ZkError::NoNode,
                ..
            }) => {
                // The counter's parent is missing: create it once.
                create_parents(guard, &args.counter).await?;
            }
            Err(e) => {
                settle(guard, e).await?;
                retried = true;
            }
        }
    }
    let value = read_counter(guard, &args.counter).await?;
    let next = (value + 1).to_string();
    // Setting the same value again is harmless: retried until done or lost.
    loop {
        held(guard).await?;
        match guard.set_data(&args.counter, next.as_bytes(), None).await {
            Ok(_) => break,
            Err(e) => {
                // It may have been applied before the connection broke.
                *written = Some(value + 1);
                settle(guard, e).await?;
            }
        }
    }
    *written = Some(value + 1);
    if args.hold_ms > 0 {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(args.hold_ms)) => {}
            // Lost while holding: the fenced delete below says so.
            _ = guard.lost() => {}
        }
    }
    let mut retried = false;
    loop {
        held(guard).await?;
        match guard.delete(marker, None).await {
            Ok(()) => return Ok(()),
            Err(CoordinationError::Zookeeper {
                source: ZkError::NoNode,
                ..
            }) if retried => return Ok(()),
            Err(e) => {
                settle(guard, e).await?;
                retried = true;
            }
        }
    }
}

/// Waits while the lock is suspended (the documented discipline: act only
/// while it is held); a lost lock ends the round.
async fn held(guard: &LockGuard) -> Result<(), RoundError> {
    if guard.state() != LockState::Suspended {
        return Ok(());
    }
    let mut states = guard.watch();
    let settled = tokio::time::timeout(Duration::from_secs(60), states.wait_for(|s| *s != LockState::Suspended)).await;
    match settled.as_ref().map(|s| s.as_deref().copied()) {
        Ok(Ok(LockState::Held)) => Ok(()),
        Ok(Ok(LockState::Lost(reason))) => Err(RoundError::Lost(CoordinationError::Lost {
            path: guard.lock_path().to_owned(),
            reason,
        })),
        _ => Err(RoundError::Failed(Failure::Error(
            "the lock stayed suspended for 60 s".to_owned(),
        ))),
    }
}

/// After a fenced write failed with `error`: a lost lock ends the round; a
/// connection broken under the write (outcome unknown) waits a moment for
/// the lock to be held again or lost, then lets the caller run the write again.
async fn settle(guard: &LockGuard, error: CoordinationError) -> Result<(), RoundError> {
    if !error.is_disconnected() {
        return Err(error.into());
    }
    tracing::warn!(%error, "the connection broke under a write; waiting for the lock's state");
    let mut states = guard.watch();
    let settled = tokio::time::timeout(Duration::from_secs(60), async {
        // Give the state a moment to follow the broken connection.
        tokio::time::sleep(Duration::from_millis(50)).await;
        states
            .wait_for(|s| matches!(s, LockState::Held | LockState::Lost(_)))
            .await
            .map(|s| *s)
    })
    .await;
    match settled {
        Ok(Ok(LockState::Held)) => Ok(()),
        Ok(Ok(LockState::Lost(_))) => Err(RoundError::Lost(error)),
        _ => Err(RoundError::Failed(Failure::Error(format!(
            "the lock's state did not settle within 60 s after: {error}"
        )))),
    }
}

/// The counter's value; a missing counter is created as 0.
async fn read_counter(guard: &LockGuard, counter: &str) -> Result<u64, RoundError> {
    loop {
        match guard.client().get_data(counter).await {
            Ok((data, _)) => {
                let text = String::from_utf8_lossy(&data);
                return text.trim().parse::<u64>().map_err(|_| {
                    RoundError::Failed(Failure::Error(format!(
                        "{counter} holds {text:?}, not a decimal integer"
                    )))
                });
            }
            Err(ZkError::NoNode) => match guard.create(counter, b"0", false).await {
                Ok(_) => continue,
                Err(CoordinationError::Zookeeper {
                    source: ZkError::NodeExists,
                    ..
                }) => continue,
                Err(e) => settle(guard, e).await?,
            },
            Err(e @ (ZkError::ConnectionLoss | ZkError::Custom(_))) => {
                let error = CoordinationError::Disconnected {
                    path: counter.to_owned(),
                    operation: "read",
                    source: e,
                };
                settle(guard, error).await?;
            }
            Err(e) => {
                return Err(RoundError::Failed(Failure::Error(format!("read {counter}: {e}"))));
            }
        }
    }
}

/// Creates the persistent parents of `path`.
async fn create_parents(guard: &LockGuard, path: &str) -> Result<(), RoundError> {
    let Some((parent, _)) = path.rsplit_once('/') else {
        return Ok(());
    };
    if parent.is_empty() {
        return Ok(());
    }
    let persistent = rpc::registry::zookeeper::zookeeper_client::CreateMode::Persistent
        .with_acls(rpc::registry::zookeeper::zookeeper_client::Acls::anyone_all());
    match guard.client().mkdir(parent, &persistent).await {
        Ok(()) | Err(ZkError::NodeExists) => Ok(()),
        Err(e) => Err(RoundError::Failed(Failure::Error(format!("create {parent}: {e}")))),
    }
}

/// Waits (briefly) for the state printer to print what is left and end.
async fn finish(printer: tokio::task::JoinHandle<()>) {
    let abort = printer.abort_handle();
    if tokio::time::timeout(Duration::from_secs(2), printer).await.is_err() {
        abort.abort();
    }
}

/// Prints every change of the lock's state.
async fn print_states(mut states: tokio::sync::watch::Receiver<LockState>) {
    while states.changed().await.is_ok() {
        let state = *states.borrow_and_update();
        match state {
            LockState::Held => println!("lock held"),
            LockState::Suspended => println!("lock suspended"),
            // Printed by the round that finds it out.
            LockState::Lost(_) | LockState::Released => {}
        }
    }
}

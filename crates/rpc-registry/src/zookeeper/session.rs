//! The session supervisor: connect, keep every registration in place, forever.
//!
//! Two loops per session:
//! * the supervisor follows the session's state: a terminal state (expired,
//!   closed, authentication failed) ends it and a new one is opened; every
//!   reconnection (`SyncConnected`) asks for a reconciliation pass;
//! * the reconciler makes ZooKeeper hold what the registry wants: every
//!   wanted URL has its ephemeral node, owned by the current session, and
//!   every withdrawn URL has none. A pass that cannot finish (connection lost
//!   while the quorum recovers, an ACL refusing the create, anything) is
//!   retried with backoff (100 ms doubling to 5 s) until it does; a pass also
//!   runs at the start of every session, after every reconnection and after
//!   every `register`/`unregister` that could not finish in time.
//!
//! Every create or delete of a registered node, by `register`, `unregister`
//! or the reconciler, is issued under one lock, right after re-reading
//! whether the URL is wanted: so an `unregister` racing a re-creation can
//! never leave the node behind, nor a `register` lose it. ZooKeeper applies
//! one session's requests in order, so a request still queued when its caller
//! gave up is followed, not overtaken, by the ones issued after it.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use rpc_core::Url;
use tokio_util::sync::CancellationToken;
use zookeeper_client::{Acls, Client, CreateMode, CreateOptions, Error, SessionState};

use super::{Shared, lock};

const EPHEMERAL: CreateOptions<'static> = CreateMode::Ephemeral.with_acls(Acls::anyone_all());
const PERSISTENT: CreateOptions<'static> = CreateMode::Persistent.with_acls(Acls::anyone_all());
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Nodes checked at once by a reconciliation pass.
const CHECKS_IN_FLIGHT: usize = 16;

/// Keeps a live session for the registry until it is dropped.
pub(super) async fn supervise(shared: Arc<Shared>) {
    let mut backoff = BACKOFF_MIN;
    loop {
        let attempt = tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            attempt = connect(&shared) => attempt,
        };
        let client = match attempt {
            Ok(client) => client,
            Err(e) => {
                tracing::warn!(registry = %shared.url, error = %e, retry_ms = backoff.as_millis() as u64, "cannot connect to ZooKeeper");
                tokio::select! {
                    _ = shared.shutdown.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        // Watch the state before anything else can happen to the session: a
        // watcher taken later would miss an end that came first, and wait forever.
        let mut states = client.state_watcher();
        if client.state().is_terminated() {
            tracing::warn!(registry = %shared.url, state = ?client.state(), retry_ms = backoff.as_millis() as u64, "ZooKeeper session ended at once; opening a new one");
            tokio::select! {
                _ = shared.shutdown.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
            continue;
        }
        backoff = BACKOFF_MIN;
        tracing::info!(registry = %shared.url, session = ?client.session_id(), timeout_ms = client.session_timeout().as_millis() as u64, "ZooKeeper session established");
        let session_over = shared.shutdown.child_token();
        tokio::spawn(reconcile_forever(shared.clone(), client.clone(), session_over.clone()));
        shared.client.send_replace(Some(client));
        // Wait for the session to end; disconnections in between are repaired
        // by the client itself (same session, watches re-sent), and checked by
        // a reconciliation pass (a node can be missing then too).
        loop {
            let state = tokio::select! {
                _ = shared.shutdown.cancelled() => {
                    session_over.cancel();
                    shared.client.send_replace(None);
                    // Dropping the last client closes the session: our ephemeral nodes go at once.
                    return;
                }
                state = states.changed() => state,
            };
            match state {
                SessionState::Disconnected => {
                    tracing::warn!(registry = %shared.url, "ZooKeeper connection lost; keeping the last known providers")
                }
                SessionState::SyncConnected => {
                    tracing::info!(registry = %shared.url, "ZooKeeper connection restored; checking the registrations");
                    shared.reconcile.notify_one();
                }
                SessionState::ConnectedReadOnly => {
                    tracing::info!(registry = %shared.url, "ZooKeeper connection restored, read-only")
                }
                terminal => {
                    tracing::warn!(registry = %shared.url, state = ?terminal, "ZooKeeper session ended; opening a new one");
                    break;
                }
            }
        }
        session_over.cancel();
        shared.client.send_replace(None);
    }
}

/// Opens a session (and the chroot, created if missing).
async fn connect(shared: &Shared) -> Result<Client, Error> {
    let config = &shared.config;
    let client = Client::connector()
        .with_session_timeout(config.session_timeout)
        .with_connection_timeout(config.timeout.min(config.session_timeout))
        .connect(&config.servers)
        .await?;
    if config.chroot.is_empty() {
        return Ok(client);
    }
    match client.mkdir(&config.chroot, &PERSISTENT).await {
        Ok(()) | Err(Error::NodeExists) => {}
        Err(e) => return Err(e),
    }
    client
        .chroot(config.chroot.clone())
        .map_err(|_| Error::BadArguments(&"invalid chroot path"))
}

/// Runs reconciliation passes on `client`'s session until it is over: one at
/// once, then one per request (`Shared::reconcile`), and after a failed pass
/// another after a backoff.
async fn reconcile_forever(shared: Arc<Shared>, client: Client, session_over: CancellationToken) {
    let mut backoff = BACKOFF_MIN;
    loop {
        let pass = tokio::select! {
            _ = session_over.cancelled() => return,
            pass = reconcile(&shared, &client) => pass,
        };
        let retry = match pass {
            Ok(()) => {
                backoff = BACKOFF_MIN;
                None
            }
            Err(failure) => {
                tracing::warn!(
                    registry = %shared.url, failed = failure.failed, first = %failure.first,
                    retry_ms = backoff.as_millis() as u64,
                    "cannot put every registration in place; retrying"
                );
                let retry = backoff;
                backoff = (backoff * 2).min(BACKOFF_MAX);
                Some(retry)
            }
        };
        let after_backoff = async {
            match retry {
                Some(delay) => tokio::time::sleep(delay).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = session_over.cancelled() => return,
            _ = shared.reconcile.notified() => {}
            _ = after_backoff => {}
        }
    }
}

/// Why a reconciliation pass did not finish.
#[derive(Debug)]
struct PassFailure {
    /// How many nodes are not as wanted.
    failed: usize,
    /// The first problem met.
    first: String,
}

/// One pass: checks every wanted node (many at once; a node is in place when
/// it exists and this session owns it), creates the missing ones, deletes the
/// withdrawn ones.
async fn reconcile(shared: &Shared, client: &Client) -> Result<(), PassFailure> {
    let (wanted, withdrawn): (Vec<Url>, Vec<Url>) = {
        let registrations = lock(&shared.registrations);
        (
            registrations.wanted.iter().cloned().collect(),
            registrations.withdrawn.iter().cloned().collect(),
        )
    };
    let session = client.session_id().0;
    let mut problems: Vec<String> = Vec::new();
    let checks = futures::stream::iter(wanted)
        .map(|url| async move {
            let path = shared.config.node_path(&url)?;
            match client.check_stat(&path).await {
                Ok(Some(stat)) if stat.ephemeral_owner == session => Ok(None),
                Ok(_) => Ok(Some(url)),
                Err(e) => Err(format!("cannot check {path}: {e}")),
            }
        })
        .buffer_unordered(CHECKS_IN_FLIGHT)
        .collect::<Vec<_>>()
        .await;
    let mut missing = Vec::new();
    for check in checks {
        match check {
            Ok(Some(url)) => missing.push(url),
            Ok(None) => {}
            Err(problem) => problems.push(problem),
        }
    }
    for url in missing {
        match put_in_place(shared, client, &url).await {
            Ok(()) => tracing::info!(registry = %shared.url, url = %url.redacted(), "registration restored"),
            Err(reason) => problems.push(format!("cannot create the node of {url}: {reason}")),
        }
    }
    for url in withdrawn {
        if let Err(reason) = take_away(shared, client, &url).await {
            problems.push(format!("cannot delete the node of {url}: {reason}"));
        }
    }
    match problems.first() {
        None => Ok(()),
        Some(first) => Err(PassFailure {
            failed: problems.len(),
            first: first.clone(),
        }),
    }
}

/// Creates `url`'s node if `url` is still wanted, deciding and creating under
/// `Shared::node_ops`. An error is ZooKeeper's reason.
pub(super) async fn put_in_place(shared: &Shared, client: &Client, url: &Url) -> Result<(), String> {
    let path = shared.config.node_path(url)?;
    let _serial = shared.node_ops.lock().await;
    if !lock(&shared.registrations).wanted.contains(url) {
        return Ok(());
    }
    create_ephemeral(client, &path).await.map_err(|e| e.to_string())
}

/// Deletes `url`'s node if `url` is still withdrawn, deciding and deleting under
/// `Shared::node_ops`; once it is gone, `url` is no longer withdrawn. An error
/// is ZooKeeper's reason.
pub(super) async fn take_away(shared: &Shared, client: &Client, url: &Url) -> Result<(), String> {
    let path = shared.config.node_path(url)?;
    let _serial = shared.node_ops.lock().await;
    if !lock(&shared.registrations).withdrawn.contains(url) {
        return Ok(());
    }
    match client.delete(&path, None).await {
        Ok(()) | Err(Error::NoNode) => {
            lock(&shared.registrations).withdrawn.remove(url);
            Ok(())
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Creates the ephemeral node `path` (and its persistent parents) for this
/// session. A node left by an earlier session of ours (ephemeral nodes linger
/// until the server expires that session) is replaced.
async fn create_ephemeral(client: &Client, path: &str) -> Result<(), Error> {
    if let Some((parent, _)) = path.rsplit_once('/')
        && !parent.is_empty()
    {
        match client.mkdir(parent, &PERSISTENT).await {
            Ok(()) | Err(Error::NodeExists) => {}
            Err(e) => return Err(e),
        }
    }
    for _ in 0..3 {
        match client.create(path, b"", &EPHEMERAL).await {
            Ok(_) => return Ok(()),
            Err(Error::NodeExists) => {
                let owner = client.check_stat(path).await?.map(|stat| stat.ephemeral_owner);
                if owner == Some(client.session_id().0) {
                    return Ok(());
                }
                match client.delete(path, None).await {
                    Ok(()) | Err(Error::NoNode) => continue,
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        }
    }
    Err(Error::NodeExists)
}

//! The session supervisor: connect, re-register after expiry, forever.

use std::sync::Arc;
use std::time::Duration;

use zookeeper_client::{Acls, Client, CreateMode, CreateOptions, Error, SessionState};

use super::{Shared, lock};

const EPHEMERAL: CreateOptions<'static> = CreateMode::Ephemeral.with_acls(Acls::anyone_all());
const PERSISTENT: CreateOptions<'static> = CreateMode::Persistent.with_acls(Acls::anyone_all());
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Keeps a live session for the registry until it is dropped.
pub(super) async fn supervise(shared: Arc<Shared>) {
    let mut backoff = Duration::from_millis(100);
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
        backoff = Duration::from_millis(100);
        let session = client.session_id();
        tracing::info!(registry = %shared.url, ?session, timeout_ms = client.session_timeout().as_millis() as u64, "ZooKeeper session established");
        restore_registrations(&shared, &client).await;
        let mut states = client.state_watcher();
        shared.client.send_replace(Some(client.clone()));
        // Wait for the session to end; disconnections in between are repaired
        // by the client itself (same session, watches re-sent).
        loop {
            let state = tokio::select! {
                _ = shared.shutdown.cancelled() => {
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
                SessionState::SyncConnected | SessionState::ConnectedReadOnly => {
                    tracing::info!(registry = %shared.url, ?state, "ZooKeeper connection restored")
                }
                terminal => {
                    tracing::warn!(registry = %shared.url, state = ?terminal, "ZooKeeper session ended; opening a new one");
                    break;
                }
            }
        }
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

/// Creates every node the registry registered: after an expiry they are gone.
async fn restore_registrations(shared: &Shared, client: &Client) {
    let urls: Vec<_> = lock(&shared.registered).iter().cloned().collect();
    for url in urls {
        let Ok(path) = shared.config.node_path(&url) else {
            continue;
        };
        match create_ephemeral(client, &path).await {
            Ok(()) => tracing::debug!(%url, "registration restored"),
            Err(e) => {
                tracing::warn!(%url, error = %e, "cannot restore a registration; it is retried after the next reconnection")
            }
        }
    }
}

/// Creates the ephemeral node `path` (and its persistent parents) for this
/// session. A node left by an earlier session of ours (ephemeral nodes linger
/// until the server expires that session) is replaced.
pub(super) async fn create_ephemeral(client: &Client, path: &str) -> Result<(), Error> {
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

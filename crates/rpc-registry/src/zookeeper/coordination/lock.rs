//! [`Lock`]: Curator's `InterProcessMutex` on ZooKeeper.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use zookeeper_client::{
    Acls, CheckWriteError, CheckWriter, Client, CreateMode, MultiWriteResult, OwnedLockClient, Stat,
};

use super::node::{self, Hold, LOCK_NAME};
use super::{CoordinationError, LostReason};
use crate::zookeeper::ZookeeperRegistry;

/// A distributed lock: one path in ZooKeeper, held by at most one contender
/// (process or task) at a time. See the [module docs](super) for the recipe,
/// what happens on session trouble and the fencing pattern.
///
/// Made by [`ZookeeperRegistry::lock`]; cheap to clone. Each [`acquire`](Lock::acquire)
/// is one contender: the lock is not reentrant.
#[derive(Clone, Debug)]
pub struct Lock {
    registry: ZookeeperRegistry,
    path: String,
    id: String,
}

/// Where a held lock stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockState {
    /// Held: the node exists and the session is connected.
    Held,
    /// Disconnected from ZooKeeper: the lock may already belong to someone
    /// else (if the session expires meanwhile). Stop acting on it until it is
    /// [`Held`](LockState::Held) again.
    Suspended,
    /// Gone for good; acquire again to hold the lock again.
    Lost(LostReason),
    /// Released by [`LockGuard::release`].
    Released,
}

impl Lock {
    pub(crate) fn new(registry: ZookeeperRegistry, path: &str) -> Lock {
        Lock {
            registry,
            path: path.to_owned(),
            id: format!("pid {}", std::process::id()),
        }
    }

    /// The lock's path (relative to the registry's chroot).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Stores `id` in this lock's contender nodes (default `pid <pid>`), so
    /// [`holder`](Lock::holder) and an operator reading ZooKeeper can tell who holds it.
    pub fn with_id(mut self, id: impl Into<String>) -> Lock {
        self.id = id.into();
        self
    }

    /// Waits up to `wait` for the lock (including the wait for a ZooKeeper
    /// session), queued behind earlier contenders.
    ///
    /// Cancel-safe: dropping the future withdraws this contender (its node is
    /// deleted in the background). On [`CoordinationError::Timeout`] the node
    /// has already been deleted.
    pub async fn acquire(&self, wait: Duration) -> Result<LockGuard, CoordinationError> {
        node::validate_dir(&self.path)?;
        let deadline = tokio::time::Instant::now() + wait;
        let client = self.registry.client_within(wait).await?;
        // Taken before the node exists, so no state change is missed.
        let states = client.state_watcher();
        loop {
            // A fresh prefix per try: the recipe cleans up a failed try's node by its prefix.
            let prefix = node::curator_prefix(&self.path, LOCK_NAME);
            let contending = node::contend(&client, &self.path, &prefix, LOCK_NAME, self.id.as_bytes());
            match tokio::time::timeout_at(deadline, contending).await {
                Ok(Ok(recipe)) => {
                    let node = recipe.lock_path().to_owned();
                    return Ok(LockGuard::start(client, states, self.path.clone(), node, Some(recipe)));
                }
                // The connection broke under the recipe (it withdrew the node): try again.
                Ok(Err(e)) if e.is_disconnected() => {
                    tracing::debug!(lock = %self.path, error = %e, "contending again after a broken connection");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                // The recipe withdrew the contender, or the session ended.
                Ok(Err(e)) => return Err(e),
                Err(_) => {
                    // Withdraw before answering, so a timed-out contender never blocks the next.
                    let cleanup = node::remove_own(&client, &self.path, &prefix);
                    match tokio::time::timeout(self.registry.shared.config.timeout, cleanup).await {
                        Ok(Ok(())) => {}
                        _ => spawn_cleanup(client, self.path.clone(), prefix),
                    }
                    return Err(self.timeout(wait));
                }
            }
        }
    }

    /// Takes the lock if no one holds it or waits for it; `None` otherwise.
    /// Waits for ZooKeeper (at most the registry's `timeout`) but never for another contender.
    pub async fn try_acquire(&self) -> Result<Option<LockGuard>, CoordinationError> {
        node::validate_dir(&self.path)?;
        let client = self.registry.client().await?;
        let states = client.state_watcher();
        let prefix = node::curator_prefix(&self.path, LOCK_NAME);
        let attempt = async {
            let own = node::create_own(&client, &self.path, &prefix, self.id.as_bytes()).await?;
            let children = client
                .list_children(&self.path)
                .await
                .map_err(|e| node::lost_or(&self.path, "list contenders", e))?;
            let first = node::contenders(children, LOCK_NAME).into_iter().next();
            Ok::<_, CoordinationError>((own, first))
        };
        let outcome = tokio::time::timeout(self.registry.shared.config.timeout, attempt).await;
        match outcome {
            Ok(Ok((own, Some(first)))) if own.ends_with(&format!("/{first}")) => {
                Ok(Some(LockGuard::start(client, states, self.path.clone(), own, None)))
            }
            Ok(Ok((own, _))) => {
                node::delete(&client, &own).await?;
                Ok(None)
            }
            Ok(Err(e)) => {
                node::remove_own(&client, &self.path, &prefix).await?;
                Err(e)
            }
            Err(_) => {
                spawn_cleanup(client, self.path.clone(), prefix);
                Err(CoordinationError::Registry(crate::RegistryError::new(
                    &self.registry.shared.url,
                    format!(
                        "no answer from ZooKeeper within {} ms while trying lock {}",
                        self.registry.shared.config.timeout.as_millis(),
                        self.path
                    ),
                )))
            }
        }
    }

    /// The id stored by the current holder (the lowest contender), if any.
    pub async fn holder(&self) -> Result<Option<String>, CoordinationError> {
        node::validate_dir(&self.path)?;
        let client = self.registry.client().await?;
        node::first_data(&client, &self.path, LOCK_NAME).await
    }

    fn timeout(&self, wait: Duration) -> CoordinationError {
        CoordinationError::Timeout {
            path: self.path.clone(),
            waited: wait,
        }
    }
}

/// Deletes a withdrawn contender's node in the background (bounded retries inside the client).
fn spawn_cleanup(client: Client, dir: String, prefix: String) {
    tokio::spawn(async move {
        if let Err(e) = node::remove_own(&client, &dir, &prefix).await {
            tracing::warn!(lock = %dir, error = %e, "cannot delete a withdrawn contender's node; it goes with the session");
        }
    });
}

/// A held lock. Release it with [`release`](LockGuard::release), which waits
/// for ZooKeeper; dropped, it deletes its node in the background.
///
/// Follow [`state`](LockGuard::state) or [`lost`](LockGuard::lost) to stop
/// acting when the lock is suspended or lost, and make writes to ZooKeeper
/// through the guard's fenced methods.
#[derive(Debug)]
pub struct LockGuard {
    client: Client,
    lock: String,
    node: String,
    state: watch::Receiver<LockState>,
    monitor: JoinHandle<()>,
    /// The recipe's handle, when acquired through it: dropped, it deletes the node in the background.
    recipe: Option<OwnedLockClient>,
    released: bool,
}

impl LockGuard {
    fn start(
        client: Client,
        states: zookeeper_client::StateWatcher,
        lock: String,
        node: String,
        recipe: Option<OwnedLockClient>,
    ) -> LockGuard {
        let (report, state) = watch::channel(LockState::Held);
        let monitor = {
            let client = client.clone();
            let node = node.clone();
            let lock = lock.clone();
            tokio::spawn(async move {
                let reason = node::hold(&client, &node, states, |hold| {
                    let next = match hold {
                        Hold::Held => LockState::Held,
                        Hold::Suspended => LockState::Suspended,
                        Hold::Lost(reason) => LockState::Lost(reason),
                    };
                    report.send_if_modified(|state| {
                        let changed = *state != next && *state != LockState::Released;
                        if changed {
                            tracing::info!(lock = %lock, node = %node, from = ?*state, to = ?next, "lock state changed");
                            *state = next;
                        }
                        changed
                    });
                })
                .await;
                tracing::warn!(lock = %lock, node = %node, %reason, "lock lost");
            })
        };
        LockGuard {
            client,
            lock,
            node,
            state,
            monitor,
            recipe,
            released: false,
        }
    }

    /// The lock's path.
    pub fn lock_path(&self) -> &str {
        &self.lock
    }

    /// This holder's node, `{lock}/_c_{uuid}-lock-{seq}`.
    pub fn node_path(&self) -> &str {
        &self.node
    }

    /// The node's sequence number: grows with every acquisition of this lock,
    /// so it serves as a fencing token for systems outside ZooKeeper.
    pub fn sequence(&self) -> u64 {
        node::sequence_of(&self.node).unwrap_or_default()
    }

    /// Where the lock stands now.
    pub fn state(&self) -> LockState {
        *self.state.borrow()
    }

    /// Whether the lock is held now (not suspended, lost or released).
    pub fn is_held(&self) -> bool {
        self.state() == LockState::Held
    }

    /// A receiver of every change of [`state`](LockGuard::state).
    pub fn watch(&self) -> watch::Receiver<LockState> {
        self.state.clone()
    }

    /// Resolves when the lock is lost (at once if it already is): use it in a
    /// `select!` to stop work the moment the lock is gone.
    pub async fn lost(&self) -> LostReason {
        let mut state = self.state.clone();
        let lost = state.wait_for(|s| matches!(s, LockState::Lost(_))).await;
        match lost.as_deref() {
            Ok(LockState::Lost(reason)) => *reason,
            // The monitor is gone only when released (or its runtime shut down).
            _ => std::future::pending().await,
        }
    }

    /// The ZooKeeper client of the session that holds the lock (for reads;
    /// writes under the lock go through the fenced methods).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// A multi-write that first checks that the lock node still exists: commit
    /// fails with a check error if the lock is gone. For several writes at once.
    pub fn check_writer(&self) -> Result<CheckWriter<'_>, CoordinationError> {
        self.client
            .new_check_writer(&self.node, None)
            .map_err(|e| node::lost_or(&self.node, "fence", e))
    }

    /// Sets `path`'s data, only while this lock is held (fenced).
    pub async fn set_data(&self, path: &str, data: &[u8], version: Option<i32>) -> Result<Stat, CoordinationError> {
        let mut writer = self.check_writer()?;
        writer
            .add_set_data(path, data, version)
            .map_err(|e| node::lost_or(path, "set data", e))?;
        match self.commit(path, "set data", writer).await? {
            MultiWriteResult::SetData { stat } => Ok(stat),
            other => Err(self.unexpected(path, "set data", &other)),
        }
    }

    /// Creates `path` (persistent, or ephemeral in the lock's session), only
    /// while this lock is held (fenced). Returns the created path.
    pub async fn create(&self, path: &str, data: &[u8], ephemeral: bool) -> Result<String, CoordinationError> {
        let mode = if ephemeral {
            CreateMode::Ephemeral
        } else {
            CreateMode::Persistent
        };
        let mut writer = self.check_writer()?;
        writer
            .add_create(path, data, &mode.with_acls(Acls::anyone_all()))
            .map_err(|e| node::lost_or(path, "create", e))?;
        match self.commit(path, "create", writer).await? {
            MultiWriteResult::Create { path, .. } => Ok(path),
            other => Err(self.unexpected(path, "create", &other)),
        }
    }

    /// Deletes `path`, only while this lock is held (fenced).
    pub async fn delete(&self, path: &str, version: Option<i32>) -> Result<(), CoordinationError> {
        let mut writer = self.check_writer()?;
        writer
            .add_delete(path, version)
            .map_err(|e| node::lost_or(path, "delete", e))?;
        match self.commit(path, "delete", writer).await? {
            MultiWriteResult::Delete => Ok(()),
            other => Err(self.unexpected(path, "delete", &other)),
        }
    }

    async fn commit(
        &self,
        path: &str,
        operation: &'static str,
        writer: CheckWriter<'_>,
    ) -> Result<MultiWriteResult, CoordinationError> {
        match writer.commit().await {
            Ok(mut results) if !results.is_empty() => Ok(results.remove(0)),
            Ok(_) => Err(CoordinationError::zookeeper(
                path,
                operation,
                zookeeper_client::Error::UnexpectedError("no result for a fenced write".to_owned()),
            )),
            // The fence: the lock node is gone.
            Err(CheckWriteError::CheckFailed { .. }) => Err(CoordinationError::Lost {
                path: self.lock.clone(),
                reason: match self.state() {
                    LockState::Lost(reason) => reason,
                    _ => LostReason::NodeDeleted,
                },
            }),
            Err(CheckWriteError::RequestFailed { source }) => Err(node::lost_or(path, operation, source)),
            Err(CheckWriteError::OperationFailed { source, .. }) => {
                Err(CoordinationError::zookeeper(path, operation, source))
            }
        }
    }

    fn unexpected(&self, path: &str, operation: &'static str, result: &MultiWriteResult) -> CoordinationError {
        CoordinationError::zookeeper(
            path,
            operation,
            zookeeper_client::Error::UnexpectedError(format!("unexpected result {result:?}")),
        )
    }

    /// Releases the lock: deletes the node and waits for ZooKeeper to confirm
    /// (a node already gone, with the session, is fine). The next contender is
    /// woken by the deletion.
    pub async fn release(mut self) -> Result<(), CoordinationError> {
        self.released = true;
        self.monitor.abort();
        let deleted = node::delete(&self.client, &self.node).await;
        // Lost already: the node went with the session.
        let deleted = match deleted {
            Err(CoordinationError::Lost { .. }) => Ok(()),
            other => other,
        };
        if deleted.is_ok() {
            // The recipe's handle would delete it again in the background: harmless, but needless.
            drop(self.recipe.take());
        } else {
            // Not confirmed: the drop deletes it in the background.
            self.released = false;
        }
        deleted
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        self.monitor.abort();
        if self.released {
            return;
        }
        if let Some(recipe) = self.recipe.take() {
            // The recipe's handle deletes the node in the background when dropped.
            drop(recipe);
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let client = self.client.clone();
            let node = std::mem::take(&mut self.node);
            runtime.spawn(async move {
                let _ = node::delete(&client, &node).await;
            });
        }
    }
}

//! [`LeaderElection`]: Curator's `LeaderLatch` on ZooKeeper.

use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use zookeeper_client::{Client, OwnedLockClient, StateWatcher};

use super::node::{self, Hold, LATCH_NAME};
use super::{CoordinationError, LostReason};
use crate::zookeeper::ZookeeperRegistry;

/// A leader election at one path in ZooKeeper: of all participants, exactly
/// one leads at a time, and another takes over when it leaves or dies. See
/// the [module docs](super) for the recipe and what happens on session trouble.
///
/// Made by [`ZookeeperRegistry::leader_election`]; cheap to clone.
#[derive(Clone, Debug)]
pub struct LeaderElection {
    registry: ZookeeperRegistry,
    path: String,
    id: String,
}

/// Where a participant stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaderState {
    /// In line behind the leader (or joining).
    Waiting,
    /// Leading: the node is the lowest, and the session is connected.
    Leading,
    /// Disconnected from ZooKeeper: not leading (another may lead if the
    /// session expires meanwhile), leading again if the session survives.
    Suspended,
    /// Out of the election for good (the session expired, the node was
    /// deleted, or ZooKeeper refused the join): [`join`](LeaderElection::join) again to stand again.
    Lost(LostReason),
    /// Left with [`Participant::relinquish`].
    Left,
}

impl LeaderState {
    /// Whether this participant leads.
    pub fn is_leading(self) -> bool {
        self == LeaderState::Leading
    }

    /// Whether the participation is over (lost or left).
    pub fn is_over(self) -> bool {
        matches!(self, LeaderState::Lost(_) | LeaderState::Left)
    }
}

impl LeaderElection {
    pub(crate) fn new(registry: ZookeeperRegistry, path: &str, id: &str) -> LeaderElection {
        LeaderElection {
            registry,
            path: path.to_owned(),
            id: id.to_owned(),
        }
    }

    /// The election's path (relative to the registry's chroot).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// This participant's id, stored in its node.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Stands for election with the registry's current ZooKeeper session:
    /// returns once a session is there, while the participant queues up in
    /// the background; follow [`Participant::watch`] to learn when it leads.
    pub async fn join(&self) -> Result<Participant, CoordinationError> {
        node::validate_dir(&self.path)?;
        if self.id.is_empty() {
            return Err(CoordinationError::Invalid {
                path: self.path.clone(),
                reason: "a participant needs a non-empty id".to_owned(),
            });
        }
        let client = self.registry.client().await?;
        let states = client.state_watcher();
        let prefix = Arc::new(Mutex::new(node::curator_prefix(&self.path, LATCH_NAME)));
        let (report, state) = watch::channel(LeaderState::Waiting);
        let report = Arc::new(report);
        let stop = CancellationToken::new();
        let task = tokio::spawn(participate(
            client.clone(),
            states,
            self.path.clone(),
            prefix.clone(),
            self.id.clone(),
            report.clone(),
            stop.clone(),
        ));
        Ok(Participant {
            client,
            timeout: self.registry.shared.config.timeout,
            path: self.path.clone(),
            id: self.id.clone(),
            prefix,
            state,
            report,
            stop,
            task: Some(task),
        })
    }

    /// The id of the current leader (the lowest participant's node data, as
    /// Curator's `getLeader()` reads it), whoever it is: ours or another
    /// process's, Rust or Java. `None` when nobody stands.
    pub async fn leader(&self) -> Result<Option<String>, CoordinationError> {
        node::validate_dir(&self.path)?;
        let client = self.registry.client().await?;
        node::first_data(&client, &self.path, LATCH_NAME).await
    }
}

/// Publishes `next` unless the participation is already over.
fn publish(report: &watch::Sender<LeaderState>, path: &str, id: &str, next: LeaderState) {
    report.send_if_modified(|state| {
        let changed = *state != next && !state.is_over();
        if changed {
            tracing::info!(election = %path, id = %id, from = ?*state, to = ?next, "leadership changed");
            *state = next;
        }
        changed
    });
}

/// Queues up, then follows the node while it leads; returns the recipe's
/// handle of a node still held when asked to stop, for an awaited delete.
async fn participate(
    client: Client,
    states: StateWatcher,
    path: String,
    prefixes: Arc<Mutex<String>>,
    id: String,
    report: Arc<watch::Sender<LeaderState>>,
    stop: CancellationToken,
) -> Option<OwnedLockClient> {
    let mut prefix = prefixes.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let recipe = loop {
        let contending = node::contend(&client, &path, &prefix, LATCH_NAME, id.as_bytes());
        let recipe = tokio::select! {
            _ = stop.cancelled() => return None,
            recipe = contending => recipe,
        };
        match recipe {
            // The connection broke under the recipe (it withdrew the node): stand again,
            // under a fresh prefix so its cleanup of the old one cannot touch the new node.
            Err(e) if e.is_disconnected() => {
                tracing::debug!(election = %path, id = %id, error = %e, "standing again after a broken connection");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                prefix = node::curator_prefix(&path, LATCH_NAME);
                *prefixes.lock().unwrap_or_else(|p| p.into_inner()) = prefix.clone();
            }
            other => break other,
        }
    };
    let recipe = match recipe {
        Ok(recipe) => recipe,
        Err(e) => {
            let reason = match &e {
                CoordinationError::Lost { reason, .. } => *reason,
                _ => LostReason::Failed,
            };
            tracing::warn!(election = %path, id = %id, error = %e, "out of the election");
            publish(&report, &path, &id, LeaderState::Lost(reason));
            return None;
        }
    };
    let node = recipe.lock_path().to_owned();
    let following = node::hold(&client, &node, states, |hold| {
        let next = match hold {
            Hold::Held => LeaderState::Leading,
            Hold::Suspended => LeaderState::Suspended,
            Hold::Lost(reason) => LeaderState::Lost(reason),
        };
        publish(&report, &path, &id, next);
    });
    tokio::select! {
        _ = stop.cancelled() => Some(recipe),
        reason = following => {
            tracing::warn!(election = %path, id = %id, %reason, "leadership lost");
            None
        }
    }
}

/// One participant of a [`LeaderElection`]. Leave with
/// [`relinquish`](Participant::relinquish), which waits for ZooKeeper; dropped,
/// it leaves in the background.
#[derive(Debug)]
pub struct Participant {
    client: Client,
    timeout: std::time::Duration,
    path: String,
    id: String,
    /// This participant's current node prefix (a new one after a broken connection).
    prefix: Arc<Mutex<String>>,
    state: watch::Receiver<LeaderState>,
    report: Arc<watch::Sender<LeaderState>>,
    stop: CancellationToken,
    task: Option<JoinHandle<Option<OwnedLockClient>>>,
}

impl Participant {
    /// This participant's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Where this participant stands now.
    pub fn state(&self) -> LeaderState {
        *self.state.borrow()
    }

    /// Whether this participant leads now.
    pub fn is_leading(&self) -> bool {
        self.state().is_leading()
    }

    /// A receiver of every change of [`state`](Participant::state).
    pub fn watch(&self) -> watch::Receiver<LeaderState> {
        self.state.clone()
    }

    /// The current leader's id, as [`LeaderElection::leader`] (read with this participant's session).
    pub async fn leader(&self) -> Result<Option<String>, CoordinationError> {
        node::first_data(&self.client, &self.path, LATCH_NAME).await
    }

    /// Runs `job` only while leading: waits until this participant leads,
    /// then runs `job` and cancels it (drops it) the moment leadership is
    /// suspended or lost. `Some(output)` when `job` finished while leading;
    /// `None` when leadership ended first (or the participation is over
    /// before it led).
    pub async fn while_leading<F: Future>(&self, job: F) -> Option<F::Output> {
        let mut state = self.state.clone();
        let leads = state
            .wait_for(|s| s.is_leading() || s.is_over())
            .await
            .map(|s| s.is_leading());
        if !matches!(leads, Ok(true)) {
            return None;
        }
        tokio::select! {
            biased;
            _ = state.wait_for(|s| !s.is_leading()) => None,
            output = job => Some(output),
        }
    }

    /// Leaves the election: deletes this participant's node and waits for
    /// ZooKeeper to confirm, so the next participant can lead at once.
    pub async fn relinquish(mut self) -> Result<(), CoordinationError> {
        self.stop.cancel();
        let recipe = match self.task.take() {
            Some(task) => task.await.ok().flatten(),
            None => None,
        };
        publish(&self.report, &self.path, &self.id, LeaderState::Left);
        let prefix = self.prefix.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let removed = tokio::time::timeout(self.timeout, node::remove_own(&self.client, &self.path, &prefix)).await;
        let removed = match removed {
            Ok(Ok(())) => Ok(()),
            // The node went with the session.
            Ok(Err(CoordinationError::Lost { .. })) => Ok(()),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(CoordinationError::Disconnected {
                path: self.path.clone(),
                operation: "leave the election",
                source: zookeeper_client::Error::Timeout,
            }),
        };
        // Dropped, the recipe's handle deletes the node in the background: a
        // second try when ours failed, harmless when it succeeded.
        drop(recipe);
        removed
    }
}

impl Drop for Participant {
    fn drop(&mut self) {
        // The task hands back the recipe's handle, which deletes the node when dropped.
        self.stop.cancel();
    }
}

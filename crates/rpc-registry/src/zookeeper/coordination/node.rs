//! What the lock and the election share: Curator's node names, contending
//! through the `zookeeper-client` recipe, cleaning up, and following a held
//! node through session trouble.

use std::future::Future;
use std::time::Duration;

use zookeeper_client::{
    Acls, Client, CreateMode, Error, EventType, LockOptions, LockPrefix, OwnedLockClient, SessionState, StateWatcher,
};

use super::{CoordinationError, LostReason};

/// Curator's lock name for `InterProcessMutex` (and `LeaderSelector`).
pub(super) const LOCK_NAME: &str = "lock-";
/// Curator's lock name for `LeaderLatch`.
pub(super) const LATCH_NAME: &str = "latch-";
/// Digits of a sequential node's suffix.
const SEQUENCE_DIGITS: usize = 10;

/// A lock or election directory: absolute, no trailing `/`, not the root.
pub(super) fn validate_dir(path: &str) -> Result<(), CoordinationError> {
    let invalid = |reason: &str| CoordinationError::Invalid {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    if !path.starts_with('/') {
        return Err(invalid("the path must be absolute, e.g. /locks/orders"));
    }
    if path == "/" || path.ends_with('/') {
        return Err(invalid(
            "the path must name a node under the root, without a trailing `/`",
        ));
    }
    if path
        .split('/')
        .skip(1)
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return Err(invalid("the path has an empty, `.` or `..` component"));
    }
    Ok(())
}

/// `{dir}/_c_{uuid}-{name}`: Curator's protected-mode prefix, unique to one contender.
pub(super) fn curator_prefix(dir: &str, name: &str) -> String {
    format!("{dir}/_c_{}-{name}", uuid::Uuid::new_v4())
}

/// The sequence number ending a contender node's name, if it has one.
pub(super) fn sequence_of(node: &str) -> Option<u64> {
    let name = node.rsplit('/').next()?;
    let digits = name.get(name.len().checked_sub(SEQUENCE_DIGITS)?..)?;
    digits
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| digits.parse().ok())?
}

/// The contender nodes (children named with `name`) of `dir`, lowest sequence first.
pub(super) fn contenders(mut children: Vec<String>, name: &str) -> Vec<String> {
    children.retain(|child| child.contains(name) && sequence_of(child).is_some());
    children.sort_by_key(|child| sequence_of(child));
    children
}

/// Persistent parents, created as needed; nodes readable and writable by anyone (as Curator's).
fn options() -> LockOptions<'static> {
    let options = LockOptions::new(Acls::anyone_all());
    // Persistent, not sequential: the crate only refuses ephemeral or sequential modes.
    match options
        .clone()
        .with_ancestor_options(CreateMode::Persistent.with_acls(Acls::anyone_all()))
    {
        Ok(with_parents) => with_parents,
        Err(_) => options,
    }
}

/// Contends with `prefix` (from [`curator_prefix`]) through the crate's lock recipe:
/// resolves once this contender's node is the lowest.
///
/// Cancel-safe: dropped before it resolves, the recipe deletes the node in the
/// background (and [`remove_own`] does it in the foreground).
pub(super) async fn contend(
    client: &Client,
    dir: &str,
    prefix: &str,
    name: &str,
    data: &[u8],
) -> Result<OwnedLockClient, CoordinationError> {
    // A custom prefix holding Curator's `_c_{uuid}` keeps the names Curator's and
    // lets us find (and delete) our node by that prefix ourselves.
    let pattern = LockPrefix::new_custom(prefix.to_owned(), name).map_err(|e| CoordinationError::Invalid {
        path: dir.to_owned(),
        reason: e.to_string(),
    })?;
    match client.lock(pattern, data, options()).await {
        Ok(lock) => Ok(lock.into_owned()),
        // zookeeper-client 0.11.2 finds a custom-prefix node again after a lost
        // create reply, then fails to parse its sequence (it compares the full path
        // with the bare prefix) and withdraws the node. Nothing is left behind, so
        // this is a broken connection like any other: the caller contends again.
        Err(Error::UnexpectedError(message)) if message.contains("does not contain prefix path") => {
            Err(CoordinationError::Disconnected {
                path: dir.to_owned(),
                operation: "contend",
                source: Error::ConnectionLoss,
            })
        }
        Err(e) => Err(lost_or(dir, "contend", e)),
    }
}

/// Creates this contender's node under `prefix` without waiting: the node's
/// full path. A create whose reply was lost is found again by its prefix.
pub(super) async fn create_own(
    client: &Client,
    dir: &str,
    prefix: &str,
    data: &[u8],
) -> Result<String, CoordinationError> {
    let ephemeral = CreateMode::EphemeralSequential.with_acls(Acls::anyone_all());
    loop {
        match client.create(prefix, data, &ephemeral).await {
            Ok((_, sequence)) => return Ok(format!("{prefix}{sequence}")),
            Err(Error::NoNode) => {
                match client
                    .mkdir(dir, &CreateMode::Persistent.with_acls(Acls::anyone_all()))
                    .await
                {
                    Ok(()) | Err(Error::NodeExists) => continue,
                    Err(e) if is_connection_error(&e) => continue,
                    Err(e) => return Err(lost_or(dir, "create the lock's parents", e)),
                }
            }
            Err(e) if is_connection_error(&e) => {
                if let Some(node) = find_own(client, dir, prefix).await? {
                    return Ok(node);
                }
            }
            Err(e) => return Err(lost_or(dir, "create the contender node", e)),
        }
    }
}

/// This session's node under `prefix`, if it exists.
async fn find_own(client: &Client, dir: &str, prefix: &str) -> Result<Option<String>, CoordinationError> {
    let own = prefix.rsplit('/').next().unwrap_or(prefix);
    let children = retry(|| client.list_children(dir))
        .await
        .map_err(|e| lost_or(dir, "list contenders", e))?;
    Ok(children
        .into_iter()
        .find(|child| child.starts_with(own))
        .map(|child| format!("{dir}/{child}")))
}

/// The data of the lowest contender named with `name` under `dir`: the
/// holder's or leader's id. `None` when there is no contender.
pub(super) async fn first_data(client: &Client, dir: &str, name: &str) -> Result<Option<String>, CoordinationError> {
    loop {
        let children = match retry(|| client.list_children(dir)).await {
            Ok(children) => children,
            Err(Error::NoNode) => return Ok(None),
            Err(e) => return Err(lost_or(dir, "list contenders", e)),
        };
        let Some(first) = contenders(children, name).into_iter().next() else {
            return Ok(None);
        };
        match retry(|| client.get_data(&format!("{dir}/{first}"))).await {
            Ok((data, _)) => return Ok(Some(String::from_utf8_lossy(&data).into_owned())),
            // Released meanwhile: look again.
            Err(Error::NoNode) => continue,
            Err(e) => return Err(lost_or(dir, "read the first contender", e)),
        }
    }
}

/// Deletes every node of this contender (by its unique prefix); waits for ZooKeeper.
pub(super) async fn remove_own(client: &Client, dir: &str, prefix: &str) -> Result<(), CoordinationError> {
    while let Some(node) = find_own(client, dir, prefix).await? {
        delete(client, &node).await?;
    }
    Ok(())
}

/// Deletes `node`; one that is already gone is fine.
pub(super) async fn delete(client: &Client, node: &str) -> Result<(), CoordinationError> {
    match retry(|| client.delete(node, None)).await {
        Ok(()) | Err(Error::NoNode) => Ok(()),
        Err(e) => Err(lost_or(node, "delete", e)),
    }
}

/// Whether `error` means the connection broke under the request (the client
/// says `ConnectionLoss`, or passes on the socket's error).
fn is_connection_error(error: &Error) -> bool {
    matches!(error, Error::ConnectionLoss | Error::Custom(_) | Error::Timeout)
}

/// Runs an idempotent `operation` again while the connection is broken (the
/// client queues it until it reconnects, or fails it once the session is over).
async fn retry<T, F: Future<Output = Result<T, Error>>>(operation: impl Fn() -> F) -> Result<T, Error> {
    loop {
        match operation().await {
            Err(e) if is_connection_error(&e) => tokio::time::sleep(Duration::from_millis(10)).await,
            done => return done,
        }
    }
}

/// A ZooKeeper error as ours: the ends of a session are [`CoordinationError::Lost`].
pub(super) fn lost_or(path: &str, operation: &'static str, error: Error) -> CoordinationError {
    match error {
        Error::SessionExpired | Error::AuthFailed => CoordinationError::Lost {
            path: path.to_owned(),
            reason: LostReason::SessionExpired,
        },
        Error::ClientClosed => CoordinationError::Lost {
            path: path.to_owned(),
            reason: LostReason::Closed,
        },
        // The recipe's word for "our node vanished while we waited".
        Error::RuntimeInconsistent => CoordinationError::Lost {
            path: path.to_owned(),
            reason: LostReason::NodeDeleted,
        },
        error if is_connection_error(&error) => CoordinationError::Disconnected {
            path: path.to_owned(),
            operation,
            source: error,
        },
        error => CoordinationError::zookeeper(path, operation, error),
    }
}

/// What happens to a held node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Hold {
    /// The node exists and the session is connected.
    Held,
    /// Disconnected: the session may or may not live.
    Suspended,
    /// Gone for good.
    Lost(LostReason),
}

/// Why a terminal session state ends a hold.
fn reason(state: SessionState) -> LostReason {
    match state {
        SessionState::Closed => LostReason::Closed,
        _ => LostReason::SessionExpired,
    }
}

/// Follows `node` (held by `client`'s session) until it is lost, reporting
/// every change through `report`; returns the reason it was lost. `states`
/// must have been taken before the node was created, so no state is missed.
///
/// The node's own watch tells of its deletion; the session's states tell of
/// disconnection (suspended), reconnection (held again, once the node is seen
/// to still exist) and expiry (lost).
pub(super) async fn hold(client: &Client, node: &str, mut states: StateWatcher, report: impl Fn(Hold)) -> LostReason {
    let mut backoff = Duration::from_millis(50);
    loop {
        let state = states.state();
        if state.is_terminated() {
            report(Hold::Lost(reason(state)));
            return reason(state);
        }
        if state != SessionState::SyncConnected {
            report(Hold::Suspended);
            let state = states.changed().await;
            if state.is_terminated() {
                report(Hold::Lost(reason(state)));
                return reason(state);
            }
            continue;
        }
        let watcher = match client.check_and_watch_stat(node).await {
            Ok((Some(_), watcher)) => watcher,
            Ok((None, _)) => {
                report(Hold::Lost(LostReason::NodeDeleted));
                return LostReason::NodeDeleted;
            }
            Err(e) if is_connection_error(&e) => {
                // The state follows: disconnected, then reconnected or expired.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
            Err(Error::SessionExpired | Error::AuthFailed) => {
                report(Hold::Lost(LostReason::SessionExpired));
                return LostReason::SessionExpired;
            }
            Err(Error::ClientClosed) => {
                report(Hold::Lost(LostReason::Closed));
                return LostReason::Closed;
            }
            Err(e) => {
                // Cannot tell whether the node is there: not held as far as we know.
                tracing::warn!(node, error = %e, "cannot check the lock node; retrying");
                report(Hold::Suspended);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        backoff = Duration::from_millis(50);
        report(Hold::Held);
        let event = watcher.changed();
        tokio::pin!(event);
        loop {
            tokio::select! {
                event = &mut event => {
                    match event.event_type {
                        EventType::NodeDeleted => {
                            let reason = why_deleted(client).await;
                            report(Hold::Lost(reason));
                            return reason;
                        }
                        // A terminal session state, or a data change: look again.
                        _ => break,
                    }
                }
                state = states.changed() => {
                    if state.is_terminated() {
                        report(Hold::Lost(reason(state)));
                        return reason(state);
                    }
                    if state != SessionState::SyncConnected {
                        report(Hold::Suspended);
                    } else {
                        // Back within the session: check the node is still ours.
                        break;
                    }
                }
            }
        }
    }
}

/// Why a held node was deleted: an expiring session's own watches fire (its
/// ephemeral nodes are deleted) before the server closes its connection, so
/// ask the session whether it still lives before blaming someone else.
async fn why_deleted(client: &Client) -> LostReason {
    loop {
        match client.check_stat("/").await {
            Ok(_) => return LostReason::NodeDeleted,
            Err(Error::SessionExpired | Error::AuthFailed) => return LostReason::SessionExpired,
            Err(Error::ClientClosed) => return LostReason::Closed,
            // Lost either way; the session's fate arrives with the reconnection.
            Err(e) if is_connection_error(&e) => tokio::time::sleep(Duration::from_millis(10)).await,
            Err(_) => return LostReason::NodeDeleted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_must_be_absolute_node_paths() {
        assert!(validate_dir("/locks/orders").is_ok());
        for bad in ["locks", "/", "/locks/", "/a//b", "/a/../b", ""] {
            assert!(validate_dir(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn contenders_are_ordered_by_sequence_not_by_name() {
        let children = vec![
            "_c_b-lock-0000000012".to_owned(),
            "_c_a-lock-0000000013".to_owned(),
            "_c_z-lock-0000000002".to_owned(),
            "marker".to_owned(),
            "_c_y-latch-0000000001".to_owned(),
            "lock-short".to_owned(),
        ];
        assert_eq!(
            contenders(children, LOCK_NAME),
            ["_c_z-lock-0000000002", "_c_b-lock-0000000012", "_c_a-lock-0000000013"]
        );
        assert_eq!(sequence_of("/a/_c_x-lock-0000000042"), Some(42));
        assert_eq!(sequence_of("/a/lock-42"), None);
    }

    #[test]
    fn prefixes_are_curators() {
        let prefix = curator_prefix("/locks/x", LOCK_NAME);
        let name = prefix.strip_prefix("/locks/x/_c_").unwrap();
        let (uuid, rest) = name.split_at(36);
        assert!(uuid::Uuid::parse_str(uuid).is_ok(), "{uuid}");
        assert_eq!(rest, "-lock-");
    }
}

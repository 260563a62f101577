//! [`ZookeeperRegistry`]: Apache Dubbo's ZooKeeper layout, kept alive through
//! every fault ZooKeeper has.
//!
//! ```text
//! /{root}/{interface}/providers/{URL-encoded provider URL}   ephemeral
//! /{root}/{interface}/consumers/{URL-encoded consumer URL}   ephemeral
//! ```
//! `root` is `dubbo` unless the registry URL says `?root=...`. Parents are
//! persistent and created as needed.
//!
//! Registry URL: `zookeeper://host:port[,host:port...][/chroot][?param=value...]`,
//! with parameters
//! * `session`: session timeout in ms (default 60000, as Dubbo);
//! * `timeout`: how long `register`, `unregister` and `subscribe` wait for
//!   ZooKeeper, in ms (default 10000);
//! * `root`: the root node name (default `dubbo`);
//! * `file`: a local cache file of provider lists, so a consumer can start
//!   while ZooKeeper is down. Written by a background thread (callers never
//!   wait for the disk), whole and atomically (unique temporary file, fsync,
//!   rename); a corrupt or unreadable file is a warning and an empty cache;
//!   registries of one process naming the same file share it.
//!
//! Behaviour:
//! * A supervisor task owns the session. While ZooKeeper is unreachable,
//!   subscriptions keep their last provider sets (consumers keep routing) and
//!   providers keep serving; the client reconnects by itself. When the session
//!   ends (expiry, even in the middle of restoring registrations), a new one
//!   is opened and every subscription re-reads and re-arms its watch.
//! * Registrations are a wish list the registry keeps true. `register` and
//!   `unregister` record the wish, then act, for at most `timeout`; an error
//!   means "not confirmed yet", and the registry keeps trying in the
//!   background. A reconciler checks every registered node (it must exist and
//!   belong to the current session) when a session starts and after every
//!   reconnection, creates what is missing and deletes what was unregistered;
//!   a pass that fails (connection lost while the quorum recovers, an ACL,
//!   anything) is retried with backoff (100 ms to 5 s) until it succeeds. A URL
//!   unregistered meanwhile is never created again: every create and delete
//!   re-reads the wish list first, one at a time.
//! * Subscriptions list the providers and arm a children watch in one request,
//!   so no change between a read and the next watch is lost; every change is
//!   published as a full set, so removals are never missed.
//! * Children that are not URLs, or name no usable address, are skipped with
//!   one warning each (once per node while it is listed); URLs written by other implementations (such as Python
//!   Dubbo's `tri://host:port?service=...`) are understood.

mod cache;
pub mod coordination;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod rules;
mod session;
mod watch;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rpc_core::Url;
use rpc_core::url::keys;
use tokio::sync::watch as channel;
use tokio_util::sync::CancellationToken;
use zookeeper_client::SessionInfo;

use crate::{ProviderSet, Registry, RegistryError, RegistryFuture, RuleSet, RuleSubscription, Subscription};
use cache::CacheFile;
pub use coordination::{
    CoordinationError, LeaderElection, LeaderState, Lock, LockGuard, LockState, LostReason, Participant,
};
/// The ZooKeeper client crate the registry and the coordination recipes use
/// ([`LockGuard::client`] hands out its `Client`), for its types.
pub use zookeeper_client;

/// Default session timeout (Dubbo's).
pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(60);
/// Default wait of `register`, `unregister` and `subscribe` for ZooKeeper.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_PORT: u16 = 2181;

/// Settings read from a `zookeeper://` URL.
#[derive(Clone, Debug)]
struct Config {
    /// `host:port,host:port`, without chroot.
    servers: String,
    /// `/tenant-a`, or empty.
    chroot: String,
    /// `/dubbo`.
    root: String,
    session_timeout: Duration,
    timeout: Duration,
}

impl Config {
    fn from_url(url: &Url) -> Result<Config, RegistryError> {
        let mut servers = Vec::new();
        for address in url.addresses() {
            let parsed =
                Url::parse(&format!("zookeeper://{address}")).map_err(|e| RegistryError::new(url, e.to_string()))?;
            if parsed.host().is_empty() {
                return Err(RegistryError::new(
                    url,
                    "a ZooKeeper address needs a host, e.g. zookeeper://127.0.0.1:2181",
                ));
            }
            let port = if parsed.port() == 0 {
                DEFAULT_PORT
            } else {
                parsed.port()
            };
            servers.push(if parsed.host().contains(':') {
                format!("[{}]:{port}", parsed.host())
            } else {
                format!("{}:{port}", parsed.host())
            });
        }
        let millis = |key: &str, default: Duration| -> Result<Duration, RegistryError> {
            match url.param(key) {
                None => Ok(default),
                Some(v) => v
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|ms| *ms > 0)
                    .map(Duration::from_millis)
                    .ok_or_else(|| {
                        RegistryError::new(url, format!("`{key}={v}` is not a positive number of milliseconds"))
                    }),
            }
        };
        let chroot = url.path().trim_matches('/');
        let root = url.param("root").unwrap_or("dubbo").trim_matches('/');
        if root.is_empty() || root.contains('/') {
            return Err(RegistryError::new(url, format!("`root={root}` must be one node name")));
        }
        Ok(Config {
            servers: servers.join(","),
            chroot: if chroot.is_empty() {
                String::new()
            } else {
                format!("/{chroot}")
            },
            root: format!("/{root}"),
            session_timeout: millis("session", DEFAULT_SESSION_TIMEOUT)?,
            timeout: millis("timeout", DEFAULT_TIMEOUT)?,
        })
    }

    /// `/dubbo/{interface}/{category}`.
    fn category_path(&self, interface: &str, category: &str) -> String {
        format!("{}/{}/{category}", self.root, interface)
    }

    /// The node of a registered URL.
    fn node_path(&self, url: &Url) -> Result<String, String> {
        let interface = url.interface().ok_or_else(|| format!("`{url}` names no interface"))?;
        if interface.contains('/') {
            return Err(format!("interface `{interface}` contains `/`"));
        }
        let category = if url.param(keys::SIDE) == Some("consumer") {
            "consumers"
        } else {
            "providers"
        };
        Ok(format!("{}/{}", self.category_path(interface, category), url.encode()))
    }
}

/// State shared by the registry handle and its tasks.
struct Shared {
    url: Url,
    config: Config,
    /// The live client; `None` while (re)connecting.
    client: channel::Sender<Option<zookeeper_client::Client>>,
    /// What ZooKeeper should hold: see [`Registrations`].
    registrations: Mutex<Registrations>,
    /// Serializes every create and delete of a registered node (see `session`).
    node_ops: tokio::sync::Mutex<()>,
    /// Asks the session's reconciler for a pass (see `session`).
    reconcile: tokio::sync::Notify,
    /// Provider sets by interface, with whether ZooKeeper has been read yet.
    subscriptions: Mutex<HashMap<String, Watched>>,
    cache: Option<Arc<CacheFile>>,
    shutdown: CancellationToken,
}

/// The registry's wish list, which the session's reconciler makes true.
#[derive(Debug, Default)]
struct Registrations {
    /// Registered URLs: each must have its node, owned by the current session.
    wanted: HashSet<Url>,
    /// Unregistered URLs whose node may still exist: each is deleted, then forgotten.
    withdrawn: HashSet<Url>,
}

#[derive(Clone)]
struct Watched {
    providers: channel::Sender<ProviderSet>,
    loaded: channel::Receiver<bool>,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZookeeperRegistry")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// A registry in ZooKeeper, in Apache Dubbo's layout. See the [module docs](self).
///
/// Cheap to clone; the session closes (and its ephemeral nodes vanish) when
/// the last clone is dropped.
#[derive(Clone, Debug)]
pub struct ZookeeperRegistry {
    shared: Arc<Shared>,
    _closer: Arc<Closer>,
}

/// Stops the registry's tasks when the last handle goes.
#[derive(Debug)]
struct Closer(CancellationToken);

impl Drop for Closer {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

impl ZookeeperRegistry {
    /// A registry for `url` (`zookeeper://...`). Connects in the background:
    /// this returns at once; `register` and `subscribe` wait for the connection.
    ///
    /// Must be called within a tokio runtime.
    pub fn new(url: &Url) -> Result<Self, RegistryError> {
        let config = Config::from_url(url)?;
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| RegistryError::new(url, "a ZooKeeper registry must be created inside a tokio runtime"))?;
        let cache = match url.param("file") {
            Some(path) if !path.is_empty() => Some(CacheFile::open(path.into())),
            _ => None,
        };
        let (client, _) = channel::channel(None);
        let shutdown = CancellationToken::new();
        let shared = Arc::new(Shared {
            url: url.clone(),
            config,
            client,
            registrations: Mutex::default(),
            node_ops: tokio::sync::Mutex::new(()),
            reconcile: tokio::sync::Notify::new(),
            subscriptions: Mutex::default(),
            cache,
            shutdown: shutdown.clone(),
        });
        runtime.spawn(session::supervise(shared.clone()));
        Ok(ZookeeperRegistry {
            shared,
            _closer: Arc::new(Closer(shutdown)),
        })
    }

    /// The current session, if connected: for diagnostics and fault tests
    /// (a second client attached to it and closed expires it).
    pub fn session(&self) -> Option<SessionInfo> {
        self.shared.client.borrow().as_ref().map(|c| c.session().clone())
    }

    /// A distributed lock at `path` (absolute, under the registry's chroot),
    /// compatible with Curator's `InterProcessMutex`: see [`coordination`].
    /// Nothing is sent until it is acquired.
    pub fn lock(&self, path: &str) -> Lock {
        Lock::new(self.clone(), path)
    }

    /// A leader election at `path` (absolute, under the registry's chroot),
    /// compatible with Curator's `LeaderLatch`, where this process stands as
    /// `id`: see [`coordination`]. Nothing is sent until it is joined.
    pub fn leader_election(&self, path: &str, id: &str) -> LeaderElection {
        LeaderElection::new(self.clone(), path, id)
    }

    fn node_path(&self, url: &Url) -> Result<String, RegistryError> {
        self.shared
            .config
            .node_path(url)
            .map_err(|e| RegistryError::new(&self.shared.url, e))
    }

    /// Waits (up to the registry's `timeout`) for a connected client.
    async fn client(&self) -> Result<zookeeper_client::Client, RegistryError> {
        wait_for_client(&self.shared, self.shared.config.timeout).await
    }

    /// Waits up to `wait` for a connected client.
    async fn client_within(&self, wait: Duration) -> Result<zookeeper_client::Client, RegistryError> {
        wait_for_client(&self.shared, wait).await
    }

    /// Runs `work` for at most the registry's `timeout`.
    async fn bounded(&self, work: impl Future<Output = Result<(), String>>) -> Result<(), String> {
        let timeout = self.shared.config.timeout;
        match tokio::time::timeout(timeout, work).await {
            Ok(done) => done,
            Err(_) => Err(format!(
                "no answer from ZooKeeper at {} within {} ms",
                self.shared.config.servers,
                timeout.as_millis()
            )),
        }
    }
}

async fn wait_for_client(shared: &Shared, wait: Duration) -> Result<zookeeper_client::Client, RegistryError> {
    let mut rx = shared.client.subscribe();
    // A client whose session just ended stays published until the supervisor
    // replaces it: wait for a live one, or requests would fail as expired.
    let limit = wait;
    let wait = rx.wait_for(|client| client.as_ref().is_some_and(|c| !c.state().is_terminated()));
    match tokio::time::timeout(limit, wait).await {
        Ok(Ok(client)) => client
            .clone()
            .ok_or_else(|| RegistryError::new(&shared.url, "no client")),
        Ok(Err(_)) => Err(RegistryError::new(&shared.url, "the registry is closed")),
        Err(_) => Err(RegistryError::new(
            &shared.url,
            format!(
                "ZooKeeper at {} unreachable for {} ms",
                shared.config.servers,
                limit.as_millis()
            ),
        )),
    }
}

impl Registry for ZookeeperRegistry {
    fn url(&self) -> &Url {
        &self.shared.url
    }

    /// Creates `url`'s ephemeral node. The URL is wanted from this call on,
    /// whatever its outcome: an error (no answer within the registry's
    /// `timeout`, a refusal) means the node is not confirmed yet, and the
    /// registry keeps trying in the background until
    /// [`unregister`](Registry::unregister).
    fn register(&self, url: &Url) -> RegistryFuture<'_, ()> {
        let url = url.clone();
        Box::pin(async move {
            let path = self.node_path(&url)?;
            {
                let mut registrations = lock(&self.shared.registrations);
                registrations.withdrawn.remove(&url);
                registrations.wanted.insert(url.clone());
            }
            let shared = &self.shared;
            let done = self
                .bounded(async {
                    let client = self.client().await.map_err(|e| e.reason().to_string())?;
                    session::put_in_place(shared, &client, &url).await
                })
                .await;
            done.map_err(|reason| {
                shared.reconcile.notify_one();
                RegistryError::new(
                    &shared.url,
                    format!("cannot create {path} yet: {reason}; retrying in the background until unregistered"),
                )
            })
        })
    }

    /// Deletes `url`'s node. The URL is withdrawn from this call on, whatever
    /// its outcome: an error (no answer within the registry's `timeout`) means
    /// the deletion is not confirmed yet, and the registry keeps trying in the
    /// background (the node also goes when the session ends).
    fn unregister(&self, url: &Url) -> RegistryFuture<'_, ()> {
        let url = url.clone();
        Box::pin(async move {
            let path = self.node_path(&url)?;
            {
                let mut registrations = lock(&self.shared.registrations);
                registrations.wanted.remove(&url);
                registrations.withdrawn.insert(url.clone());
            }
            let shared = &self.shared;
            let done = self
                .bounded(async {
                    let client = self.client().await.map_err(|e| e.reason().to_string())?;
                    session::take_away(shared, &client, &url).await
                })
                .await;
            done.map_err(|reason| {
                shared.reconcile.notify_one();
                RegistryError::new(
                    &shared.url,
                    format!("cannot delete {path} yet: {reason}; retrying in the background"),
                )
            })
        })
    }

    /// Watches Dubbo's configuration-centre nodes and the legacy
    /// `configurators/` and `routers/` categories (see the `rules` module).
    fn rules(&self, consumer: &Url) -> RegistryFuture<'_, RuleSubscription> {
        let consumer = consumer.clone();
        Box::pin(async move { self.watch_rules(&consumer).await })
    }

    fn subscribe(&self, consumer: &Url) -> RegistryFuture<'_, Subscription> {
        let interface = consumer.interface().map(str::to_string);
        Box::pin(async move {
            let interface = interface
                .filter(|i| !i.is_empty() && !i.contains('/'))
                .ok_or_else(|| RegistryError::new(&self.shared.url, "subscribe needs a URL naming an interface"))?;
            let watched = watch::watched(&self.shared, &interface);
            let mut loaded = watched.loaded.clone();
            let rx = watched.providers.subscribe();
            let waited = tokio::time::timeout(self.shared.config.timeout, loaded.wait_for(|l| *l)).await;
            let keepalive: Arc<dyn std::any::Any + Send + Sync> = self._closer.clone();
            if matches!(waited, Ok(Ok(_))) {
                return Ok(Subscription::new(rx).with_keepalive(keepalive));
            }
            if self.shared.cache.is_some() && !rx.borrow().is_empty() {
                tracing::warn!(
                    registry = %self.shared.url, %interface, providers = rx.borrow().len(),
                    "ZooKeeper unreachable: starting from the local cache file"
                );
                return Ok(Subscription::new(rx).with_keepalive(keepalive));
            }
            Err(RegistryError::new(
                &self.shared.url,
                format!(
                    "cannot read the providers of {interface}: ZooKeeper at {} unreachable for {} ms",
                    self.shared.config.servers,
                    self.shared.config.timeout.as_millis()
                ),
            ))
        })
    }
}

impl ZookeeperRegistry {
    /// Starts watching the rules of `consumer`'s reference; see [`rules`](self::rules).
    async fn watch_rules(&self, consumer: &Url) -> Result<RuleSubscription, RegistryError> {
        let watching = rules::Watching::of(consumer)
            .ok_or_else(|| RegistryError::new(&self.shared.url, "watching rules needs a URL naming an interface"))?;
        let (tx, rx) = channel::channel(RuleSet::default());
        let (loaded_tx, mut loaded) = channel::channel(false);
        tokio::spawn(rules::follow(self.shared.clone(), watching, tx, loaded_tx));
        let waited = tokio::time::timeout(self.shared.config.timeout, loaded.wait_for(|l| *l)).await;
        if !matches!(waited, Ok(Ok(_))) {
            tracing::warn!(
                registry = %self.shared.url, interface = consumer.interface().unwrap_or_default(),
                "governance rules not read yet (ZooKeeper unreachable): starting without them"
            );
        }
        let keepalive: Arc<dyn std::any::Any + Send + Sync> = self._closer.clone();
        Ok(RuleSubscription::new(rx).with_keepalive(keepalive))
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every critical section is a single insert, removal or read.
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(s: &str) -> Result<Config, RegistryError> {
        Config::from_url(&Url::parse(s).unwrap())
    }

    #[test]
    fn reads_ensembles_chroots_and_parameters() {
        let c = config("zookeeper://h1:2181,h2:2182,h3/tenant-a?session=4000&timeout=500&root=rpc").unwrap();
        assert_eq!(c.servers, "h1:2181,h2:2182,h3:2181");
        assert_eq!(c.chroot, "/tenant-a");
        assert_eq!(c.root, "/rpc");
        assert_eq!(c.session_timeout, Duration::from_secs(4));
        assert_eq!(c.timeout, Duration::from_millis(500));
        let c = config("zookeeper://127.0.0.1:2181").unwrap();
        assert_eq!((c.chroot.as_str(), c.root.as_str()), ("", "/dubbo"));
        assert_eq!(c.session_timeout, DEFAULT_SESSION_TIMEOUT);
    }

    #[test]
    fn refuses_bad_parameters_clearly() {
        let err = config("zookeeper://h:1?session=soon").unwrap_err();
        assert!(
            err.to_string().contains("`session=soon` is not a positive number"),
            "{err}"
        );
        assert!(config("zookeeper://h:1?root=a/b").is_err());
        assert!(config("zookeeper://").is_err());
    }

    #[test]
    fn nodes_follow_dubbo_layout() {
        let c = config("zookeeper://h:1").unwrap();
        let provider = Url::parse("rpc://10.0.0.5:20880/org.example.Greeter?side=provider&version=1.0.0").unwrap();
        let path = c.node_path(&provider).unwrap();
        assert_eq!(
            path,
            format!("/dubbo/org.example.Greeter/providers/{}", provider.encode())
        );
        assert!(path.starts_with("/dubbo/org.example.Greeter/providers/rpc%3A%2F%2F10.0.0.5%3A20880"));
        let consumer = Url::parse("consumer://10.0.0.6/org.example.Greeter?side=consumer").unwrap();
        assert!(
            c.node_path(&consumer)
                .unwrap()
                .starts_with("/dubbo/org.example.Greeter/consumers/")
        );
        assert!(c.node_path(&Url::parse("rpc://h:1").unwrap()).is_err());
    }
}

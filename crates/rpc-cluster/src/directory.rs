//! [`Directory`]: the live provider endpoints of one reference.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use arc_swap::{ArcSwap, Guard};

use tokio_util::sync::CancellationToken;

use futures::{Stream, StreamExt};
use std::sync::atomic::{AtomicU8, Ordering};

use rpc_core::{Serialization, ServiceKey, Url};

use crate::endpoint::Endpoint;
use crate::governance::{Governance, RuleNode, TAG_KEY};
use crate::router;

/// Makes endpoints from provider URLs: the consumer's protocols.
pub trait Connect: Send + Sync + 'static {
    /// An endpoint for `url`, or `None` when its protocol is not spoken here.
    fn connect(&self, url: &Url) -> Option<Endpoint>;
}

struct State {
    /// The latest set from each source (registry).
    sources: Vec<Arc<Vec<Url>>>,
    /// The latest rule nodes from each rule source (registry).
    rules: Vec<Arc<Vec<RuleNode>>>,
    /// The consumer the rules are compiled for.
    consumer: Url,
}

/// The serializations the current providers read: what every one reads, and
/// what at least one does (masks, [`Serialization::mask`]).
#[derive(Debug, Default)]
struct Readable {
    all: AtomicU8,
    some: AtomicU8,
}

/// The live set of provider endpoints of one reference.
pub struct Directory {
    key: ServiceKey,
    connect: Arc<dyn Connect>,
    /// Written by the source readers, one at a time.
    state: Mutex<State>,
    /// Read by every call, without a lock.
    endpoints: ArcSwap<Vec<Endpoint>>,
    readable: Readable,
    /// Governance rules: provider-side overrides, consumer-side settings, routers.
    governance: Governance,
    /// Cancelled when the directory is dropped: its source readers stop,
    /// letting go of their subscriptions (and registry sessions).
    closed: CancellationToken,
    /// What lives as long as the directory (say, the consumer's node in the registry).
    guards: Mutex<Vec<Box<dyn std::any::Any + Send + Sync>>>,
}

impl Drop for Directory {
    fn drop(&mut self) {
        self.closed.cancel();
    }
}

impl fmt::Debug for Directory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Directory")
            .field("key", &self.key)
            .field("endpoints", &self.endpoints())
            .finish()
    }
}

impl Directory {
    /// A directory for `key` fed by `sources`: each is a stream of full URL
    /// sets (one per registry), whose first item should be its current set. The
    /// directory holds the union. Tasks reading the sources stop when the
    /// directory is dropped or the streams end (the last sets stay).
    pub async fn new<S>(key: ServiceKey, connect: Arc<dyn Connect>, sources: Vec<S>) -> Arc<Directory>
    where
        S: Stream<Item = Arc<Vec<Url>>> + Send + Unpin + 'static,
    {
        let directory = Arc::new(Directory {
            governance: Governance::new(key.clone()),
            key,
            connect,
            state: Mutex::new(State {
                sources: vec![Arc::default(); sources.len()],
                rules: Vec::new(),
                consumer: Url::new("consumer", "127.0.0.1", 0),
            }),
            endpoints: ArcSwap::default(),
            readable: Readable::default(),
            closed: CancellationToken::new(),
            guards: Mutex::default(),
        });
        for (index, mut source) in sources.into_iter().enumerate() {
            // The current set first, so the directory is complete when this returns.
            if let Some(first) = source.next().await {
                directory.update(index, first);
            }
            let weak = Arc::downgrade(&directory);
            tokio::spawn(follow(weak, index, source, directory.closed.clone()));
        }
        directory
    }

    /// Applies the governance rules that `sources` deliver (one stream per
    /// registry, each item the complete set of that registry's rule nodes for
    /// this reference, the first item its current set), compiled for
    /// `consumer` (its host, `application`, and `dubbo.tag` when the
    /// reference is tagged). Returns once the current rules are in force;
    /// tasks follow the sources until the directory is dropped. See
    /// [`governance`](crate::governance).
    pub async fn govern<S>(self: &Arc<Self>, consumer: Url, sources: Vec<S>)
    where
        S: Stream<Item = Arc<Vec<RuleNode>>> + Send + Unpin + 'static,
    {
        {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.rules = vec![Arc::default(); sources.len()];
            state.consumer = consumer;
        }
        for (index, mut source) in sources.into_iter().enumerate() {
            if let Some(first) = source.next().await {
                self.update_rules(index, first);
            } else {
                self.update_rules(index, Arc::default());
            }
            let weak = Arc::downgrade(self);
            let closed = self.closed.clone();
            tokio::spawn(async move {
                loop {
                    let nodes = tokio::select! {
                        _ = closed.cancelled() => return,
                        nodes = source.next() => match nodes {
                            Some(nodes) => nodes,
                            None => return,
                        },
                    };
                    match weak.upgrade() {
                        Some(directory) => directory.update_rules(index, nodes),
                        None => return,
                    }
                }
            });
        }
    }

    /// The governance rules in force.
    pub fn governance(&self) -> &Governance {
        &self.governance
    }

    fn update_rules(&self, source: usize, nodes: Arc<Vec<RuleNode>>) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = state.rules.get_mut(source) {
            *slot = nodes;
        }
        let all: Vec<RuleNode> = state.rules.iter().flat_map(|r| r.iter().cloned()).collect();
        let consumer = state.consumer.clone();
        if self.governance.update(&consumer, &all) {
            self.rebuild(&state);
        }
    }

    /// Keeps `guard` until the directory is dropped (with the last reference
    /// using it): say, the consumer's node in a registry, removed on drop.
    pub fn keep(&self, guard: impl std::any::Any + Send + Sync) {
        self.guards
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Box::new(guard));
    }

    /// The reference this directory serves.
    pub fn key(&self) -> &ServiceKey {
        &self.key
    }

    /// The serialization to encode a call in, given the reference's
    /// `preferred` one: it when every provider process reads it (the usual
    /// case; a process reads what any of its endpoints reads); else
    /// one every provider reads (ours first, then JSON); else the preferred
    /// one if some provider reads it, else one that some provider reads.
    /// Providers that cannot read the chosen one are passed over for that
    /// call.
    pub fn serialization_for(&self, preferred: Serialization) -> Serialization {
        let all = self.readable.all.load(Ordering::Relaxed);
        if all & preferred.bit() != 0 {
            return preferred;
        }
        let some = self.readable.some.load(Ordering::Relaxed);
        // Ours first, then JSON, then Hessian2 (what `dubbo://` providers read).
        let first_in = |mask: u8| {
            [Serialization::Bincode, Serialization::Json, Serialization::Hessian2]
                .into_iter()
                .find(|s| mask & s.bit() != 0)
        };
        first_in(all)
            .or_else(|| (some & preferred.bit() != 0).then_some(preferred))
            .or_else(|| first_in(some))
            .unwrap_or(preferred)
    }

    /// A second serialization to encode a call in `chosen` with, when some
    /// providers cannot read `chosen` but read it: Hessian2 for `dubbo://`
    /// providers beside ours, or ours (then JSON) for ours beside them. `None`
    /// when every provider reads `chosen`.
    pub fn alternate_for(&self, chosen: Serialization) -> Option<Serialization> {
        if self.readable.all.load(Ordering::Relaxed) & chosen.bit() != 0 {
            return None;
        }
        let some = self.readable.some.load(Ordering::Relaxed);
        let hessian2 = Serialization::Hessian2;
        if chosen != hessian2 {
            return (some & hessian2.bit() != 0).then_some(hessian2);
        }
        [Serialization::Bincode, Serialization::Json]
            .into_iter()
            .find(|s| some & s.bit() != 0)
    }

    /// The usable endpoints now.
    pub fn endpoints(&self) -> Arc<Vec<Endpoint>> {
        self.endpoints.load_full()
    }

    /// The usable endpoints now, borrowed for a moment (one call's pick):
    /// the same set as [`endpoints`](Self::endpoints), to be dropped before
    /// the next await (a held guard delays the release of a replaced set).
    pub fn snapshot(&self) -> Guard<Arc<Vec<Endpoint>>> {
        self.endpoints.load()
    }

    fn update(&self, source: usize, urls: Arc<Vec<Url>>) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = state.sources.get_mut(source) {
            *slot = urls;
        }
        self.rebuild(&state);
    }

    /// Works out the endpoints from the sources' latest sets and the rules in force.
    fn rebuild(&self, state: &State) {
        // Hash lookups: a set of 1,000 providers is rebuilt in linear time.
        // A provider is known by protocol and address: when its URL changes
        // (weight, parameters) its endpoint is updated in place, keeping the
        // connection and the balancers' statistics.
        let current = self.endpoints.load_full();
        let known: HashMap<(&str, String), &Endpoint> = current
            .iter()
            .map(|e| ((e.url().protocol(), e.url().address()), e))
            .collect();
        let mut seen: HashSet<(&str, String)> = HashSet::new();
        let mut next: Vec<Endpoint> = Vec::new();
        let mut tagged = false;
        // Provider-side override rules rewrite the URLs (weight, disabled, timeout).
        let configured: Vec<std::borrow::Cow<'_, Url>> = state
            .sources
            .iter()
            .flat_map(|s| s.iter())
            .map(|url| match self.governance.configure_provider(url) {
                Some(changed) => std::borrow::Cow::Owned(changed),
                None => std::borrow::Cow::Borrowed(url),
            })
            .collect();
        for url in configured.iter().map(|u| u.as_ref()) {
            let identity = (url.protocol(), url.address());
            if !router::accepts(&self.key, url) || seen.contains(&identity) {
                continue;
            }
            let endpoint = match known.get(&identity) {
                Some(endpoint) if endpoint.url() == url => Some((*endpoint).clone()),
                Some(endpoint) => Some(endpoint.with_url(url.clone())),
                None => self.connect.connect(url),
            };
            seen.insert(identity);
            tagged |= url.param(TAG_KEY).is_some_and(|t| !t.is_empty());
            match endpoint {
                Some(endpoint) => next.push(endpoint),
                None => tracing::debug!(url = %url.redacted(), "skipping a provider whose protocol is not spoken here"),
            }
        }
        tracing::debug!(key = %self.key, providers = next.len(), "provider set changed");
        // A process reads what any of its endpoints reads (ours export `rpc`
        // and `dubbo`): "every provider reads it" is per process.
        let mut per_process: HashMap<u64, u8> = HashMap::new();
        for endpoint in &next {
            *per_process.entry(endpoint.process()).or_default() |= endpoint.accepted_serializations();
        }
        let all = per_process.values().fold(u8::MAX, |mask, m| mask & m);
        let some = next.iter().fold(0, |mask, e| mask | e.accepted_serializations());
        self.readable
            .all
            .store(if next.is_empty() { 0 } else { all }, Ordering::Relaxed);
        self.readable.some.store(some, Ordering::Relaxed);
        // Routing turns on before a tagged provider can be picked, and off only
        // once none is left: an untagged call never sees a tagged provider unrouted.
        if tagged {
            self.governance.set_tagged_providers(true);
        }
        self.endpoints.store(Arc::new(next));
        if !tagged {
            self.governance.set_tagged_providers(false);
        }
    }
}

async fn follow<S>(directory: Weak<Directory>, index: usize, mut source: S, closed: CancellationToken)
where
    S: Stream<Item = Arc<Vec<Url>>> + Send + Unpin + 'static,
{
    loop {
        let urls = tokio::select! {
            _ = closed.cancelled() => return,
            urls = source.next() => match urls {
                Some(urls) => urls,
                None => return,
            },
        };
        match directory.upgrade() {
            Some(directory) => directory.update(index, urls),
            None => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use rpc_core::{BoxInvoker, Response, RpcError};
    use tokio::sync::watch;
    use tokio_stream::wrappers::WatchStream;

    #[derive(Default)]
    struct CountingConnect {
        made: AtomicUsize,
    }

    impl Connect for CountingConnect {
        fn connect(&self, url: &Url) -> Option<Endpoint> {
            if url.protocol() != "rpc" {
                return None;
            }
            self.made.fetch_add(1, Ordering::Relaxed);
            let invoker = BoxInvoker::new(tower::service_fn(|_| async { Ok::<_, RpcError>(Response::default()) }));
            Some(Endpoint::new(url.clone(), invoker, || true))
        }
    }

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    fn addresses(directory: &Directory) -> Vec<String> {
        let mut v: Vec<String> = directory.endpoints().iter().map(|e| e.url().address()).collect();
        v.sort();
        v
    }

    #[tokio::test]
    async fn keeps_only_matching_providers_and_reports_removals() {
        let (tx, rx) = watch::channel(Arc::new(vec![
            url("rpc://h:1/a.B?version=1.0.0"),
            url("rpc://h:2/a.B?version=2.0.0"),
            url("rpc://h:3/a.B?version=1.0.0&group=g"),
            url("rpc://h:4/a.B?version=1.0.0&disabled=true"),
            url("tri://h:5/a.B?version=1.0.0"),
            url("rpc://h:6/c.D?version=1.0.0"),
        ]));
        let connect = Arc::new(CountingConnect::default());
        let key = ServiceKey::new("a.B", Some("1.0.0"), None);
        let directory = Directory::new(key, connect.clone(), vec![WatchStream::new(rx)]).await;
        assert_eq!(addresses(&directory), ["h:1"]);

        // Another provider appears; the known one keeps its endpoint (no new connect).
        tx.send(Arc::new(vec![
            url("rpc://h:1/a.B?version=1.0.0"),
            url("rpc://h:7/a.B?version=1.0.0"),
        ]))
        .unwrap();
        settle().await;
        assert_eq!(addresses(&directory), ["h:1", "h:7"]);
        assert_eq!(connect.made.load(Ordering::Relaxed), 2);

        // Removals are reported.
        tx.send(Arc::new(vec![url("rpc://h:7/a.B?version=1.0.0")])).unwrap();
        settle().await;
        assert_eq!(addresses(&directory), ["h:7"]);
        tx.send(Arc::new(vec![])).unwrap();
        settle().await;
        assert!(directory.endpoints().is_empty());
    }

    #[tokio::test]
    async fn a_changed_url_updates_the_endpoint_in_place() {
        let (tx, rx) = watch::channel(Arc::new(vec![url("rpc://h:1/a.B?weight=100")]));
        let connect = Arc::new(CountingConnect::default());
        let key = ServiceKey::new("a.B", None, None);
        let directory = Directory::new(key, connect.clone(), vec![WatchStream::new(rx)]).await;
        let before = directory.endpoints()[0].clone();
        let _in_flight = before.stats().start();
        tx.send(Arc::new(vec![url("rpc://h:1/a.B?weight=5")])).unwrap();
        settle().await;
        let after = directory.endpoints()[0].clone();
        assert_eq!(after.url().param("weight"), Some("5"));
        // Same connection, same statistics: nothing was reconnected.
        assert_eq!(connect.made.load(Ordering::Relaxed), 1);
        assert_eq!(after.stats().active(), 1);
    }

    #[tokio::test]
    async fn wildcards_match_any_version_and_group() {
        let (_tx, rx) = watch::channel(Arc::new(vec![
            url("rpc://h:1/a.B?version=1.0.0"),
            url("rpc://h:2/a.B?version=2.0.0&group=g"),
        ]));
        let key = ServiceKey::new("a.B", Some("*"), Some("*"));
        let directory = Directory::new(key, Arc::new(CountingConnect::default()), vec![WatchStream::new(rx)]).await;
        assert_eq!(addresses(&directory), ["h:1", "h:2"]);
    }

    #[tokio::test]
    async fn merges_several_sources() {
        let (tx_a, rx_a) = watch::channel(Arc::new(vec![url("rpc://h:1/a.B")]));
        let (_tx_b, rx_b) = watch::channel(Arc::new(vec![url("rpc://h:2/a.B"), url("rpc://h:1/a.B")]));
        let key = ServiceKey::new("a.B", None, None);
        let sources = vec![WatchStream::new(rx_a), WatchStream::new(rx_b)];
        let directory = Directory::new(key, Arc::new(CountingConnect::default()), sources).await;
        assert_eq!(addresses(&directory), ["h:1", "h:2"]);
        // h:1 is still in source b after source a drops it.
        tx_a.send(Arc::new(vec![])).unwrap();
        settle().await;
        assert_eq!(addresses(&directory), ["h:1", "h:2"]);
    }

    #[tokio::test]
    async fn calls_are_encoded_in_what_every_provider_reads() {
        use rpc_core::Serialization::{Bincode, Json};
        let ours = "rpc://h:1/a.B?serialization=bincode&prefer.serialization=bincode,json";
        let python = "tri://h:2?service=a.B";
        let (tx, rx) = watch::channel(Arc::new(vec![url(ours)]));
        let connect = Arc::new(AnyProtocol);
        let key = ServiceKey::new("a.B", None, None);
        let directory = Directory::new(key, connect, vec![WatchStream::new(rx)]).await;
        assert_eq!(directory.serialization_for(Bincode), Bincode);
        assert_eq!(directory.serialization_for(Json), Json);
        // A provider of another language lists nothing on tri: JSON, which ours read too.
        tx.send(Arc::new(vec![url(ours), url(python)])).unwrap();
        settle().await;
        assert_eq!(directory.serialization_for(Bincode), Json);
        // Only bincode readers, and one reading only Hessian2 (Java's tri://, in
        // Triple's wrapper form): calls go in bincode, Hessian2 is theirs.
        tx.send(Arc::new(vec![
            url("rpc://h:1/a.B?serialization=bincode"),
            url("tri://h:3/a.B?serialization=hessian2"),
        ]))
        .unwrap();
        settle().await;
        assert_eq!(directory.serialization_for(Json), Bincode);
        let hessian = directory
            .endpoints()
            .iter()
            .find(|e| e.address() == "h:3")
            .cloned()
            .unwrap();
        assert_eq!(
            hessian.accepted_serializations(),
            rpc_core::Serialization::Hessian2.bit()
        );
        assert_eq!(
            directory.alternate_for(Bincode),
            Some(rpc_core::Serialization::Hessian2)
        );
    }

    #[tokio::test]
    async fn a_java_provider_reads_hessian2_over_dubbo_and_tri() {
        use rpc_core::Serialization::{Bincode, Hessian2};
        // What a Java Dubbo 3.3 provider registers: dubbo:// and tri://, both
        // listing hessian2 (read over tri in Triple's wrapper form).
        let java = [
            "dubbo://h:1/a.B?serialization=hessian2&prefer.serialization=hessian2,fastjson2&pid=7",
            "tri://h:2/a.B?serialization=hessian2&prefer.serialization=hessian2,fastjson2&pid=7",
        ];
        let (_tx, rx) = watch::channel(Arc::new(java.iter().map(|u| url(u)).collect::<Vec<_>>()));
        let key = ServiceKey::new("a.B", None, None);
        let directory = Directory::new(key, Arc::new(AnyProtocol), vec![WatchStream::new(rx)]).await;
        assert_eq!(directory.serialization_for(Bincode), Hessian2);
        let accepts: Vec<(String, bool, bool)> = directory
            .endpoints()
            .iter()
            .map(|e| (e.url().protocol().to_string(), e.accepts(Hessian2), e.accepts(Bincode)))
            .collect();
        assert!(accepts.contains(&("dubbo".into(), true, false)), "{accepts:?}");
        assert!(accepts.contains(&("tri".into(), true, false)), "{accepts:?}");
        // Java's set alone: Hessian2 for everyone, no alternate.
        assert_eq!(directory.alternate_for(Hessian2), None);
        // A dubbo:// URL listing no serialization reads Hessian2; one of ours never does.
        let (_tx, rx) = watch::channel(Arc::new(vec![
            url("dubbo://h:3/a.B"),
            url("rpc://h:4/a.B?serialization=bincode&prefer.serialization=hessian2,bincode,json"),
        ]));
        let directory = Directory::new(
            ServiceKey::new("a.B", None, None),
            Arc::new(AnyProtocol),
            vec![WatchStream::new(rx)],
        )
        .await;
        for endpoint in directory.endpoints().iter() {
            assert_eq!(
                endpoint.accepts(Hessian2),
                endpoint.url().protocol() == "dubbo",
                "{}",
                endpoint.url()
            );
        }
        // One of our processes exporting rpc and dubbo reads both: no alternate.
        let ours = [
            "rpc://h:5/a.B?serialization=bincode&prefer.serialization=bincode,json&instance=i",
            "dubbo://h:6/a.B?serialization=hessian2&instance=i",
        ];
        let (_ours_tx, rx) = watch::channel(Arc::new(ours.iter().map(|u| url(u)).collect::<Vec<_>>()));
        let both = Directory::new(
            ServiceKey::new("a.B", None, None),
            Arc::new(AnyProtocol),
            vec![WatchStream::new(rx)],
        )
        .await;
        assert_eq!(both.serialization_for(Bincode), Bincode);
        assert_eq!(both.alternate_for(Bincode), None);
        // A mixed set: calls go in ours, with Hessian2 alongside for the Java ones.
        assert_eq!(directory.serialization_for(Bincode), Bincode);
        assert_eq!(directory.alternate_for(Bincode), Some(Hessian2));
        assert_eq!(directory.alternate_for(Hessian2), Some(Bincode));
    }

    /// Makes endpoints for any protocol.
    struct AnyProtocol;

    impl Connect for AnyProtocol {
        fn connect(&self, url: &Url) -> Option<Endpoint> {
            let invoker = BoxInvoker::new(tower::service_fn(|_| async { Ok::<_, RpcError>(Response::default()) }));
            Some(Endpoint::new(url.clone(), invoker, || true))
        }
    }
}

//! [`Directory`]: the live provider endpoints of one reference.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, RwLock, Weak};

use futures::{Stream, StreamExt};
use rpc_core::url::keys;
use rpc_core::{BoxInvoker, ServiceKey, Url};

/// One provider as the cluster sees it: its URL, the service that sends calls
/// to it, and whether it can take calls now.
#[derive(Clone)]
pub struct Endpoint {
    url: Url,
    invoker: BoxInvoker,
    available: Arc<dyn Fn() -> bool + Send + Sync>,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("url", &self.url)
            .field("available", &(self.available)())
            .finish()
    }
}

impl Endpoint {
    /// An endpoint for `url` sending through `invoker`; `available` says
    /// whether it can take calls now (false while its connection is failing).
    pub fn new(url: Url, invoker: BoxInvoker, available: impl Fn() -> bool + Send + Sync + 'static) -> Self {
        Endpoint {
            url,
            invoker,
            available: Arc::new(available),
        }
    }

    /// The provider URL.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The service that sends calls to this provider.
    pub fn invoker(&self) -> &BoxInvoker {
        &self.invoker
    }

    /// Whether the endpoint can take calls now.
    pub fn is_available(&self) -> bool {
        (self.available)()
    }
}

/// Makes endpoints from provider URLs: the consumer's protocols.
pub trait Connect: Send + Sync + 'static {
    /// An endpoint for `url`, or `None` when its protocol is not spoken here.
    fn connect(&self, url: &Url) -> Option<Endpoint>;
}

struct State {
    /// The latest set from each source (registry).
    sources: Vec<Arc<Vec<Url>>>,
    endpoints: Arc<Vec<Endpoint>>,
}

/// The live set of provider endpoints of one reference.
pub struct Directory {
    key: ServiceKey,
    connect: Arc<dyn Connect>,
    state: RwLock<State>,
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
            key,
            connect,
            state: RwLock::new(State {
                sources: vec![Arc::default(); sources.len()],
                endpoints: Arc::default(),
            }),
        });
        for (index, mut source) in sources.into_iter().enumerate() {
            // The current set first, so the directory is complete when this returns.
            if let Some(first) = source.next().await {
                directory.update(index, first);
            }
            let weak = Arc::downgrade(&directory);
            tokio::spawn(follow(weak, index, source));
        }
        directory
    }

    /// The reference this directory serves.
    pub fn key(&self) -> &ServiceKey {
        &self.key
    }

    /// The usable endpoints now.
    pub fn endpoints(&self) -> Arc<Vec<Endpoint>> {
        self.state.read().map(|s| s.endpoints.clone()).unwrap_or_default()
    }

    fn update(&self, source: usize, urls: Arc<Vec<Url>>) {
        let Ok(mut state) = self.state.write() else { return };
        if let Some(slot) = state.sources.get_mut(source) {
            *slot = urls;
        }
        // Hash lookups: a set of 1,000 providers is rebuilt in linear time.
        let known: HashMap<&Url, &Endpoint> = state.endpoints.iter().map(|e| (e.url(), e)).collect();
        let mut seen: HashSet<(&str, String)> = HashSet::new();
        let mut next: Vec<Endpoint> = Vec::new();
        for url in state.sources.iter().flat_map(|s| s.iter()) {
            if !self.accepts(url) || !seen.insert((url.protocol(), url.address())) {
                continue;
            }
            // Keep the endpoint (and its connection) of a provider we already know.
            let endpoint = match known.get(url) {
                Some(endpoint) => Some((*endpoint).clone()),
                None => self.connect.connect(url),
            };
            match endpoint {
                Some(endpoint) => next.push(endpoint),
                None => tracing::debug!(%url, "skipping a provider whose protocol is not spoken here"),
            }
        }
        tracing::debug!(key = %self.key, providers = next.len(), "provider set changed");
        state.endpoints = Arc::new(next);
    }

    /// Whether a provider URL serves this reference.
    fn accepts(&self, url: &Url) -> bool {
        let matches = |want: Option<&str>, have: Option<&str>| want == Some("*") || want == have;
        url.interface() == Some(self.key.interface())
            && matches(self.key.version(), url.version())
            && matches(self.key.group(), url.group())
            && url.param(keys::DISABLED) != Some("true")
    }
}

async fn follow<S>(directory: Weak<Directory>, index: usize, mut source: S)
where
    S: Stream<Item = Arc<Vec<Url>>> + Send + Unpin + 'static,
{
    while let Some(urls) = source.next().await {
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

    use rpc_core::{Response, RpcError};
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
}

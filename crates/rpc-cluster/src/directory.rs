//! [`Directory`]: the live provider endpoints of one reference.

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
        f.debug_struct("Endpoint").field("url", &self.url).field("available", &(self.available)()).finish()
    }
}

impl Endpoint {
    /// An endpoint for `url` sending through `invoker`; `available` says
    /// whether it can take calls now (false while its connection is failing).
    pub fn new(url: Url, invoker: BoxInvoker, available: impl Fn() -> bool + Send + Sync + 'static) -> Self {
        Endpoint { url, invoker, available: Arc::new(available) }
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
        f.debug_struct("Directory").field("key", &self.key).field("endpoints", &self.endpoints()).finish()
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
            state: RwLock::new(State { sources: vec![Arc::default(); sources.len()], endpoints: Arc::default() }),
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
        let mut next: Vec<Endpoint> = Vec::new();
        for url in state.sources.iter().flat_map(|s| s.iter()) {
            if !self.accepts(url) || next.iter().any(|e| same_endpoint(e.url(), url)) {
                continue;
            }
            // Keep the endpoint (and its connection) of a provider we already know.
            let known = state.endpoints.iter().find(|e| e.url() == url).cloned();
            match known.or_else(|| self.connect.connect(url)) {
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

fn same_endpoint(a: &Url, b: &Url) -> bool {
    a.protocol() == b.protocol() && a.address() == b.address()
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

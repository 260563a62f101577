//! [`Subscription`]: a live view of one interface's providers.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::Stream;
use rpc_core::Url;
use tokio::sync::watch;
use tokio_stream::wrappers::WatchStream;

/// A full set of provider URLs. Cheap to clone.
pub type ProviderSet = Arc<Vec<Url>>;

/// What a registry keeps current for one reference: the latest value of a
/// watch channel, and a stream of its changes; holds the registry's session
/// alive. Shared by [`Subscription`] and [`RuleSubscription`].
struct Live<T> {
    current: watch::Receiver<T>,
    stream: WatchStream<T>,
    /// Keeps the registry that feeds this subscription alive.
    _keepalive: Option<Arc<dyn std::any::Any + Send + Sync>>,
}

impl<T: Clone + Send + Sync + 'static> Live<T> {
    fn new(rx: watch::Receiver<T>) -> Self {
        Live {
            stream: WatchStream::new(rx.clone()),
            current: rx,
            _keepalive: None,
        }
    }

    /// A value that never changes.
    fn fixed(value: T) -> Self {
        let (_tx, rx) = watch::channel(value);
        Live::new(rx)
    }

    fn with_keepalive(mut self, owner: Arc<dyn std::any::Any + Send + Sync>) -> Self {
        self._keepalive = Some(owner);
        self
    }

    fn current(&self) -> T {
        self.current.borrow().clone()
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        Pin::new(&mut self.stream).poll_next(cx)
    }
}

/// The providers of one interface, kept current by a registry.
///
/// It is a [`Stream`] of full sets: the first item is the set at subscription
/// time, then one item per change (intermediate sets may be skipped when
/// changes come faster than they are read: the latest always arrives). The
/// stream ends when no more changes can come (a fixed list, or the registry
/// was dropped); the last set stays valid.
pub struct Subscription(Live<ProviderSet>);

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("providers", &*self.0.current.borrow())
            .finish()
    }
}

impl Subscription {
    /// A subscription fed by `rx`.
    pub fn new(rx: watch::Receiver<ProviderSet>) -> Self {
        Subscription(Live::new(rx))
    }

    /// Keeps `owner` (the registry's session, its watch tasks) alive for as
    /// long as this subscription: a client keeps receiving updates even when
    /// the consumer that created it is gone.
    pub fn with_keepalive(self, owner: Arc<dyn std::any::Any + Send + Sync>) -> Self {
        Subscription(self.0.with_keepalive(owner))
    }

    /// A subscription to a set that never changes.
    pub fn fixed(providers: Vec<Url>) -> Self {
        Subscription(Live::fixed(Arc::new(providers)))
    }

    /// The providers now.
    pub fn current(&self) -> ProviderSet {
        self.0.current()
    }
}

impl Stream for Subscription {
    type Item = ProviderSet;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<ProviderSet>> {
        self.0.poll_next(cx)
    }
}

/// One governance rule node: where it is and what it holds (YAML, or for a
/// legacy `configurators/` or `routers/` child, the decoded URL that is its name).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleNode {
    /// The node's path, under the registry's chroot.
    pub path: String,
    /// Its contents.
    pub text: String,
}

/// The complete set of rule nodes that concern one reference. Cheap to clone.
pub type RuleSet = Arc<Vec<RuleNode>>;

/// The governance rules of one reference, kept current by a registry: a
/// [`Stream`] of complete [`RuleSet`]s, the first item the set at
/// subscription time (as [`Subscription`] does for providers). Which nodes
/// concern a reference, and what they mean, is the cluster's business
/// (`rpc_cluster::governance`); a registry delivers their text.
pub struct RuleSubscription(Live<RuleSet>);

impl fmt::Debug for RuleSubscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuleSubscription")
            .field("rules", &*self.0.current.borrow())
            .finish()
    }
}

impl RuleSubscription {
    /// A subscription fed by `rx`.
    pub fn new(rx: watch::Receiver<RuleSet>) -> Self {
        RuleSubscription(Live::new(rx))
    }

    /// Keeps `owner` alive for as long as this subscription.
    pub fn with_keepalive(self, owner: Arc<dyn std::any::Any + Send + Sync>) -> Self {
        RuleSubscription(self.0.with_keepalive(owner))
    }

    /// No rules, ever (a registry without a configuration centre).
    pub fn none() -> Self {
        RuleSubscription(Live::fixed(RuleSet::default()))
    }

    /// The rule nodes now.
    pub fn current(&self) -> RuleSet {
        self.0.current()
    }
}

impl Stream for RuleSubscription {
    type Item = RuleSet;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<RuleSet>> {
        self.0.poll_next(cx)
    }
}

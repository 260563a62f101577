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

/// The providers of one interface, kept current by a registry.
///
/// It is a [`Stream`] of full sets: the first item is the set at subscription
/// time, then one item per change (intermediate sets may be skipped when
/// changes come faster than they are read: the latest always arrives). The
/// stream ends when no more changes can come (a fixed list, or the registry
/// was dropped); the last set stays valid.
pub struct Subscription {
    current: watch::Receiver<ProviderSet>,
    stream: WatchStream<ProviderSet>,
    /// Keeps the registry that feeds this subscription alive.
    _keepalive: Option<Arc<dyn std::any::Any + Send + Sync>>,
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("providers", &*self.current.borrow())
            .finish()
    }
}

impl Subscription {
    /// A subscription fed by `rx`.
    pub fn new(rx: watch::Receiver<ProviderSet>) -> Self {
        Subscription {
            stream: WatchStream::new(rx.clone()),
            current: rx,
            _keepalive: None,
        }
    }

    /// Keeps `owner` (the registry's session, its watch tasks) alive for as
    /// long as this subscription: a client keeps receiving updates even when
    /// the consumer that created it is gone.
    pub fn with_keepalive(mut self, owner: Arc<dyn std::any::Any + Send + Sync>) -> Self {
        self._keepalive = Some(owner);
        self
    }

    /// A subscription to a set that never changes.
    pub fn fixed(providers: Vec<Url>) -> Self {
        let (_tx, rx) = watch::channel(Arc::new(providers));
        Subscription::new(rx)
    }

    /// The providers now.
    pub fn current(&self) -> ProviderSet {
        self.current.borrow().clone()
    }
}

impl Stream for Subscription {
    type Item = ProviderSet;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<ProviderSet>> {
        Pin::new(&mut self.stream).poll_next(cx)
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
pub struct RuleSubscription {
    current: watch::Receiver<RuleSet>,
    stream: WatchStream<RuleSet>,
    _keepalive: Option<Arc<dyn std::any::Any + Send + Sync>>,
}

impl fmt::Debug for RuleSubscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuleSubscription")
            .field("rules", &*self.current.borrow())
            .finish()
    }
}

impl RuleSubscription {
    /// A subscription fed by `rx`.
    pub fn new(rx: watch::Receiver<RuleSet>) -> Self {
        RuleSubscription {
            stream: WatchStream::new(rx.clone()),
            current: rx,
            _keepalive: None,
        }
    }

    /// Keeps `owner` alive for as long as this subscription.
    pub fn with_keepalive(mut self, owner: Arc<dyn std::any::Any + Send + Sync>) -> Self {
        self._keepalive = Some(owner);
        self
    }

    /// No rules, ever (a registry without a configuration centre).
    pub fn none() -> Self {
        let (_tx, rx) = watch::channel(RuleSet::default());
        RuleSubscription::new(rx)
    }

    /// The rule nodes now.
    pub fn current(&self) -> RuleSet {
        self.current.borrow().clone()
    }
}

impl Stream for RuleSubscription {
    type Item = RuleSet;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<RuleSet>> {
        Pin::new(&mut self.stream).poll_next(cx)
    }
}

//! Service registries: where providers announce themselves and consumers find them.
//!
//! A [`Registry`] registers and unregisters [`Url`]s and hands out
//! [`Subscription`]s: a live view of the providers of one interface, as a
//! sequence of full provider sets (never diffs, so a missed update can never
//! leave a removed provider behind).
//!
//! Implementations:
//! * [`MemoryRegistry`] (`memory://` or `memory://name`): in-process, for tests
//!   and the quick start; registries of the same name share state.
//! * [`DirectRegistry`] (`rpc://host:port`, `tri://host:port,host:port`): a
//!   fixed list of providers, for point-to-point calls without a registry.
//! * [`ZookeeperRegistry`] (`zookeeper://host:port[,host:port]/[chroot]`):
//!   Apache Dubbo's layout in ZooKeeper, surviving disconnections and session
//!   expiry.
//!
//! Registries also deliver governance rules ([`Registry::rules`]): the
//! ZooKeeper registry reads Dubbo's configuration-centre nodes, the memory
//! registry holds rules put by [`MemoryRegistry::put_rule`].
//!
//! [`from_url`] builds the right one from a registry URL.
//!
//! On the ZooKeeper registry's session, [`zookeeper::coordination`] adds a
//! distributed lock and a leader election, compatible with Apache Curator's.

mod direct;
mod memory;
mod subscription;
pub mod zookeeper;

/// Entry points for the fuzz targets in `fuzz/` (feature `fuzzing`, off by default). Not a public API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub use zookeeper::fuzzing;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use direct::DirectRegistry;
pub use memory::MemoryRegistry;
pub use rpc_core::Url;
pub use subscription::{ProviderSet, RuleNode, RuleSet, RuleSubscription, Subscription};
pub use zookeeper::ZookeeperRegistry;

/// The future returned by [`Registry`] methods.
pub type RegistryFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, RegistryError>> + Send + 'a>>;

/// A service registry.
pub trait Registry: Send + Sync + fmt::Debug + 'static {
    /// The registry's own URL, for messages.
    fn url(&self) -> &Url;

    /// Announces `url` (a provider or consumer URL) until [`unregister`](Registry::unregister)
    /// or until this registry is dropped.
    fn register(&self, url: &Url) -> RegistryFuture<'_, ()>;

    /// Withdraws `url`.
    fn unregister(&self, url: &Url) -> RegistryFuture<'_, ()>;

    /// Watches the providers of `consumer`'s interface. Resolves once the
    /// current set is known; filtering by version, group and protocol is the
    /// consumer's job.
    fn subscribe(&self, consumer: &Url) -> RegistryFuture<'_, Subscription>;

    /// Watches the governance rule nodes (override rules, condition and tag
    /// routers) that may concern `consumer`'s reference: its service key's,
    /// its application's, its providers' applications' (tag rules), and the
    /// legacy `configurators/` and `routers/` categories of its interface.
    /// Resolves once the current rules are read (or, when they cannot be read
    /// in time, with none yet: rules are not needed to call). A registry
    /// without a configuration centre has none (the default).
    fn rules(&self, consumer: &Url) -> RegistryFuture<'_, RuleSubscription> {
        let _ = consumer;
        Box::pin(async { Ok(RuleSubscription::none()) })
    }
}

/// A registry operation failed.
#[derive(Clone, Debug, thiserror::Error)]
#[error("registry {registry}: {reason}")]
pub struct RegistryError {
    registry: String,
    reason: String,
}

impl RegistryError {
    /// An error of `registry` (its URL or name) explained by `reason`.
    pub fn new(registry: impl fmt::Display, reason: impl Into<String>) -> Self {
        RegistryError {
            registry: registry.to_string(),
            reason: reason.into(),
        }
    }

    /// The registry's URL or name.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// Why it failed.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// Builds the registry named by `url`:
/// `memory://[name]` → [`MemoryRegistry::named`]; `rpc://` or `tri://` (one or
/// more comma-separated addresses) → [`DirectRegistry`]; `zookeeper://` →
/// [`ZookeeperRegistry`] (needs a tokio runtime).
pub fn from_url(url: &Url) -> Result<Arc<dyn Registry>, RegistryError> {
    match url.protocol() {
        "memory" => {
            let name = if url.host().is_empty() { "default" } else { url.host() };
            Ok(Arc::new(MemoryRegistry::named(name)))
        }
        "rpc" | "tri" => Ok(Arc::new(DirectRegistry::from_url(url)?)),
        "zookeeper" => Ok(Arc::new(ZookeeperRegistry::new(url)?)),
        other => Err(RegistryError::new(
            url,
            format!("unsupported registry protocol `{other}` (supported: zookeeper, memory, rpc, tri)"),
        )),
    }
}

/// Parses `address` and builds its registry; see [`from_url`].
pub fn from_address(address: &str) -> Result<Arc<dyn Registry>, RegistryError> {
    let url = Url::parse(address).map_err(|e| RegistryError::new(address, e.to_string()))?;
    from_url(&url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_registries_from_urls() {
        assert!(format!("{:?}", from_address("memory://").unwrap()).contains("Memory"));
        assert!(format!("{:?}", from_address("rpc://127.0.0.1:20880").unwrap()).contains("Direct"));
        let err = from_address("etcd://h:1").unwrap_err();
        assert!(
            err.to_string().contains("unsupported registry protocol `etcd`"),
            "{err}"
        );
        let err = from_address("not a url").unwrap_err();
        assert!(err.to_string().contains("invalid URL"), "{err}");
    }
}

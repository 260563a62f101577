//! [`MemoryRegistry`]: an in-process registry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use rpc_core::Url;
use rpc_core::url::keys;
use tokio::sync::watch;

use crate::{ProviderSet, Registry, RegistryError, RegistryFuture, RuleNode, RuleSet, RuleSubscription, Subscription};

#[derive(Debug, Default)]
struct State {
    /// Providers by interface. Senders stay here so subscribers see later registrations.
    providers: HashMap<String, watch::Sender<ProviderSet>>,
    consumers: HashMap<String, Vec<Url>>,
    /// Governance rule nodes, by path; every reference sees all of them.
    rules: Option<watch::Sender<RuleSet>>,
}

impl State {
    fn rules(&mut self) -> &watch::Sender<RuleSet> {
        self.rules.get_or_insert_with(|| watch::channel(RuleSet::default()).0)
    }
}

/// An in-process registry: providers and consumers in one process find each
/// other with no server. Registries made by [`MemoryRegistry::named`] with the
/// same name share their state; [`MemoryRegistry::new`] makes a private one.
#[derive(Debug, Clone)]
pub struct MemoryRegistry {
    url: Url,
    state: Arc<Mutex<State>>,
}

impl Default for MemoryRegistry {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryRegistry {
    /// A private registry.
    pub fn new() -> Self {
        MemoryRegistry {
            url: Url::new("memory", "private", 0),
            state: Arc::default(),
        }
    }

    /// The process-wide registry called `name` (`memory://name`).
    pub fn named(name: &str) -> Self {
        static NAMED: OnceLock<Mutex<HashMap<String, Arc<Mutex<State>>>>> = OnceLock::new();
        let registries = NAMED.get_or_init(Default::default);
        let mut registries = registries.lock().unwrap_or_else(|p| p.into_inner());
        let state = registries.entry(name.to_string()).or_default().clone();
        MemoryRegistry {
            url: Url::new("memory", name, 0),
            state,
        }
    }

    /// The providers of `interface` now.
    pub fn providers(&self, interface: &str) -> Vec<Url> {
        let state = self.lock();
        state
            .providers
            .get(interface)
            .map(|tx| tx.borrow().to_vec())
            .unwrap_or_default()
    }

    /// The consumers of `interface` now.
    pub fn consumers(&self, interface: &str) -> Vec<Url> {
        self.lock().consumers.get(interface).cloned().unwrap_or_default()
    }

    /// Writes the governance rule node at `path` (as an operator writes a
    /// configuration-centre node: `/dubbo/config/dubbo/{key}.condition-router`,
    /// ...), replacing what it held. References read it at once.
    pub fn put_rule(&self, path: &str, text: &str) {
        self.lock().rules().send_modify(|rules| {
            let mut next: Vec<RuleNode> = rules.iter().filter(|n| n.path != path).cloned().collect();
            next.push(RuleNode {
                path: path.to_string(),
                text: text.to_string(),
            });
            next.sort();
            *rules = Arc::new(next);
        });
    }

    /// Deletes the governance rule node at `path`.
    pub fn remove_rule(&self, path: &str) {
        self.lock().rules().send_if_modified(|rules| {
            if !rules.iter().any(|n| n.path == path) {
                return false;
            }
            *rules = Arc::new(rules.iter().filter(|n| n.path != path).cloned().collect());
            true
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Every update is a single insert or removal: a poisoned lock holds consistent state.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn interface_of(&self, url: &Url) -> Result<String, RegistryError> {
        url.interface()
            .map(str::to_string)
            .ok_or_else(|| RegistryError::new(&self.url, format!("`{url}` names no interface")))
    }

    fn update(&self, url: &Url, add: bool) -> Result<(), RegistryError> {
        let interface = self.interface_of(url)?;
        let mut state = self.lock();
        if url.param(keys::SIDE) == Some("consumer") {
            let list = state.consumers.entry(interface).or_default();
            list.retain(|u| u != url);
            if add {
                list.push(url.clone());
            }
            return Ok(());
        }
        let tx = state
            .providers
            .entry(interface)
            .or_insert_with(|| watch::channel(Arc::new(Vec::new())).0);
        tx.send_if_modified(|set| {
            let present = set.contains(url);
            if add == present {
                return false;
            }
            let mut next: Vec<Url> = set.iter().filter(|u| *u != url).cloned().collect();
            if add {
                next.push(url.clone());
            }
            *set = Arc::new(next);
            true
        });
        Ok(())
    }
}

impl Registry for MemoryRegistry {
    fn url(&self) -> &Url {
        &self.url
    }

    fn register(&self, url: &Url) -> RegistryFuture<'_, ()> {
        let result = self.update(url, true);
        Box::pin(async move { result })
    }

    fn unregister(&self, url: &Url) -> RegistryFuture<'_, ()> {
        let result = self.update(url, false);
        Box::pin(async move { result })
    }

    fn subscribe(&self, consumer: &Url) -> RegistryFuture<'_, Subscription> {
        let result = self.interface_of(consumer).map(|interface| {
            let mut state = self.lock();
            let tx = state
                .providers
                .entry(interface)
                .or_insert_with(|| watch::channel(Arc::new(Vec::new())).0);
            Subscription::new(tx.subscribe())
        });
        Box::pin(async move { result })
    }

    /// Every rule node put here: the reference keeps those that concern it.
    fn rules(&self, _consumer: &Url) -> RegistryFuture<'_, RuleSubscription> {
        let rx = self.lock().rules().subscribe();
        Box::pin(async move { Ok(RuleSubscription::new(rx)) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    fn provider(port: u16) -> Url {
        Url::new("rpc", "127.0.0.1", port)
            .with_path("a.B")
            .with_param("side", "provider")
    }

    #[tokio::test]
    async fn subscribers_see_additions_and_removals() {
        let registry = MemoryRegistry::new();
        let consumer = Url::new("consumer", "127.0.0.1", 0).with_path("a.B");
        let mut sub = registry.subscribe(&consumer).await.unwrap();
        assert!(sub.next().await.unwrap().is_empty());

        registry.register(&provider(1)).await.unwrap();
        assert_eq!(*sub.next().await.unwrap(), vec![provider(1)]);
        registry.register(&provider(2)).await.unwrap();
        assert_eq!(sub.next().await.unwrap().len(), 2);
        registry.unregister(&provider(1)).await.unwrap();
        assert_eq!(*sub.next().await.unwrap(), vec![provider(2)]);
        assert_eq!(registry.providers("a.B"), vec![provider(2)]);
    }

    #[tokio::test]
    async fn named_registries_share_state_and_private_ones_do_not() {
        let a = MemoryRegistry::named("memory-test-shared");
        let b = MemoryRegistry::named("memory-test-shared");
        a.register(&provider(3)).await.unwrap();
        assert_eq!(b.providers("a.B"), vec![provider(3)]);
        assert!(MemoryRegistry::new().providers("a.B").is_empty());
    }

    #[tokio::test]
    async fn rules_are_delivered_whole_on_every_change() {
        let registry = MemoryRegistry::new();
        let consumer = Url::new("consumer", "127.0.0.1", 0).with_path("a.B");
        let mut rules = registry.rules(&consumer).await.unwrap();
        assert!(rules.next().await.unwrap().is_empty());
        registry.put_rule("/dubbo/config/dubbo/a.B::.condition-router", "one");
        registry.put_rule("/dubbo/config/dubbo/app.configurators", "two");
        registry.put_rule("/dubbo/config/dubbo/a.B::.condition-router", "three");
        let set = rules.next().await.unwrap();
        let texts: Vec<&str> = set.iter().map(|n| n.text.as_str()).collect();
        assert_eq!(texts, ["three", "two"]);
        registry.remove_rule("/dubbo/config/dubbo/app.configurators");
        assert_eq!(rules.next().await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_url_without_interface_is_refused() {
        let err = MemoryRegistry::new()
            .register(&Url::new("rpc", "h", 1))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("names no interface"), "{err}");
    }

    #[tokio::test]
    async fn consumers_are_kept_apart_from_providers() {
        let registry = MemoryRegistry::new();
        let consumer = Url::new("consumer", "127.0.0.1", 0)
            .with_path("a.B")
            .with_param("side", "consumer");
        registry.register(&consumer).await.unwrap();
        assert_eq!(registry.consumers("a.B"), vec![consumer]);
        assert!(registry.providers("a.B").is_empty());
    }
}

//! [`DirectRegistry`]: a fixed list of providers, no registry server.

use rpc_core::Url;

use crate::{Registry, RegistryError, RegistryFuture, Subscription};

/// Point-to-point: the providers are the addresses of its URL
/// (`rpc://127.0.0.1:20880`, `rpc://h1:20880,h2:20880`), whatever interface is
/// asked for. Registering is a no-op: there is nowhere to register.
///
/// A URL that names an interface (`rpc://h:1/org.example.Greeter`) serves only that one.
#[derive(Debug, Clone)]
pub struct DirectRegistry {
    url: Url,
    providers: Vec<Url>,
}

impl DirectRegistry {
    /// The providers at every address of `url`, spoken to with its protocol.
    pub fn from_url(url: &Url) -> Result<Self, RegistryError> {
        let mut providers = Vec::new();
        for address in url.addresses() {
            let parsed = Url::parse(&format!("{}://{address}", url.protocol()))
                .map_err(|e| RegistryError::new(url, e.to_string()))?;
            if parsed.port() == 0 || parsed.host().is_empty() {
                return Err(RegistryError::new(url, format!("`{address}` needs a host and a port")));
            }
            let mut provider = Url::new(url.protocol(), parsed.host(), parsed.port()).with_path(url.path());
            for (k, v) in url.params() {
                provider.set_param(k.clone(), v.clone());
            }
            providers.push(provider);
        }
        Ok(DirectRegistry {
            url: url.clone(),
            providers,
        })
    }
}

impl Registry for DirectRegistry {
    fn url(&self) -> &Url {
        &self.url
    }

    fn register(&self, _url: &Url) -> RegistryFuture<'_, ()> {
        Box::pin(async { Ok(()) })
    }

    fn unregister(&self, _url: &Url) -> RegistryFuture<'_, ()> {
        Box::pin(async { Ok(()) })
    }

    fn subscribe(&self, consumer: &Url) -> RegistryFuture<'_, Subscription> {
        let interface = consumer.interface().unwrap_or_default().to_string();
        let providers = self
            .providers
            .iter()
            .filter(|p| p.interface().is_none_or(|i| i == interface))
            .map(|p| {
                let mut p = p.clone();
                if p.path().is_empty() {
                    p.set_path(interface.clone());
                }
                // Serve whatever version and group the consumer asks for.
                for key in [rpc_core::url::keys::VERSION, rpc_core::url::keys::GROUP] {
                    if p.param(key).is_none()
                        && let Some(v) = consumer.param(key)
                    {
                        p.set_param(key, v);
                    }
                }
                p
            })
            .collect();
        Box::pin(async move { Ok(Subscription::fixed(providers)) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_address_is_a_provider_of_the_asked_interface() {
        let registry = DirectRegistry::from_url(&Url::parse("rpc://127.0.0.1:1,127.0.0.1:2").unwrap()).unwrap();
        let consumer = Url::new("consumer", "x", 0)
            .with_path("a.B")
            .with_param("version", "1.0.0");
        let set = registry.subscribe(&consumer).await.unwrap().current();
        let addresses: Vec<_> = set.iter().map(Url::address).collect();
        assert_eq!(addresses, ["127.0.0.1:1", "127.0.0.1:2"]);
        assert!(
            set.iter()
                .all(|u| u.interface() == Some("a.B") && u.version() == Some("1.0.0"))
        );
    }

    #[tokio::test]
    async fn an_interface_in_the_url_limits_it() {
        let registry = DirectRegistry::from_url(&Url::parse("rpc://127.0.0.1:1/a.B").unwrap()).unwrap();
        let other = Url::new("consumer", "x", 0).with_path("c.D");
        assert!(registry.subscribe(&other).await.unwrap().current().is_empty());
    }

    #[test]
    fn addresses_need_a_port() {
        assert!(DirectRegistry::from_url(&Url::parse("rpc://127.0.0.1").unwrap()).is_err());
    }
}

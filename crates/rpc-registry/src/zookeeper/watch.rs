//! Watching one interface's providers.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use rpc_core::Url;
use tokio::sync::watch as channel;
use zookeeper_client::{Client, Error, EventType};

use super::{Shared, Watched, lock};
use crate::ProviderSet;

const PERSISTENT: zookeeper_client::CreateOptions<'static> =
    zookeeper_client::CreateMode::Persistent.with_acls(zookeeper_client::Acls::anyone_all());

/// The watched provider set of `interface`, starting its watcher on first use.
pub(super) fn watched(shared: &Arc<Shared>, interface: &str) -> Watched {
    let mut subscriptions = lock(&shared.subscriptions);
    if let Some(watched) = subscriptions.get(interface) {
        return watched.clone();
    }
    let cached = shared.cache.as_ref().map(|c| c.get(interface)).unwrap_or_default();
    let (providers, _) = channel::channel(Arc::new(cached));
    let (loaded_tx, loaded) = channel::channel(false);
    let watched = Watched {
        providers: providers.clone(),
        loaded,
    };
    subscriptions.insert(interface.to_string(), watched.clone());
    tokio::spawn(follow(shared.clone(), interface.to_string(), providers, loaded_tx));
    watched
}

/// Reads the providers of `interface` and re-reads on every change, for as long as the registry lives.
async fn follow(
    shared: Arc<Shared>,
    interface: String,
    providers: channel::Sender<ProviderSet>,
    loaded: channel::Sender<bool>,
) {
    let path = shared.config.category_path(&interface, "providers");
    let mut clients = shared.client.subscribe();
    let mut warned = HashSet::new();
    let mut backoff = Duration::from_millis(100);
    loop {
        // Wait for a live session.
        let client = tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            client = clients.wait_for(Option::is_some) => match client {
                Ok(client) => client.clone(),
                Err(_) => return,
            },
        };
        let Some(client) = client else { continue };
        // One request lists the children and arms the watch: nothing can slip between.
        let (children, watcher) = match list_and_watch(&client, &path).await {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(registry = %shared.url, %path, error = %e, retry_ms = backoff.as_millis() as u64, "cannot read providers; keeping the last known set");
                tokio::select! {
                    _ = shared.shutdown.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        let set = parse_children(&interface, &children, &mut warned);
        tracing::debug!(registry = %shared.url, %interface, providers = set.len(), "providers read");
        if let Some(cache) = &shared.cache {
            cache.put(&interface, &set);
        }
        providers.send_if_modified(|current| {
            if **current == set {
                return false;
            }
            *current = Arc::new(set);
            true
        });
        loaded.send_replace(true);
        let event = tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            event = watcher.changed() => event,
        };
        if event.event_type == EventType::Session {
            // The session ended: wait for the supervisor's next one.
            let _ = clients
                .wait_for(|c| c.as_ref().is_none_or(|c| c.session_id() != client.session_id()))
                .await;
        }
    }
}

async fn list_and_watch(client: &Client, path: &str) -> Result<(Vec<String>, zookeeper_client::OneshotWatcher), Error> {
    match client.get_and_watch_children(path).await {
        Ok((children, _, watcher)) => Ok((children, watcher)),
        Err(Error::NoNode) => {
            // Nobody registered yet: create the path (as Dubbo consumers do) and watch it.
            match client.mkdir(path, &PERSISTENT).await {
                Ok(()) | Err(Error::NodeExists) => {}
                Err(e) => return Err(e),
            }
            let (children, _, watcher) = client.get_and_watch_children(path).await?;
            Ok((children, watcher))
        }
        Err(e) => Err(e),
    }
}

/// Decodes provider nodes, skipping (and warning once about) what cannot be used.
///
/// `warned` holds the skipped names already warned about; names no longer
/// listed are forgotten, so it never holds more than the current children.
pub(super) fn parse_children(interface: &str, children: &[String], warned: &mut HashSet<String>) -> Vec<Url> {
    if !warned.is_empty() {
        let listed: HashSet<&str> = children.iter().map(String::as_str).collect();
        warned.retain(|name| listed.contains(name.as_str()));
    }
    let mut urls = Vec::with_capacity(children.len());
    for child in children {
        let reason = match Url::decode(child) {
            Ok(mut url) => {
                if url.interface().is_none() {
                    url.set_path(interface);
                }
                if url.host().is_empty() || url.port() == 0 {
                    "it names no host and port".to_string()
                } else if url.interface() != Some(interface) {
                    format!("it is for interface {}", url.interface().unwrap_or_default())
                } else {
                    urls.push(url);
                    continue;
                }
            }
            Err(e) => e.to_string(),
        };
        if warned.insert(child.clone()) {
            tracing::warn!(%interface, node = %child, "skipping a provider node: {reason}");
        }
    }
    urls.sort_by_cached_key(|u| u.to_string());
    urls.dedup();
    urls
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_skipped_and_other_implementations_are_understood() {
        let ours = Url::parse("rpc://127.0.0.1:20880/a.B?version=1.0.0").unwrap();
        let children = vec![
            ours.encode(),
            "tri%3A%2F%2F127.0.0.1%3A50051%3Fservice%3Da.B".to_string(), // Python Dubbo
            "not a url at all".to_string(),
            "%FF%FE".to_string(),
            Url::parse("rpc://127.0.0.1:1/c.D").unwrap().encode(),
            Url::parse("rpc:///a.B").unwrap().encode(),
        ];
        let mut warned = HashSet::new();
        let urls = parse_children("a.B", &children, &mut warned);
        let text: Vec<String> = urls.iter().map(|u| u.to_string()).collect();
        assert_eq!(
            text,
            [
                "rpc://127.0.0.1:20880/a.B?version=1.0.0",
                "tri://127.0.0.1:50051?service=a.B"
            ]
        );
        assert_eq!(warned.len(), 4);
        // Warned once only.
        parse_children("a.B", &children, &mut warned);
        assert_eq!(warned.len(), 4);
    }

    #[test]
    fn warnings_remember_only_nodes_still_there() {
        let mut warned = HashSet::new();
        let good = Url::parse("rpc://127.0.0.1:20880/a.B").unwrap().encode();
        // Garbage nodes come and go (a broken writer churning names): what is
        // remembered to warn once stays bounded by what is listed now.
        for i in 0..1000 {
            parse_children("a.B", &[good.clone(), format!("garbage-{i}")], &mut warned);
            assert!(warned.len() <= 1, "{} names remembered", warned.len());
        }
        // One that stays is still warned about once only.
        let before = warned.clone();
        parse_children("a.B", &[good, "garbage-999".to_string()], &mut warned);
        assert_eq!(warned, before);
    }
}

//! Watching the governance rules of one reference: Dubbo's configuration-
//! centre nodes (data watches) and the legacy rule categories (children
//! watches).
//!
//! ```text
//! /{root}/config/dubbo/{interface}:{version}:{group}.configurators     v3 override rule, service scope
//! /{root}/config/dubbo/{interface}:{version}:{group}.condition-router  v3 condition rule, service scope
//! /{root}/config/dubbo/{consumer-application}.configurators            application scope
//! /{root}/config/dubbo/{consumer-application}.condition-router         application scope
//! /{root}/config/dubbo/{provider-application}.tag-router               tag rule (one per provider application)
//! /{root}/config/dubbo/{provider-application}.configurators            its provider-side override rule
//! /{root}/{interface}/configurators/{URL-encoded override://...}        legacy override rules
//! /{root}/{interface}/routers/{URL-encoded condition://...}            legacy condition rules
//! ```
//!
//! Every read arms a watch (an absent node, an exists watch), so no change
//! between a read and the next watch is lost; on any change, and when the
//! providers' applications change (tag rules), every node is read again and
//! the whole set published when it differs. While ZooKeeper cannot be read,
//! the last set stays.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::{BoxFuture, select_all};
use rpc_core::Url;
use tokio::sync::watch as channel;
use zookeeper_client::{Client, Error, EventType, OneshotWatcher, WatchedEvent};

use super::Shared;
use crate::{RuleNode, RuleSet};

/// What one reference watches.
#[derive(Clone, Debug)]
pub(super) struct Watching {
    interface: String,
    /// `interface:version:group`, empty parts kept.
    service_key: String,
    application: Option<String>,
}

impl Watching {
    pub(super) fn of(consumer: &Url) -> Option<Watching> {
        let interface = consumer.interface().filter(|i| !i.is_empty() && !i.contains('/'))?;
        let part = |key: &str| consumer.param(key).filter(|v| !v.is_empty() && *v != "*").unwrap_or("");
        Some(Watching {
            interface: interface.to_string(),
            service_key: format!("{interface}:{}:{}", part("version"), part("group")),
            application: consumer
                .param("application")
                .filter(|a| !a.is_empty() && !a.contains('/'))
                .map(str::to_string),
        })
    }

    /// The data nodes to watch, given the providers' applications.
    fn data_paths(&self, root: &str, provider_apps: &BTreeSet<String>) -> Vec<String> {
        let base = format!("{root}/config/dubbo");
        let mut paths = vec![
            format!("{base}/{}.configurators", self.service_key),
            format!("{base}/{}.condition-router", self.service_key),
        ];
        if let Some(app) = &self.application {
            paths.push(format!("{base}/{app}.configurators"));
            paths.push(format!("{base}/{app}.condition-router"));
        }
        for app in provider_apps {
            paths.push(format!("{base}/{app}.tag-router"));
            // A provider application's override rule (its provider-side configs).
            if self.application.as_ref() != Some(app) {
                paths.push(format!("{base}/{app}.configurators"));
            }
        }
        paths
    }

    fn category_paths(&self, root: &str) -> [String; 2] {
        [
            format!("{root}/{}/configurators", self.interface),
            format!("{root}/{}/routers", self.interface),
        ]
    }
}

/// The applications of a provider set.
fn applications(providers: &[Url]) -> BTreeSet<String> {
    providers
        .iter()
        .filter_map(|u| u.param("application"))
        .filter(|a| !a.is_empty() && !a.contains('/'))
        .map(str::to_string)
        .collect()
}

/// Reads the rules of `watching` and re-reads on every change, for as long as
/// the registry lives or `rules` has receivers.
pub(super) async fn follow(
    shared: Arc<Shared>,
    watching: Watching,
    rules: channel::Sender<RuleSet>,
    loaded: channel::Sender<bool>,
) {
    let mut clients = shared.client.subscribe();
    let mut providers = super::watch::watched(&shared, &watching.interface)
        .providers
        .subscribe();
    let mut backoff = Duration::from_millis(100);
    let root = shared.config.root.clone();
    loop {
        if rules.is_closed() {
            return;
        }
        let client = tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            client = clients.wait_for(Option::is_some) => match client {
                Ok(client) => client.clone(),
                Err(_) => return,
            },
        };
        let Some(client) = client else { continue };
        let apps = applications(&providers.borrow_and_update());
        let read = read_all(&client, &watching, &root, &apps).await;
        let (nodes, watchers) = match read {
            Ok(read) => read,
            Err(e) => {
                tracing::warn!(registry = %shared.url, interface = %watching.interface, error = %e, retry_ms = backoff.as_millis() as u64, "cannot read governance rules; keeping the last ones");
                tokio::select! {
                    _ = shared.shutdown.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        rules.send_if_modified(|current| {
            if **current == nodes {
                return false;
            }
            *current = Arc::new(nodes);
            true
        });
        loaded.send_replace(true);
        let fired: BoxFuture<'static, WatchedEvent> = if watchers.is_empty() {
            futures::future::pending().boxed()
        } else {
            select_all(watchers.into_iter().map(|w| w.changed().boxed()))
                .map(|(event, _, _)| event)
                .boxed()
        };
        let event = tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = rules.closed() => return,
            event = fired => Some(event),
            changed = providers.changed() => {
                if changed.is_err() {
                    return;
                }
                None
            }
        };
        if let Some(event) = event
            && event.event_type == EventType::Session
        {
            let _ = clients
                .wait_for(|c| c.as_ref().is_none_or(|c| c.session_id() != client.session_id()))
                .await;
        }
    }
}

/// What one watched node holds, its watch armed.
enum Read {
    /// A data node: its text, unless absent or empty.
    Data(String, Option<String>, OneshotWatcher),
    /// A category: its children's names.
    Children(String, Vec<String>, OneshotWatcher),
    /// Absent, with an exists watch; `true` if it appeared meanwhile.
    Absent(OneshotWatcher, bool),
}

async fn read_data(client: &Client, path: String) -> Result<Read, Error> {
    match client.get_and_watch_data(&path).await {
        Ok((data, _, watcher)) => {
            let text = String::from_utf8_lossy(&data).into_owned();
            // An emptied node holds no rule (dubbo-admin empties as well as deletes).
            let text = (!text.trim().is_empty()).then_some(text);
            Ok(Read::Data(path, text, watcher))
        }
        Err(Error::NoNode) => {
            let (stat, watcher) = client.check_and_watch_stat(&path).await?;
            Ok(Read::Absent(watcher, stat.is_some()))
        }
        Err(e) => Err(e),
    }
}

async fn read_children(client: &Client, path: String) -> Result<Read, Error> {
    match client.get_and_watch_children(&path).await {
        Ok((children, _, watcher)) => Ok(Read::Children(path, children, watcher)),
        Err(Error::NoNode) => {
            let (stat, watcher) = client.check_and_watch_stat(&path).await?;
            Ok(Read::Absent(watcher, stat.is_some()))
        }
        Err(e) => Err(e),
    }
}

/// Reads every watched node, arming a watch on each; the requests are
/// pipelined (sent together), so a change is one round trip away.
async fn read_all(
    client: &Client,
    watching: &Watching,
    root: &str,
    apps: &BTreeSet<String>,
) -> Result<(Vec<RuleNode>, Vec<OneshotWatcher>), Error> {
    for _ in 0..10 {
        let data = watching
            .data_paths(root, apps)
            .into_iter()
            .map(|p| read_data(client, p).boxed());
        let categories = watching
            .category_paths(root)
            .into_iter()
            .map(|p| read_children(client, p).boxed());
        let reads = futures::future::join_all(data.chain(categories)).await;
        let mut nodes = Vec::new();
        let mut watchers = Vec::new();
        let mut appeared = false;
        for read in reads {
            match read? {
                Read::Data(path, text, watcher) => {
                    watchers.push(watcher);
                    if let Some(text) = text {
                        nodes.push(RuleNode { path, text });
                    }
                }
                Read::Children(category, children, watcher) => {
                    watchers.push(watcher);
                    nodes.extend(children.into_iter().map(|child| RuleNode {
                        path: format!("{category}/{child}"),
                        text: decode(&child),
                    }));
                }
                Read::Absent(watcher, created) => {
                    watchers.push(watcher);
                    appeared |= created;
                }
            }
        }
        if !appeared {
            nodes.sort();
            return Ok((nodes, watchers));
        }
        // A node was created between its two requests: read again at once.
    }
    Err(Error::ConnectionLoss)
}

/// A legacy rule node's name, decoded as Java's `URLDecoder` does (`+` is a space).
fn decode(name: &str) -> String {
    let spaced = name.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watches_dubbos_nodes() {
        let consumer = Url::parse(
            "consumer://10.0.0.1/org.example.Greeter?application=shop&version=1.0.0&interface=org.example.Greeter",
        )
        .unwrap();
        let watching = Watching::of(&consumer).unwrap();
        let apps: BTreeSet<String> = ["greeter".to_string()].into();
        assert_eq!(
            watching.data_paths("/dubbo", &apps),
            [
                "/dubbo/config/dubbo/org.example.Greeter:1.0.0:.configurators",
                "/dubbo/config/dubbo/org.example.Greeter:1.0.0:.condition-router",
                "/dubbo/config/dubbo/shop.configurators",
                "/dubbo/config/dubbo/shop.condition-router",
                "/dubbo/config/dubbo/greeter.tag-router",
                "/dubbo/config/dubbo/greeter.configurators",
            ]
        );
        assert_eq!(
            watching.category_paths("/dubbo"),
            [
                "/dubbo/org.example.Greeter/configurators",
                "/dubbo/org.example.Greeter/routers"
            ]
        );
        let grouped = Url::parse("consumer://h/a.B?group=g").unwrap();
        assert_eq!(Watching::of(&grouped).unwrap().service_key, "a.B::g");
    }

    #[test]
    fn legacy_names_decode_as_java_does() {
        // URLEncoder.encode("condition://0.0.0.0/a.B?rule=" + URLEncoder.encode("method = x => host = h"))
        let name = "condition%3A%2F%2F0.0.0.0%2Fa.B%3Frule%3Dmethod%2B%253D%2Bx%2B%253D%253E%2Bhost%2B%253D%2Bh";
        assert_eq!(
            decode(name),
            "condition://0.0.0.0/a.B?rule=method+%3D+x+%3D%3E+host+%3D+h"
        );
    }
}

//! How the ZooKeeper registry reads the children of a `providers` node: the
//! node names, written by any process that can reach ZooKeeper, become the
//! consumer's provider set (`parse_children` in the watcher).
//!
//! Input: lines; the first is the interface watched, the others are node
//! names (UTF-8, lossily).
//!
//! Checked: no panic; every provider kept has a host, a port and the watched
//! interface; the set is sorted by text and free of duplicates; no more
//! providers than nodes; and reading back the node names of the set (what
//! this framework would register for them) gives the same set.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rpc_registry::fuzzing::parse_children;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let interface = lines.next().unwrap_or_default();
    let children: Vec<String> = lines.map(str::to_string).collect();
    let urls = parse_children(interface, &children);
    assert!(urls.len() <= children.len());
    for url in &urls {
        assert!(!url.host().is_empty() && url.port() != 0, "{url}");
        assert_eq!(url.interface(), Some(interface), "{url}");
    }
    let texts: Vec<String> = urls.iter().map(ToString::to_string).collect();
    assert!(texts.windows(2).all(|w| w[0] <= w[1]), "not sorted: {texts:?}");
    assert!(urls.windows(2).all(|w| w[0] != w[1]), "duplicates: {texts:?}");
    let nodes: Vec<String> = urls.iter().map(|u| u.encode()).collect();
    assert_eq!(
        parse_children(interface, &nodes),
        urls,
        "the set changed when read back"
    );
});

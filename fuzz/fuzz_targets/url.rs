//! URL parsing: `Url::parse` (registry addresses, cache files, configuration)
//! and `Url::decode` (registry node names written by any implementation).
//!
//! Input: any bytes, read as UTF-8 (lossily).
//!
//! Checked: no panic; every URL either reads back unchanged from its text
//! (`parse(to_string(u)) == u`) and from its node name
//! (`decode(encode(u)) == u`), and a node name is one ZooKeeper path segment
//! (no `/`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use rpc_core::Url;

fn round_trips(url: &Url) {
    let text = url.to_string();
    assert_eq!(Url::parse(&text).as_ref(), Ok(url), "text {text:?}");
    let node = url.encode();
    assert!(!node.contains('/'), "node name {node:?} has a `/`");
    assert_eq!(Url::decode(&node).as_ref(), Ok(url), "node name {node:?}");
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(url) = Url::parse(&text) {
        round_trips(&url);
    }
    if let Ok(url) = Url::decode(&text) {
        round_trips(&url);
    }
});

//! Entry points for the fuzz targets in `fuzz/` (cargo feature `fuzzing`, off
//! by default): the ZooKeeper registry's readers of outside input, reachable
//! without a ZooKeeper. Thin wrappers only; not a public API.

use std::collections::{BTreeMap, HashSet};

use rpc_core::Url;

/// The providers of `interface` that the registry keeps from the node names
/// `children` (see the watcher): the rest are skipped, never an error.
pub fn parse_children(interface: &str, children: &[String]) -> Vec<Url> {
    super::watch::parse_children(interface, children, &mut HashSet::new())
}

/// The entries of a registry cache file, or why the file is unusable.
pub fn parse_cache_entries(bytes: &[u8]) -> Result<BTreeMap<String, Vec<String>>, String> {
    super::cache::parse_entries(bytes)
}

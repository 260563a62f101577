//! The local cache file: the last provider sets, so a consumer can start while
//! ZooKeeper is down.
//!
//! A JSON object mapping each interface to its provider URLs, rewritten
//! (write to a temporary file, then rename) on every change.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use rpc_core::Url;

use super::lock;

#[derive(Debug)]
pub(super) struct CacheFile {
    path: PathBuf,
    entries: Mutex<BTreeMap<String, Vec<String>>>,
}

impl CacheFile {
    /// Reads `path`; a missing or unreadable file starts empty (with a warning when unreadable).
    pub(super) fn load(path: PathBuf) -> CacheFile {
        let entries = match std::fs::read(&path) {
            Ok(bytes) => parse_entries(&bytes).unwrap_or_else(|e| {
                tracing::warn!(path = %path.display(), error = %e, "ignoring an unreadable registry cache file");
                BTreeMap::new()
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read the registry cache file");
                BTreeMap::new()
            }
        };
        CacheFile {
            path,
            entries: Mutex::new(entries),
        }
    }

    /// The cached providers of `interface` (unparsable entries skipped).
    pub(super) fn get(&self, interface: &str) -> Vec<Url> {
        lock(&self.entries)
            .get(interface)
            .map(|urls| urls.iter().filter_map(|u| Url::parse(u).ok()).collect())
            .unwrap_or_default()
    }

    /// Records the providers of `interface` and rewrites the file if they changed.
    pub(super) fn put(&self, interface: &str, urls: &[Url]) {
        let text: Vec<String> = urls.iter().map(ToString::to_string).collect();
        let snapshot = {
            let mut entries = lock(&self.entries);
            if entries.get(interface) == Some(&text) {
                return;
            }
            entries.insert(interface.to_string(), text);
            entries.clone()
        };
        if let Err(e) = self.write(&snapshot) {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot write the registry cache file");
        }
    }

    fn write(&self, entries: &BTreeMap<String, Vec<String>>) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(entries).map_err(std::io::Error::other)?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = self.path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, json)?;
        std::fs::rename(&tmp, &self.path)
    }
}

/// Reads the contents of a cache file: a JSON object mapping interfaces to
/// provider URL strings. Anything else is an error saying why, so the caller
/// can start empty instead of trusting a damaged file.
pub(super) fn parse_entries(bytes: &[u8]) -> Result<BTreeMap<String, Vec<String>>, String> {
    serde_json::from_slice(bytes).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_a_round_trip_and_garbage() {
        let dir = std::env::temp_dir().join(format!("rpc-cache-test-{}", std::process::id()));
        let path = dir.join("registry.json");
        let cache = CacheFile::load(path.clone());
        assert!(cache.get("a.B").is_empty());
        let url = Url::parse("rpc://127.0.0.1:1/a.B?version=1.0.0").unwrap();
        cache.put("a.B", std::slice::from_ref(&url));
        assert_eq!(CacheFile::load(path.clone()).get("a.B"), vec![url]);
        std::fs::write(&path, b"{ not json").unwrap();
        assert!(CacheFile::load(path).get("a.B").is_empty());
        let _ = std::fs::remove_dir_all(dir);
    }
}

//! The ZooKeeper registry's local cache file, read at start-up: whatever is
//! on disk (a crash mid-write, another version, a hand edit) goes through
//! `parse_entries`, then each URL through `Url::parse`.
//!
//! Input: the file's bytes.
//!
//! Checked: no panic; a file that reads is written back (as the cache writes
//! it) and read again to the same entries; its URLs parse or are skipped.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rpc_core::Url;
use rpc_registry::fuzzing::parse_cache_entries;

fuzz_target!(|data: &[u8]| {
    let Ok(entries) = parse_cache_entries(data) else { return };
    let written = serde_json::to_vec_pretty(&entries).expect("entries serialize");
    assert_eq!(parse_cache_entries(&written).as_ref(), Ok(&entries));
    for url in entries.values().flatten() {
        let _ = Url::parse(url);
    }
});

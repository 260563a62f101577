//! The local cache file: the last provider sets, so a consumer can start while
//! ZooKeeper is down.
//!
//! A JSON object mapping each interface to its provider URLs. Guarantees:
//! * **Never torn.** One writer thread per cache owns the file: it writes a
//!   whole snapshot to a temporary file of a name no other writer uses
//!   (`.{name}.{pid}.{n}.tmp`, same directory), flushes it to disk, renames it
//!   over the file (atomic) and flushes the directory, so after a crash the
//!   file holds one complete snapshot, old or new, never a mix.
//! * **The newest wins.** The writer always writes the current contents, read
//!   when it starts a write; changes arriving during a write are coalesced
//!   into the next one. An older snapshot is never written after a newer one.
//! * **Callers never wait for the disk.** [`CacheFile::put`] updates memory and
//!   wakes the writer; no file I/O happens on the caller's thread (a runtime
//!   worker, usually). Loading, once at start, is the only read.
//! * **One file, one cache per process.** Registries of one process naming the
//!   same file share one [`CacheFile`] ([`CacheFile::open`]), so each keeps
//!   the interfaces the others follow instead of overwriting them. (Processes
//!   sharing a file still overwrite each other: give each its own.)
//! * **A bad file costs nothing but the cache.** A corrupt or unreadable file
//!   is a warning and an empty cache, never a failed start; the next change
//!   replaces it. A file that cannot be written is a warning per attempt.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};

use rpc_core::Url;

use super::lock;

/// Interface → provider URLs, as stored.
type Entries = BTreeMap<String, Vec<String>>;

/// Where the writer thread puts a serialized snapshot.
type Sink = Box<dyn FnMut(&[u8]) -> std::io::Result<()> + Send>;

/// Parses the contents of a cache file.
///
/// Pure: no I/O, no panics, whatever `bytes` holds. An error says why the
/// bytes are not a JSON object of interface names to lists of URL strings.
/// (Entries that are strings but not URLs are skipped later, by [`CacheFile::get`].)
pub(super) fn parse_entries(bytes: &[u8]) -> Result<BTreeMap<String, Vec<String>>, String> {
    serde_json::from_slice(bytes)
        .map_err(|e| format!("not a JSON object of interface names to provider URL lists: {e}"))
}

#[derive(Debug)]
pub(super) struct CacheFile {
    /// For messages.
    path: PathBuf,
    state: Arc<State>,
}

/// What callers and the writer thread share.
#[derive(Debug, Default)]
struct State {
    inner: Mutex<Inner>,
    /// Wakes the writer: something changed, or the cache is closed.
    wake: Condvar,
    /// Signals a finished write (for [`CacheFile::flush`]).
    written: Condvar,
}

#[derive(Debug, Default)]
struct Inner {
    entries: Entries,
    /// Counts changes.
    changes: u64,
    /// The change count the last finished write (successful or not) covered.
    written: u64,
    /// No more changes come: the writer finishes what is pending and exits.
    closed: bool,
}

impl CacheFile {
    /// The cache of `path` for this process: the one already open, if a
    /// registry of this process uses it, else [`load`](Self::load)ed now.
    pub(super) fn open(path: PathBuf) -> Arc<CacheFile> {
        static OPEN: Mutex<BTreeMap<PathBuf, Weak<CacheFile>>> = Mutex::new(BTreeMap::new());
        let key = std::path::absolute(&path).unwrap_or_else(|_| path.clone());
        let mut open = lock(&OPEN);
        open.retain(|_, cache| cache.strong_count() > 0);
        if let Some(cache) = open.get(&key).and_then(Weak::upgrade) {
            return cache;
        }
        let cache = Arc::new(CacheFile::load(path));
        open.insert(key, Arc::downgrade(&cache));
        cache
    }

    /// Reads `path` and starts its writer. A missing file is an empty cache;
    /// an unreadable or corrupt one is an empty cache and a warning.
    pub(super) fn load(path: PathBuf) -> CacheFile {
        let entries = match std::fs::read(&path) {
            Ok(bytes) => parse_entries(&bytes).unwrap_or_else(|reason| {
                tracing::warn!(path = %path.display(), %reason, "ignoring the registry cache file: starting with an empty cache");
                Entries::new()
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Entries::new(),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read the registry cache file: starting with an empty cache");
                Entries::new()
            }
        };
        let target = path.clone();
        CacheFile::with_sink(path, entries, Box::new(move |json| write_atomically(&target, json)))
    }

    /// A cache holding `entries` whose writer thread hands every snapshot to `sink`.
    fn with_sink(path: PathBuf, entries: Entries, sink: Sink) -> CacheFile {
        let state = Arc::new(State {
            inner: Mutex::new(Inner {
                entries,
                ..Inner::default()
            }),
            ..State::default()
        });
        let writer_state = state.clone();
        let label = path.clone();
        let spawned = std::thread::Builder::new()
            .name("rpc-registry-cache".into())
            .spawn(move || write_until_closed(&writer_state, &label, sink));
        if let Err(e) = spawned {
            tracing::warn!(path = %path.display(), error = %e, "cannot start the registry cache writer: the file will not be updated");
        }
        CacheFile { path, state }
    }

    /// The cached providers of `interface` (unparsable entries skipped).
    pub(super) fn get(&self, interface: &str) -> Vec<Url> {
        lock(&self.state.inner)
            .entries
            .get(interface)
            .map(|urls| urls.iter().filter_map(|u| Url::parse(u).ok()).collect())
            .unwrap_or_default()
    }

    /// Records the providers of `interface`; if they changed, the writer
    /// rewrites the file soon. Never touches the file itself.
    pub(super) fn put(&self, interface: &str, urls: &[Url]) {
        let text: Vec<String> = urls.iter().map(ToString::to_string).collect();
        let mut inner = lock(&self.state.inner);
        if inner.entries.get(interface) == Some(&text) {
            return;
        }
        inner.entries.insert(interface.to_string(), text);
        inner.changes += 1;
        drop(inner);
        self.state.wake.notify_one();
    }

    /// Waits (up to `limit`) until every change made so far has been written
    /// (or its write has failed). Whether it was.
    #[cfg(test)]
    fn flush(&self, limit: std::time::Duration) -> bool {
        let inner = lock(&self.state.inner);
        let target = inner.changes;
        let (inner, _) = self
            .state
            .written
            .wait_timeout_while(inner, limit, |inner| inner.written < target)
            .unwrap_or_else(|p| p.into_inner());
        inner.written >= target
    }
}

impl Drop for CacheFile {
    fn drop(&mut self) {
        lock(&self.state.inner).closed = true;
        self.state.wake.notify_one();
        tracing::trace!(path = %self.path.display(), "registry cache closed");
    }
}

/// The writer thread: waits for changes and writes the newest contents, until
/// the cache is closed and nothing is pending.
fn write_until_closed(state: &State, path: &Path, mut sink: Sink) {
    let mut inner = lock(&state.inner);
    loop {
        if inner.written == inner.changes {
            if inner.closed {
                return;
            }
            inner = state.wake.wait(inner).unwrap_or_else(|p| p.into_inner());
            continue;
        }
        let covers = inner.changes;
        let snapshot = inner.entries.clone();
        drop(inner);
        let written = serde_json::to_vec_pretty(&snapshot)
            .map_err(std::io::Error::other)
            .and_then(|json| sink(&json));
        if let Err(e) = written {
            tracing::warn!(path = %path.display(), error = %e, "cannot write the registry cache file");
        }
        inner = lock(&state.inner);
        inner.written = covers;
        state.written.notify_all();
    }
}

/// Replaces `path` with `contents` atomically and durably: a uniquely named
/// temporary file in the same directory, written and synced, renamed over
/// `path`, then the directory synced so the rename survives a crash.
fn write_atomically(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "registry-cache".into());
    let tmp = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
        return written;
    }
    // The rename is in the directory: sync it too (where directories can be opened).
    if let Ok(dir) = std::fs::File::open(dir) {
        dir.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;

    const LIMIT: Duration = Duration::from_secs(20);

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("rpc-cache-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn urls(interface: &str, generation: usize) -> Vec<Url> {
        (0..=generation % 5)
            .map(|p| {
                Url::parse(&format!(
                    "rpc://127.0.0.1:{}/{interface}?generation={generation}",
                    1000 + p
                ))
                .unwrap()
            })
            .collect()
    }

    #[test]
    fn survives_a_round_trip() {
        let dir = temp_dir("round-trip");
        let path = dir.join("registry.json");
        let cache = CacheFile::load(path.clone());
        assert!(cache.get("a.B").is_empty());
        let url = Url::parse("rpc://127.0.0.1:1/a.B?version=1.0.0").unwrap();
        cache.put("a.B", std::slice::from_ref(&url));
        assert!(cache.flush(LIMIT));
        assert_eq!(CacheFile::load(path.clone()).get("a.B"), vec![url]);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_corrupt_file_is_an_empty_cache_and_gets_replaced() {
        let dir = temp_dir("corrupt");
        let path = dir.join("registry.json");
        std::fs::create_dir_all(&dir).unwrap();
        for garbage in [
            &b"{ not json"[..],
            b"",
            b"[1, 2]",
            b"{\"a.B\": \"not a list\"}",
            b"\xff\xfe\x00",
        ] {
            std::fs::write(&path, garbage).unwrap();
            let cache = CacheFile::load(path.clone());
            assert!(cache.get("a.B").is_empty());
            let url = Url::parse("rpc://127.0.0.1:1/a.B").unwrap();
            cache.put("a.B", std::slice::from_ref(&url));
            assert!(cache.flush(LIMIT));
            assert_eq!(CacheFile::load(path.clone()).get("a.B"), vec![url]);
        }
        // A directory where the file should be: unreadable, unwritable, still no failure.
        let cache = CacheFile::load(dir.clone());
        cache.put("a.B", &urls("a.B", 1));
        assert!(cache.flush(LIMIT));
        assert_eq!(cache.get("a.B"), urls("a.B", 1), "memory still serves");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn parse_entries_explains_what_it_refuses() {
        let entries = parse_entries(br#"{"a.B": ["rpc://h:1/a.B", "junk"]}"#).unwrap();
        assert_eq!(entries["a.B"], ["rpc://h:1/a.B", "junk"]);
        let err = parse_entries(b"{\"a.B\": 3}").unwrap_err();
        assert!(err.contains("not a JSON object of interface names"), "{err}");
        assert!(
            parse_entries(&b"["[..].repeat(100_000)).is_err(),
            "deep nesting is refused, not a stack overflow"
        );
    }

    #[test]
    fn caches_of_one_file_are_one_cache() {
        let dir = temp_dir("shared");
        let path = dir.join("registry.json");
        let (first, second) = (
            CacheFile::open(path.clone()),
            CacheFile::open(dir.join(".").join("registry.json")),
        );
        first.put("a.First", &urls("a.First", 1));
        second.put("a.Second", &urls("a.Second", 2));
        assert!(first.flush(LIMIT) && second.flush(LIMIT));
        let on_disk = parse_entries(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(on_disk.keys().collect::<Vec<_>>(), ["a.First", "a.Second"]);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn concurrent_puts_leave_a_complete_file_with_the_newest_contents() {
        let dir = temp_dir("concurrent");
        let path = dir.join("registry.json");
        for round in 0..20 {
            let cache = Arc::new(CacheFile::load(path.clone()));
            let threads: Vec<_> = (0..8)
                .map(|t| {
                    let cache = cache.clone();
                    std::thread::spawn(move || {
                        for generation in 0..40 {
                            let own = format!("a.Own{t}");
                            cache.put(&own, &urls(&own, generation));
                            cache.put("a.Shared", &urls("a.Shared", t * 100 + generation));
                        }
                    })
                })
                .collect();
            for thread in threads {
                thread.join().unwrap();
            }
            assert!(cache.flush(LIMIT), "round {round}: the writer finished");
            let on_disk = parse_entries(&std::fs::read(&path).unwrap())
                .unwrap_or_else(|e| panic!("round {round}: the file is corrupt: {e}"));
            assert_eq!(
                on_disk,
                lock(&cache.state.inner).entries,
                "round {round}: not the newest"
            );
            for t in 0..8 {
                let own = format!("a.Own{t}");
                let expected: Vec<String> = urls(&own, 39).iter().map(ToString::to_string).collect();
                assert_eq!(on_disk[&own], expected, "round {round}");
            }
            let files: Vec<_> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            assert_eq!(files, ["registry.json"], "round {round}: no temporary file left behind");
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn put_returns_without_file_io_and_the_writer_coalesces_to_the_newest() {
        let (entered_tx, entered) = mpsc::channel::<(std::thread::ThreadId, Vec<u8>)>();
        let (release, released) = mpsc::channel::<()>();
        let sink: Sink = Box::new(move |json| {
            let _ = entered_tx.send((std::thread::current().id(), json.to_vec()));
            // Block like a stalled disk until the test lets the write finish.
            released.recv_timeout(LIMIT).map_err(std::io::Error::other)
        });
        let cache = Arc::new(CacheFile::with_sink(PathBuf::from("sink"), Entries::new(), sink));

        // The first put wakes the writer, whose write then blocks.
        let caller = {
            let cache = cache.clone();
            std::thread::spawn(move || {
                cache.put("a.B", &urls("a.B", 1));
                std::thread::current().id()
            })
        };
        let (writer, first) = entered.recv_timeout(LIMIT).expect("the writer writes");
        let caller = caller.join().unwrap();
        assert_ne!(writer, caller, "the write happened on the caller's thread");
        assert_eq!(parse_entries(&first).unwrap()["a.B"].len(), 2);

        // While the disk is stalled, puts return at once; they coalesce into
        // one write of the newest contents.
        let (done_tx, done) = mpsc::channel();
        {
            let cache = cache.clone();
            std::thread::spawn(move || {
                cache.put("a.B", &urls("a.B", 2));
                cache.put("a.B", &urls("a.B", 3));
                let _ = done_tx.send(());
            });
        }
        done.recv_timeout(LIMIT).expect("puts return while a write is stalled");
        release.send(()).unwrap();
        let (_, second) = entered.recv_timeout(LIMIT).expect("a second write");
        release.send(()).unwrap();
        let expected: Vec<String> = urls("a.B", 3).iter().map(ToString::to_string).collect();
        assert_eq!(parse_entries(&second).unwrap()["a.B"], expected);
        assert!(cache.flush(LIMIT));
        assert!(
            entered.try_recv().is_err(),
            "the intermediate contents were never written"
        );
    }
}

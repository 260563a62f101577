//! The access log (`accesslog`): one record per call, with the caller,
//! service, method, outcome, duration and time.
//!
//! `accesslog=true` (or `default`) makes each record a `tracing` event on
//! target [`TARGET`]; any other value is a file the records are appended to,
//! one line each. A file is written by a thread of its own through a bounded
//! queue: a call never waits for the disk, and when the queue is full the
//! record is dropped and counted, with a warning (the first, then every
//! thousandth), so a slow disk costs records, never latency or memory.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use std::io::Write as _;
use std::sync::mpsc;

use tokio::sync::oneshot;

/// The `tracing` target of `accesslog=true` records.
pub const TARGET: &str = "rpc::accesslog";

/// Records a file's queue holds before new ones are dropped.
const QUEUE: usize = 8192;

/// Where a service's records go.
#[derive(Clone, Debug)]
pub(crate) enum AccessLog {
    /// `tracing` events on [`TARGET`].
    Tracing,
    /// Lines appended to a file.
    File(Arc<FileLog>),
}

/// One call, as recorded.
#[derive(Debug)]
pub(crate) struct Record<'a> {
    pub(crate) caller: &'a str,
    pub(crate) service: &'a str,
    pub(crate) method: &'a str,
    pub(crate) outcome: &'a str,
    pub(crate) duration: Duration,
}

impl AccessLog {
    /// Records `record`, without waiting.
    pub(crate) fn record(&self, record: &Record<'_>) {
        match self {
            AccessLog::Tracing => tracing::info!(
                target: TARGET,
                caller = record.caller,
                service = record.service,
                method = record.method,
                outcome = record.outcome,
                duration_us = record.duration.as_micros() as u64,
                "call"
            ),
            AccessLog::File(file) => file.append(line(SystemTime::now(), record)),
        }
    }
}

/// A record as a line of the file: the UTC time, then `key=value` fields.
fn line(at: SystemTime, record: &Record<'_>) -> String {
    let mut line = timestamp(at);
    let _ = writeln!(
        line,
        " caller={} service={} method={} outcome={} duration_us={}",
        record.caller,
        record.service,
        record.method,
        record.outcome,
        record.duration.as_micros()
    );
    line
}

/// `at` as RFC 3339 UTC with milliseconds: `2026-12-02T05:30:00.123Z`.
fn timestamp(at: SystemTime) -> String {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil-from-days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        since.subsec_millis()
    )
}

enum Message {
    Line(String),
    Flush(oneshot::Sender<()>),
}

/// One access-log file and the task that writes it.
#[derive(Debug)]
pub(crate) struct FileLog {
    path: PathBuf,
    queue: mpsc::SyncSender<Message>,
    dropped: AtomicU64,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Message")
    }
}

impl FileLog {
    /// Starts the writer of `path`. The file is created if absent and
    /// appended to; if it cannot be opened, a warning says so and its records
    /// are discarded. The writer ends when the last handle is dropped.
    fn start(path: PathBuf) -> Arc<FileLog> {
        let (queue, rx) = mpsc::sync_channel(QUEUE);
        let writing = path.clone();
        let spawned = std::thread::Builder::new()
            .name("rpc-accesslog".into())
            .spawn(move || write(&writing, &rx));
        if let Err(e) = spawned {
            tracing::warn!(file = %path.display(), error = %e, "cannot start the access log writer: its records are discarded");
        }
        Arc::new(FileLog {
            path,
            queue,
            dropped: AtomicU64::new(0),
        })
    }

    fn append(&self, line: String) {
        if self.queue.try_send(Message::Line(line)).is_err() {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped == 1 || dropped % 1000 == 0 {
                tracing::warn!(
                    file = %self.path.display(), dropped,
                    "access log queue full (the disk is slower than the calls): records dropped"
                );
            }
        }
    }

    /// Records dropped because the queue was full.
    #[cfg(test)]
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Waits until every record queued before now is written out.
    async fn flush(&self) {
        let (done, written) = oneshot::channel();
        let queue = self.queue.clone();
        // The queue may be full: wait for room off the runtime's threads.
        let sent = tokio::task::spawn_blocking(move || queue.send(Message::Flush(done)).is_ok()).await;
        if matches!(sent, Ok(true)) {
            let _ = written.await;
        }
    }
}

/// Writes the lines of `rx` to `path`, flushing whenever the queue is empty.
fn write(path: &std::path::Path, rx: &mpsc::Receiver<Message>) {
    let file = std::fs::OpenOptions::new().create(true).append(true).open(path);
    let mut out = match file {
        Ok(file) => Some(std::io::BufWriter::new(file)),
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "cannot open the access log: its records are discarded");
            None
        }
    };
    let mut failed = false;
    while let Ok(first) = rx.recv() {
        // Everything queued now, then one flush.
        let mut flushed = Vec::new();
        let mut result = Ok(());
        for message in std::iter::once(first).chain(std::iter::from_fn(|| rx.try_recv().ok())) {
            match message {
                Message::Line(line) => {
                    if let Some(writer) = out.as_mut()
                        && result.is_ok()
                    {
                        result = writer.write_all(line.as_bytes());
                    }
                }
                Message::Flush(done) => flushed.push(done),
            }
        }
        if let Some(writer) = out.as_mut()
            && result.is_ok()
        {
            result = writer.flush();
        }
        for done in flushed {
            let _ = done.send(());
        }
        match result {
            Err(e) if !failed => {
                failed = true;
                tracing::warn!(file = %path.display(), error = %e, "cannot write the access log");
            }
            Err(_) => {}
            Ok(()) => failed = false,
        }
    }
}

/// A provider's access-log files, one writer per path however many
/// services log to it.
#[derive(Clone, Debug, Default)]
pub(crate) struct AccessLogs(Arc<Mutex<HashMap<PathBuf, Arc<FileLog>>>>);

impl AccessLogs {
    /// The log `value` (an `accesslog` parameter) names: none for `false`
    /// or empty, `tracing` for `true` or `default`, else a file.
    pub(crate) fn of(&self, value: &str) -> Option<AccessLog> {
        match value.trim() {
            "" | "false" => None,
            "true" | "default" => Some(AccessLog::Tracing),
            path => {
                let path = PathBuf::from(path);
                let mut files = self.0.lock().unwrap_or_else(PoisonError::into_inner);
                let file = files.entry(path.clone()).or_insert_with(|| FileLog::start(path));
                Some(AccessLog::File(file.clone()))
            }
        }
    }

    /// Waits until every record queued so far is in its file.
    pub(crate) async fn flush(&self) {
        let files: Vec<Arc<FileLog>> = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        futures::future::join_all(files.iter().map(|f| f.flush())).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn record() -> Record<'static> {
        Record {
            caller: "127.0.0.1:5000",
            service: "org.example.Greeter:1.0.0",
            method: "sayHello",
            outcome: "ok",
            duration: Duration::from_micros(1500),
        }
    }

    #[test]
    fn a_line_has_the_time_and_every_field() {
        let at = UNIX_EPOCH + Duration::from_millis(1_796_189_400_123);
        assert_eq!(
            line(at, &record()),
            "2026-12-02T05:30:00.123Z caller=127.0.0.1:5000 service=org.example.Greeter:1.0.0 \
             method=sayHello outcome=ok duration_us=1500\n"
        );
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        // A leap day.
        assert_eq!(
            timestamp(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00.000Z"
        );
    }

    #[tokio::test]
    async fn a_file_gets_one_line_per_record_and_one_writer_per_path() {
        let path = std::env::temp_dir().join(format!("rpc-accesslog-unit-{}.log", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let logs = AccessLogs::default();
        let a = logs.of(path.to_str().unwrap()).unwrap();
        let b = logs.of(path.to_str().unwrap()).unwrap();
        assert_eq!(logs.0.lock().unwrap().len(), 1);
        for _ in 0..3 {
            a.record(&record());
        }
        b.record(&record());
        logs.flush().await;
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 4, "{text}");
        assert!(
            text.lines().all(|l| l.contains(" method=sayHello outcome=ok ")),
            "{text}"
        );
        let _ = std::fs::remove_file(&path);
        assert!(matches!(logs.of("true"), Some(AccessLog::Tracing)));
        assert!(logs.of("false").is_none());
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts_instead_of_waiting() {
        let (queue, _rx) = mpsc::sync_channel(1);
        let file = FileLog {
            path: PathBuf::from("/nowhere"),
            queue,
            dropped: AtomicU64::new(0),
        };
        for _ in 0..5 {
            file.append("x\n".into());
        }
        assert_eq!(file.dropped(), 4);
    }
}

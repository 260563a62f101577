//! [`TraceFile`]: a `tracing` layer appending finished spans to a file as
//! JSON lines, switched on by an environment variable: a span exporter for
//! tests and for a look at one process's calls without a collector.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Subscriber, warn};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// The environment variable naming the file [`TraceFile::from_env`] appends to.
pub const TRACE_FILE_ENV: &str = "RPC_TRACE_FILE";

/// Appends every finished span, one JSON object a line, to a file:
///
/// ```json
/// {"name":"rpc.call","trace_id":"…","span_id":"…","parent_id":"…","fields":{"service":"…","method":"…","outcome":"ok",…}}
/// ```
///
/// `trace_id`, `span_id` and `parent_id` are those of the W3C trace context
/// (the span's fields of the same names; `null` when it has none, as spans
/// of other code). Each line is written and flushed when its span closes, so a
/// process killed afterwards loses none.
#[derive(Debug)]
pub struct TraceFile {
    file: Mutex<File>,
}

impl TraceFile {
    /// Appends to `path` (created when missing).
    pub fn create(path: impl AsRef<Path>) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        Ok(TraceFile { file: Mutex::new(file) })
    }

    /// A layer appending to the file `$RPC_TRACE_FILE` names; `None` when it
    /// is unset or empty, or the file cannot be opened (said on stderr:
    /// no subscriber is installed yet to say it).
    pub fn from_env() -> Option<Self> {
        let path = std::env::var_os(TRACE_FILE_ENV).filter(|p| !p.is_empty())?;
        match Self::create(&path) {
            Ok(layer) => Some(layer),
            Err(e) => {
                eprintln!(
                    "{TRACE_FILE_ENV}={}: cannot open the span file: {e}; spans are not written",
                    Path::new(&path).display()
                );
                None
            }
        }
    }
}

/// The fields of a span, as recorded so far.
#[derive(Default)]
struct Fields(BTreeMap<String, Value>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().into(), Value::String(format!("{value:?}")));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), Value::String(value.into()));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), Value::from(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), Value::from(value));
    }
}

impl<S> Layer<S> for TraceFile
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        span.extensions_mut().insert(fields);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        if let Some(fields) = span.extensions_mut().get_mut::<Fields>() {
            values.record(fields);
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let mut fields = span
            .extensions_mut()
            .remove::<Fields>()
            .map(|f| f.0)
            .unwrap_or_default();
        let mut line = Map::new();
        line.insert("name".into(), Value::String(span.name().into()));
        for key in ["trace_id", "span_id", "parent_id"] {
            line.insert(key.into(), fields.remove(key).unwrap_or(Value::Null));
        }
        line.insert("fields".into(), Value::Object(fields.into_iter().collect()));
        let mut text = Value::Object(line).to_string();
        text.push('\n');
        let mut file = self.file.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Err(e) = file.write_all(text.as_bytes()).and_then(|()| file.flush()) {
            drop(file);
            warn!(error = %e, "cannot append a span to the span file ({TRACE_FILE_ENV})");
        }
    }
}

//! Traces across processes, and logs without terminal colours.
//!
//! Three processes (consumer → provider `chain` → provider `greeter-provider`)
//! each write their finished spans to a file of their own
//! (`RPC_TRACE_FILE`); merged, every call is one trace with the right
//! parent links. And an example's log on a pipe carries no colour codes.

use std::path::Path;
use std::time::Duration;

use nix::sys::signal::Signal;
use rpc_tests::ExampleProcess;
use serde_json::Value;

/// The spans a process wrote, one JSON object a line.
fn spans(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("bad span line {line:?}: {e}")))
        .collect()
}

fn field<'a>(span: &'a Value, key: &str) -> &'a str {
    span[key]
        .as_str()
        .unwrap_or_else(|| panic!("span without `{key}`: {span}"))
}

/// The one span named `name` in `spans` whose parent is `parent`.
fn child<'a>(spans: &'a [Value], name: &str, parent: &Value) -> &'a Value {
    let found: Vec<&Value> = spans
        .iter()
        .filter(|s| s["name"] == name && s["parent_id"] == parent["span_id"])
        .collect();
    match found.as_slice() {
        [one] => one,
        _ => panic!("expected one `{name}` span under {parent}, found {found:?}\nin {spans:?}"),
    }
}

fn listening(process: &mut ExampleProcess) -> String {
    let (_, line) = process.wait_for_line_from(0, "listening on ", Duration::from_secs(30));
    line.trim_start_matches("listening on ").to_string()
}

#[test]
fn a_call_through_three_processes_is_one_trace_with_parent_links() {
    let dir = std::env::temp_dir().join(format!("rpc-traces-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let file = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let (consumer_file, a_file, b_file) = (file("consumer.jsonl"), file("a.jsonl"), file("b.jsonl"));

    let mut b = ExampleProcess::start_with_env(
        "greeter-provider",
        &["--port", "0", "--tag", "b"],
        "warn",
        &[("RPC_TRACE_FILE", &b_file)],
    );
    let b_url = listening(&mut b);
    let mut a = ExampleProcess::start_with_env(
        "chain",
        &["--port", "0", "--next", &b_url, "--tag", "a"],
        "warn",
        &[("RPC_TRACE_FILE", &a_file)],
    );
    let a_url = listening(&mut a);
    let consumer = ExampleProcess::start_with_env(
        "greeter-consumer",
        &["--registry", &a_url, "--calls", "3", "-v"],
        "warn",
        &[("RPC_TRACE_FILE", &consumer_file)],
    );
    let output = consumer.wait(Duration::from_secs(30));
    assert_eq!(output.counts(), (3, 0), "{output:?}");
    assert_eq!(output.count_lines("from b via a"), 3, "{output:?}");
    // Spans are written as they close: the providers' are all there once
    // the consumer has its answers and the providers stop.
    for process in [a, b] {
        process.signal(Signal::SIGTERM);
        let stopped = process.wait(Duration::from_secs(15));
        assert_eq!(stopped.code, Some(0), "{stopped:?}");
    }

    let consumer_spans = spans(Path::new(&consumer_file));
    let a_spans = spans(Path::new(&a_file));
    let b_spans = spans(Path::new(&b_file));
    let roots: Vec<&Value> = consumer_spans.iter().filter(|s| s["name"] == "rpc.call").collect();
    assert_eq!(roots.len(), 3, "{consumer_spans:?}");
    let mut traces = std::collections::HashSet::new();
    for root in roots {
        assert!(
            root["parent_id"].is_null(),
            "the consumer's call starts the trace: {root}"
        );
        assert_eq!(root["fields"]["outcome"], "ok", "{root}");
        assert_eq!(root["fields"]["attempts"], 1, "{root}");
        assert_eq!(root["fields"]["method"], "sayHello", "{root}");
        let trace = field(root, "trace_id");
        assert_eq!(trace.len(), 32, "{root}");
        assert!(traces.insert(trace.to_string()), "each call is a trace of its own");
        // consumer call → A serves it → A calls B → B serves it.
        let a_serve = child(&a_spans, "rpc.serve", root);
        let a_call = child(&a_spans, "rpc.call", a_serve);
        let b_serve = child(&b_spans, "rpc.serve", a_call);
        for span in [a_serve, a_call, b_serve] {
            assert_eq!(
                field(span, "trace_id"),
                trace,
                "one trace id across the processes: {span}"
            );
            assert_eq!(span["fields"]["outcome"], "ok", "{span}");
        }
        assert_eq!(
            format!("rpc://{}", field(&a_call["fields"], "provider")),
            b_url,
            "A's call names the provider it picked: {a_call}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_examples_log_on_a_pipe_has_no_colour_codes() {
    // At `info`, the provider logs its registration: there are lines to colour.
    let mut provider = ExampleProcess::start(
        "greeter-provider",
        &["--port", "0", "--registry", "memory://colours"],
        "info",
    );
    listening(&mut provider);
    provider.signal(Signal::SIGTERM);
    let output = provider.wait(Duration::from_secs(15));
    assert!(
        output.stderr.contains("INFO"),
        "expected log lines: {:?}",
        output.stderr
    );
    assert!(
        !output.stderr.contains("\x1b["),
        "colour codes in a log written to a pipe: {:?}",
        output.stderr
    );
}

/// The trace context reaches the provider on each of our protocols: as an
/// attachment on `rpc`, as HTTP headers on `tri`; the provider's span is a
/// child of the consumer's.
#[tokio::test(flavor = "current_thread")]
async fn the_trace_context_travels_on_rpc_and_tri() {
    use tracing_subscriber::layer::SubscriberExt;

    for protocol in ["rpc", "tri"] {
        let path = std::env::temp_dir().join(format!("rpc-trace-{protocol}-{}.jsonl", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let subscriber = tracing_subscriber::registry().with(rpc::observe::TraceFile::create(&path).unwrap());
        // This thread runs both sides (a current-thread runtime).
        let _default = tracing::subscriber::set_default(subscriber);
        let provider = rpc::Provider::builder()
            .protocol(protocol, 0)
            .serve(rpc_examples::GreeterServer::new(rpc_examples::GreeterImpl::new(None)))
            .start()
            .await
            .unwrap();
        let address = provider.local_addr(protocol).unwrap();
        let consumer = rpc::Consumer::builder()
            .registry(format!("{protocol}://{address}"))
            .build()
            .await
            .unwrap();
        let greeter: rpc_examples::GreeterClient = consumer
            .reference::<rpc_examples::GreeterClient>()
            .protocol(Some(protocol))
            .build()
            .await
            .unwrap();
        assert_eq!(greeter.say_hello("trace".into()).await.unwrap(), "Hello, trace");
        provider.shutdown().await;
        let spans = spans(&path);
        let call = spans
            .iter()
            .find(|s| s["name"] == "rpc.call")
            .unwrap_or_else(|| panic!("{protocol}: no rpc.call span in {spans:?}"));
        let serve = child(&spans, "rpc.serve", call);
        assert_eq!(field(serve, "trace_id"), field(call, "trace_id"), "{protocol}");
        assert!(call["parent_id"].is_null(), "{protocol}: {call}");
        let _ = std::fs::remove_file(&path);
    }
}

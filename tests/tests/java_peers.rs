//! The Java Apache Dubbo peers (`tests/java/`, see `rpc_tests::java`) against
//! a real ZooKeeper: the peers talk to each other over `dubbo://` and `tri://`,
//! our ZooKeeper registry reads the URLs a real Java provider registers and
//! sees them leave, and the bytes of Java's calls are recorded for the Hessian2
//! codec (`tests/java/captures/`).
//!
//! Every test runs in a network namespace of its own (`rpc_tests::netns`):
//! Java Dubbo will not use a loopback address, so the peers use the
//! namespace's `10.77.0.1`, never this machine's network.
//!
//! Needs the peers built by `tests/java/build.sh` (`./scripts/test.sh` builds
//! them); without them every test here fails with that instruction.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use rpc::Url;
use rpc::registry::{ProviderSet, Registry, Subscription, ZookeeperRegistry};
use rpc_tests::capture::{DubboFrame, RecordingProxy, dubbo_frames, http2_frames};
use rpc_tests::free_port;
use rpc_tests::java::JavaPeer;
use rpc_tests::netns;
use rpc_tests::zk::ZooKeeper;

const GREETER: &str = "org.example.Greeter";
const METHODS: [&str; 6] = ["echoList", "echoMap", "echoNullable", "placeOrder", "sayHello", "sleep"];
/// How long a consumer may take for its calls once started (one waits 1.5 s).
const CALLS_TIMEOUT: Duration = Duration::from_secs(60);

/// Every call case with what the Java provider answers, except the timeout.
const CASES: &[(&str, &str)] = &[
    ("hello world", "ok Hello, world from java"),
    ("order apple 3 red,big", "ok OrderId{id=3002}"),
    (
        "order apple 0",
        "err org.example.OrderRejected: quantity must be positive, got 0 for apple",
    ),
    ("sleep 10", "ok void"),
    ("list a,b", "ok [a, b]"),
    ("list", "ok []"),
    ("map k=1,j=2", "ok {j=2, k=1}"),
    ("nullable -", "ok null"),
    ("nullable x", "ok x"),
];

fn consumer_url() -> Url {
    Url::new("consumer", "127.0.0.1", 0)
        .with_path(GREETER)
        .with_param("side", "consumer")
}

/// The next provider set of `sub` that satisfies `done`, waiting at most 20 s.
async fn next_matching(sub: &mut Subscription, what: &str, done: impl Fn(&ProviderSet) -> bool) -> ProviderSet {
    let current = sub.current();
    if done(&current) {
        return current;
    }
    tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(set) = sub.next().await {
            if done(&set) {
                return set;
            }
        }
        panic!("the subscription ended before {what}");
    })
    .await
    .unwrap_or_else(|_| panic!("no provider set with {what} within 20 s; now: {:?}", sub.current()))
}

/// The Java consumer calls the Java provider through the test ZooKeeper over
/// both protocols, and every case gives its expected line: this proves the
/// peers (and so the expectations other tests hold our side to).
#[test]
fn java_consumer_calls_java_provider_over_dubbo_and_tri() {
    let Some(_net) = netns::isolate() else { return };
    let zk = ZooKeeper::start();
    let _provider = JavaPeer::provider(&zk.url(), free_port(), free_port(), &[]);
    let mut calls: Vec<&str> = CASES.iter().map(|(call, _)| *call).collect();
    calls.push("sleep 1500");
    // dubbo: one consumer run over the whole script.
    let results = JavaPeer::run_consumer(
        &["--registry", &zk.url(), "--protocol", "dubbo", "--timeout", "1000"],
        &calls,
        CALLS_TIMEOUT,
    );
    check_results("dubbo", &results);
    // tri: an interactive consumer, one call at a time.
    let mut consumer = JavaPeer::consumer(&["--registry", &zk.url(), "--protocol", "tri", "--timeout", "1000"]);
    let results: Vec<String> = calls.iter().map(|call| consumer.call(call, CALLS_TIMEOUT)).collect();
    check_results("tri", &results);
}

/// `results` are the answers to [`CASES`] then to `sleep 1500` with a 1 s timeout.
fn check_results(protocol: &str, results: &[String]) {
    assert_eq!(results.len(), CASES.len() + 1, "{protocol}: {results:?}");
    for ((call, expected), result) in CASES.iter().zip(results) {
        assert_eq!(result, expected, "{protocol}: `{call}`");
    }
    let timeout = &results[CASES.len()];
    assert!(
        timeout.starts_with("err org.apache.dubbo.rpc.RpcException: ") && timeout.contains("timeout"),
        "{protocol}: `sleep 1500` with a 1000 ms timeout: {timeout}"
    );
    // The provider found in ZooKeeper was the one of the chosen protocol.
    assert!(timeout.contains(&format!("{protocol}://")), "{protocol}: {timeout}");
}

/// How the Java consumer reports a version no provider serves: at start
/// (`failed`, exit 1) by default; per call with `--check false`; and at a
/// direct URL, as the Java provider decides (see below: the two protocols differ).
#[test]
fn java_consumer_reports_a_wrong_version() {
    let Some(_net) = netns::isolate() else { return };
    let zk = ZooKeeper::start();
    let provider = JavaPeer::provider(&zk.url(), free_port(), free_port(), &[]);
    let registry = zk.url();

    let rpc_tests::java::Output { code, stdout, stderr } =
        JavaPeer::spawn("GreeterConsumer", &["--registry", &registry, "--version", "2.0.0"])
            .wait(Duration::from_secs(90));
    assert_eq!(code, Some(1), "stdout: {stdout:?}\nstderr: {stderr}");
    let failed = stdout
        .iter()
        .find(|l| l.starts_with("failed "))
        .map(String::as_str)
        .unwrap_or_default();
    assert!(
        failed.starts_with("failed java.lang.IllegalStateException: ") && failed.contains("No provider available"),
        "{stdout:?}"
    );

    let lazy = JavaPeer::run_consumer(
        &["--registry", &registry, "--version", "2.0.0", "--check", "false"],
        &["hello world"],
        CALLS_TIMEOUT,
    );
    assert!(
        lazy[0].starts_with("err org.apache.dubbo.rpc.RpcException: ") && lazy[0].contains("No provider available"),
        "{lazy:?}"
    );

    // At a direct URL, the provider decides. Java's dubbo provider refuses the
    // request (it cannot find the service to decode the arguments for) ...
    let direct = |protocol: &str| {
        let url = Url::parse(provider.exported_url(protocol)).unwrap();
        let direct = format!("{protocol}://{}/{GREETER}", url.address());
        let args = ["--url", direct.as_str(), "--protocol", protocol, "--version", "2.0.0"];
        JavaPeer::run_consumer(&args, &["hello world"], CALLS_TIMEOUT).remove(0)
    };
    let dubbo = direct("dubbo");
    assert!(
        dubbo.starts_with("err org.apache.dubbo.rpc.RpcException: ")
            && dubbo.contains("Fail to decode request due to: RpcInvocation [methodName=sayHello"),
        "{dubbo}"
    );
    // ... while Java's Triple provider (3.3.6) serves its only version anyway.
    assert_eq!(direct("tri"), "ok Hello, world from java");
}

/// Our ZooKeeper registry reads both URLs a real Java provider registers
/// (address, interface, version, methods, timeout, serialization, ...) and
/// sees them vanish when the provider stops on SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_registry_reads_java_provider_urls_and_sees_them_leave() {
    let Some(net) = netns::isolate() else { return };
    let zk = ZooKeeper::start();
    let registry = ZookeeperRegistry::new(&Url::parse(&zk.url()).unwrap()).unwrap();
    let mut sub = registry.subscribe(&consumer_url()).await.unwrap();
    assert!(sub.current().is_empty());

    let (dubbo_port, tri_port) = (free_port(), free_port());
    let provider = JavaPeer::provider(&zk.url(), dubbo_port, tri_port, &["--timeout", "2500"]);
    let exported: Vec<Url> = provider.exported().iter().map(|u| Url::parse(u).unwrap()).collect();
    assert_eq!(exported.len(), 2, "{:?}", provider.exported());

    let set = next_matching(&mut sub, "both Java URLs", |s| s.len() == 2).await;
    for (protocol, port) in [("dubbo", dubbo_port), ("tri", tri_port)] {
        let url = set
            .iter()
            .find(|u| u.protocol() == protocol)
            .unwrap_or_else(|| panic!("no {protocol} URL in {set:?}"));
        let exported = exported.iter().find(|u| u.protocol() == protocol).unwrap();
        // Dubbo registers the namespace's address (DUBBO_IP_TO_REGISTRY): the one it exported.
        assert_eq!(url.host(), exported.host(), "{url}");
        assert_eq!(url.host(), net.address().to_string(), "{url}");
        assert!(!url.host().is_empty() && url.host() != "0.0.0.0", "{url}");
        assert_eq!(url.port(), port, "{url}");
        assert_eq!(url.path(), GREETER, "{url}");
        assert_eq!(url.interface(), Some(GREETER), "{url}");
        assert_eq!(url.version(), Some("1.0.0"), "{url}");
        assert_eq!(url.group(), None, "{url}");
        let methods: BTreeSet<&str> = url.param("methods").unwrap_or_default().split(',').collect();
        assert_eq!(methods, BTreeSet::from(METHODS), "{url}");
        assert_eq!(url.param_parsed::<u64>("timeout"), Some(2500), "{url}");
        assert_eq!(url.param("side"), Some("provider"), "{url}");
        assert_eq!(url.param("application"), Some("java-greeter-provider"), "{url}");
        assert_eq!(url.param("dubbo"), Some("2.0.2"), "{url}");
        assert_eq!(url.param("release"), Some("3.3.6"), "{url}");
        assert_eq!(url.param("prefer.serialization"), Some("hessian2,fastjson2"), "{url}");
        assert!(url.param_parsed::<u64>("timestamp").is_some(), "{url}");
        // What we read back prints and re-parses to the same URL.
        assert_eq!(&Url::parse(&url.to_string()).unwrap(), url);
        assert_eq!(&Url::decode(&url.encode()).unwrap(), url);
    }

    let rpc_tests::java::Output { code, stdout, stderr } = provider.terminate(Duration::from_secs(60));
    assert_eq!(code, Some(0), "stdout: {stdout:?}\nstderr: {stderr}");
    assert_eq!(stdout.last().map(String::as_str), Some("stopped"), "{stdout:?}");
    // Unregistered on the way out, not left to expire with its session.
    next_matching(&mut sub, "no Java URL left", |s| s.is_empty()).await;
}

/// A Java provider killed with SIGKILL cannot unregister: its URLs leave
/// when its ZooKeeper session expires (`--session-timeout`; Dubbo's default
/// is 60 s), and our subscription sees that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_java_provider_leaves_when_its_session_expires() {
    let Some(_net) = netns::isolate() else { return };
    let zk = ZooKeeper::start();
    let registry = ZookeeperRegistry::new(&Url::parse(&zk.url()).unwrap()).unwrap();
    let mut sub = registry.subscribe(&consumer_url()).await.unwrap();
    let provider = JavaPeer::provider(&zk.url(), free_port(), free_port(), &["--session-timeout", "2000"]);
    next_matching(&mut sub, "both Java URLs", |s| s.len() == 2).await;
    provider.kill();
    next_matching(&mut sub, "no Java URL left", |s| s.is_empty()).await;
}

/// SIGTERM while ZooKeeper is gone: Dubbo would retry unregistering for
/// minutes; the provider gives up after `--stop-timeout`, says so, exits 1.
#[test]
fn java_provider_stops_in_bounded_time_without_zookeeper() {
    let Some(_net) = netns::isolate() else { return };
    let mut zk = ZooKeeper::start();
    let provider = JavaPeer::provider(&zk.url(), free_port(), free_port(), &["--stop-timeout", "2000"]);
    zk.kill();
    let rpc_tests::java::Output { code, stdout, stderr } = provider.terminate(Duration::from_secs(30));
    assert_eq!(code, Some(1), "stdout: {stdout:?}\nstderr: {stderr}");
    assert_eq!(stdout.last().map(String::as_str), Some("stop timed out"), "{stdout:?}");
}

/// Where the captures go: `target/java-captures/`, and `tests/java/captures/`
/// (checked in) when `RPC_UPDATE_CAPTURES=1`.
fn capture_dirs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or_else(|| panic!("the tests crate has no parent directory"))
        .to_path_buf();
    let mut dirs = vec![root.join("target/java-captures")];
    if std::env::var("RPC_UPDATE_CAPTURES").as_deref() == Ok("1") {
        dirs.push(root.join("tests/java/captures"));
    }
    for dir in &dirs {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    }
    dirs
}

fn save(dirs: &[PathBuf], name: &str, bytes: &[u8]) {
    for dir in dirs {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A recording proxy to the provider's exported `url`, listening on the
/// same host: Java's `dubbo://` client would turn 127.0.0.1 into that host.
fn proxy_to(url: &str) -> RecordingProxy {
    let url = Url::parse(url).unwrap_or_else(|e| panic!("the Java provider exported a URL we cannot parse: {e}"));
    RecordingProxy::start_on(url.host(), &url.address())
}

/// One request and one response per call case over `dubbo://`, and the
/// HTTP/2 DATA frames of one Triple call, as Java sends them (Java consumer
/// -> recording proxy -> Java provider): the frames are checked and saved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_wire_bytes_are_recorded() {
    let Some(_net) = netns::isolate() else { return };
    let zk = ZooKeeper::start();
    let provider = JavaPeer::provider(&zk.url(), free_port(), free_port(), &[]);
    let dirs = capture_dirs();

    // dubbo: one call per case, each case's request and response by request id.
    let proxy = proxy_to(provider.exported_url("dubbo"));
    let direct = format!("dubbo://{}/{GREETER}", proxy.address());
    let calls: Vec<&str> = CASES.iter().map(|(call, _)| *call).collect();
    let args = ["--url", direct.as_str(), "--protocol", "dubbo"];
    // Blocking, on this worker: the proxy's tasks run on the other one.
    let results = tokio::task::block_in_place(|| JavaPeer::run_consumer(&args, &calls, CALLS_TIMEOUT));
    let expected: Vec<&str> = CASES.iter().map(|(_, result)| *result).collect();
    assert_eq!(results, expected);

    let recordings = proxy.recordings();
    let requests: Vec<DubboFrame> = recordings
        .iter()
        .flat_map(|r| dubbo_frames(&r.to_server).unwrap())
        .filter(|f| !f.is_event())
        .collect();
    let responses: Vec<DubboFrame> = recordings
        .iter()
        .flat_map(|r| dubbo_frames(&r.to_client).unwrap())
        .filter(|f| !f.is_event())
        .collect();
    assert_eq!(requests.len(), CASES.len(), "one request per call");
    let names = [
        "sayHello",
        "placeOrder-ok",
        "placeOrder-rejected",
        "sleep-void",
        "echoList",
        "echoList-empty",
        "echoMap",
        "echoNullable-null",
        "echoNullable-value",
    ];
    assert_eq!(names.len(), CASES.len());
    for (name, request) in names.iter().zip(&requests) {
        // Request, two-way, Hessian2.
        assert_eq!(request.flags(), 0x80 | 0x40 | 2, "{name}");
        let method = name.split('-').next().unwrap();
        let body = request.body();
        assert!(contains(body, b"2.0.2") && contains(body, GREETER.as_bytes()), "{name}");
        assert!(
            contains(body, method.as_bytes()),
            "{name}: no method name in the request"
        );
        let response = responses
            .iter()
            .find(|r| r.id() == request.id())
            .unwrap_or_else(|| panic!("{name}: no response to request {}", request.id()));
        assert!(!response.is_request(), "{name}");
        assert_eq!(
            (response.serialization(), response.status()),
            (2, 20),
            "{name}: status OK"
        );
        save(&dirs, &format!("dubbo-{name}-request.bin"), &request.bytes);
        save(&dirs, &format!("dubbo-{name}-response.bin"), &response.bytes);
    }
    let rejected = &responses.iter().find(|r| r.id() == requests[2].id()).unwrap();
    assert!(contains(rejected.body(), b"org.example.OrderRejected"));

    // tri: one call; the client's and the server's DATA frames of its stream.
    let proxy = proxy_to(provider.exported_url("tri"));
    let direct = format!("tri://{}/{GREETER}", proxy.address());
    let args = ["--url", direct.as_str(), "--protocol", "tri"];
    let results = tokio::task::block_in_place(|| JavaPeer::run_consumer(&args, &["hello world"], CALLS_TIMEOUT));
    assert_eq!(results, ["ok Hello, world from java"]);
    let recordings = proxy.recordings();
    let recording = recordings
        .iter()
        .find(|r| r.to_server.starts_with(rpc_tests::capture::HTTP2_PREFACE))
        .expect("an HTTP/2 connection");
    let data = |bytes: &[u8]| -> Vec<u8> {
        http2_frames(bytes)
            .unwrap()
            .into_iter()
            .filter(|f| f.kind == 0 && f.stream != 0)
            .flat_map(|f| f.payload)
            .collect()
    };
    let (request, response) = (data(&recording.to_server), data(&recording.to_client));
    for (what, message) in [("request", &request), ("response", &response)] {
        // One uncompressed gRPC message: flag 0, then its 4-byte length.
        assert!(message.len() > 5, "tri {what}: {message:02x?}");
        let len = u32::from_be_bytes([message[1], message[2], message[3], message[4]]) as usize;
        assert_eq!((message[0], len), (0, message.len() - 5), "tri {what}: {message:02x?}");
    }
    // The wrapper form: serializeType "hessian4", the argument type, the name.
    assert!(contains(&request, b"hessian4"), "{request:02x?}");
    assert!(contains(&request, b"java.lang.String") && contains(&request, b"world"));
    assert!(contains(&response, b"Hello, world from java"));
    save(&dirs, "tri-sayHello-request-data.bin", &request);
    save(&dirs, "tri-sayHello-response-data.bin", &response);
    save(&dirs, "tri-sayHello-client-h2.bin", &recording.to_server);
    save(&dirs, "tri-sayHello-server-h2.bin", &recording.to_client);
}

/// The checked-in `dubbo-*-request.bin` captures.
fn checked_in_requests() -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("java/captures");
    let mut requests: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| {
            entry
                .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
                .path()
        })
        .filter_map(|path| {
            let name = path.file_name()?.to_str()?.to_owned();
            let case = name.strip_prefix("dubbo-")?.strip_suffix("-request.bin")?.to_owned();
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            Some((case, bytes))
        })
        .collect();
    requests.sort();
    requests
}

fn checked_in(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("java/captures").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Sends one Dubbo request frame on a new connection to `address` and
/// returns the first non-event frame that comes back (within 10 s).
fn exchange(address: &str, request: &[u8]) -> DubboFrame {
    let mut stream = TcpStream::connect(address).unwrap_or_else(|e| panic!("cannot connect to {address}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap_or_else(|e| panic!("cannot set a read timeout: {e}"));
    stream
        .write_all(request)
        .unwrap_or_else(|e| panic!("cannot send to {address}: {e}"));
    let mut received = Vec::new();
    let mut buffer = [0; 16 * 1024];
    loop {
        if received.len() >= 16 {
            let len = u32::from_be_bytes([received[12], received[13], received[14], received[15]]) as usize;
            if received.len() >= 16 + len {
                let frame = dubbo_frames(&received[..16 + len])
                    .unwrap_or_else(|e| panic!("{address} answered a bad frame: {e}"))
                    .remove(0);
                received.drain(..16 + len);
                if !frame.is_event() {
                    return frame;
                }
                continue;
            }
        }
        let n = stream
            .read(&mut buffer)
            .unwrap_or_else(|e| panic!("no answer from {address}: {e}"));
        assert!(n > 0, "{address} closed the connection without answering");
        received.extend_from_slice(&buffer[..n]);
    }
}

/// `request` with every `from` replaced by `to`, and its header's body length fixed.
fn patched(request: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let body = &request[16..];
    let at = body
        .windows(from.len())
        .position(|w| w == from)
        .unwrap_or_else(|| panic!("{from:02x?} is not in the request"));
    let mut new_body = body[..at].to_vec();
    new_body.extend_from_slice(to);
    new_body.extend_from_slice(&body[at + from.len()..]);
    let mut frame = request[..12].to_vec();
    frame.extend_from_slice(&u32::try_from(new_body.len()).unwrap_or(u32::MAX).to_be_bytes());
    frame.extend_from_slice(&new_body);
    frame
}

/// A class definition with no fields for class `name` (< 32 bytes), then an instance of it.
fn empty_object(name: &str, definition: u8) -> Vec<u8> {
    let mut bytes = vec![b'C', u8::try_from(name.len()).unwrap_or(0)];
    bytes.extend_from_slice(name.as_bytes());
    bytes.extend_from_slice(&[0x90, 0x60 + definition]);
    bytes
}

/// The checked-in request captures replayed byte for byte to a fresh Java
/// provider get the checked-in responses (so the captures are valid Dubbo
/// and stable); and Dubbo's serialization check is on (STRICT): a class
/// outside its allow list in an untyped position arrives as an empty map,
/// a declared class as itself.
#[test]
fn java_provider_answers_the_captured_requests_and_checks_classes() {
    let Some(_net) = netns::isolate() else { return };
    let zk = ZooKeeper::start();
    let provider = JavaPeer::provider(&zk.url(), free_port(), free_port(), &[]);
    let address = Url::parse(provider.exported_url("dubbo")).unwrap().address();

    let requests = checked_in_requests();
    assert_eq!(
        requests.len(),
        CASES.len(),
        "{:?}",
        requests.iter().map(|r| &r.0).collect::<Vec<_>>()
    );
    for (case, request) in &requests {
        let response = exchange(&address, request);
        let expected = checked_in(&format!("dubbo-{case}-response.bin"));
        assert_eq!(
            response.id(),
            u64::from_be_bytes(request[4..12].try_into().unwrap()),
            "{case}"
        );
        assert_eq!((response.flags(), response.status()), (2, 20), "{case}");
        if case == "placeOrder-rejected" {
            // An exception with attachments (3), its class and message; the
            // stack trace names this JDK's version, so it is not compared.
            assert_eq!(response.body()[0], 0x93, "{case}");
            assert!(contains(response.body(), b"org.example.OrderRejected"), "{case}");
            assert!(
                contains(response.body(), b"quantity must be positive, got 0 for apple"),
                "{case}"
            );
        } else {
            assert_eq!(response.body(), &expected[16..], "{case}: not the checked-in response");
        }
    }

    // echoList(["a", "b"]) with an object in place of "a": `z` (a list of two), then the elements.
    let list = checked_in("dubbo-echoList-request.bin");
    let strings = b"\x7a\x01a\x01b";
    let with = |object: &[u8]| [&[0x7a][..], object, b"\x01b"].concat();
    // Outside the allow list (a JDK class, and one that does not exist): an empty map `H Z`.
    for class in ["java.net.InetAddress", "org.example.Evil"] {
        let response = exchange(&address, &patched(&list, strings, &with(&empty_object(class, 0))));
        assert_eq!(response.status(), 20, "{class}");
        assert!(
            response.body().starts_with(b"\x94\x7aHZ\x01b"),
            "{class}: {:02x?}",
            response.body()
        );
    }
    // A class of the interface's API is allowed: it comes back as itself.
    let response = exchange(
        &address,
        &patched(&list, strings, &with(&empty_object("org.example.OrderId", 0))),
    );
    assert!(
        response.body().starts_with(b"\x94\x7aC\x13org.example.OrderId"),
        "{:02x?}",
        response.body()
    );
}

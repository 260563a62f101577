//! The QoS port: its HTTP and telnet forms, probes, garbage input, a port
//! already taken, and `offline`/`online` under load with real processes and
//! a real ZooKeeper.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use rpc::qos::{PROMPT, Qos, QosServer};
use rpc::{Consumer, Export, Provider, RunningProvider, Token, Url};
use rpc_examples::{GreeterClient, GreeterImpl, GreeterServer};
use rpc_tests::zk::ZooKeeper;
use rpc_tests::{ExampleProcess, free_port};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PROVIDERS: &str = "/dubbo/org.example.Greeter/providers";

/// An HTTP answer: status and body.
#[derive(Debug)]
struct HttpAnswer {
    status: u16,
    body: String,
}

/// `GET path` over a fresh connection (the QoS server closes it after the
/// answer), bounded by 10 s.
async fn http_get(addr: SocketAddr, path: &str) -> HttpAnswer {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(format!("GET {path} HTTP/1.1\r\nHost: qos\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.unwrap();
        raw
    };
    let raw = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .unwrap_or_else(|_| panic!("GET {path} from {addr}: no complete answer within 10 s"));
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP head: {text:?}"));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap();
    HttpAnswer {
        status,
        body: body.to_string(),
    }
}

/// Reads from `stream` until `needle` has arrived; everything read. Bounded by 10 s.
async fn read_until(stream: &mut TcpStream, needle: &str) -> String {
    let mut text = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&text).contains(needle) {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed before `{needle}`: {:?}", String::from_utf8_lossy(&text));
            text.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .unwrap_or_else(|_| panic!("no `{needle}` within 10 s"));
    String::from_utf8(text).unwrap()
}

/// Reads until the peer closes (or resets) the connection; what arrived.
/// Panics when it stays open for `within`.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> String {
    let mut text = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => text.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(within, read)
        .await
        .unwrap_or_else(|_| panic!("the QoS server kept the connection open for {within:?}"));
    String::from_utf8_lossy(&text).into_owned()
}

/// A provider of the greeter in `memory://name`, a consumer with one
/// reference to it, and a QoS server over both on a free loopback port.
async fn in_process(name: &str, idle: Duration) -> (RunningProvider, Consumer, GreeterClient, QosServer) {
    let registry = format!("memory://{name}");
    let provider = Provider::builder()
        .registry(registry.clone())
        .protocol("rpc", 0)
        .serve(GreeterServer::new(GreeterImpl::new(None)))
        .start()
        .await
        .unwrap();
    let consumer = Consumer::builder().registry(registry).build().await.unwrap();
    let greeter: GreeterClient = consumer.reference::<GreeterClient>().build().await.unwrap();
    let qos = Qos::builder()
        .port(0)
        .bind_host("127.0.0.1")
        .provider(&provider)
        .consumer(&consumer)
        .idle_timeout(idle)
        .start()
        .await
        .unwrap();
    (provider, consumer, greeter, qos)
}

#[tokio::test]
async fn ls_answers_over_telnet_and_http_in_dubbos_table() {
    let (provider, _consumer, _greeter, qos) = in_process("qos-ls", Duration::from_secs(30)).await;
    let addr = qos.local_addr().unwrap();

    let http = http_get(addr, "/ls").await;
    assert_eq!(http.status, 200, "{http:?}");
    assert!(http.body.starts_with("As Provider side:\r\n"), "{}", http.body);
    assert!(http.body.contains("|org.example.Greeter:1.0.0| Y |"), "{}", http.body);
    assert!(http.body.contains("As Consumer side:\r\n"), "{}", http.body);
    assert!(http.body.contains("|org.example.Greeter:1.0.0| 1 |"), "{}", http.body);

    let mut telnet = TcpStream::connect(addr).await.unwrap();
    telnet.write_all(b"ls\r\n").await.unwrap();
    let answer = read_until(&mut telnet, PROMPT).await;
    assert_eq!(answer, format!("{}\r\n{PROMPT}", http.body.trim_end()));
    // The same connection takes more commands; an unknown one says so.
    telnet.write_all(b"frobnicate\r\n").await.unwrap();
    let answer = read_until(&mut telnet, PROMPT).await;
    assert!(answer.contains("frobnicate :no such command"), "{answer}");
    telnet.write_all(b"quit\r\n").await.unwrap();
    assert_eq!(read_until_closed(&mut telnet, Duration::from_secs(5)).await, "BYE!\r\n");

    // offline over telnet shows in ls; a pattern that names nothing says so.
    let mut telnet = TcpStream::connect(addr).await.unwrap();
    telnet.write_all(b"offline org.example.Nothing\r\n").await.unwrap();
    assert_eq!(
        read_until(&mut telnet, PROMPT).await,
        format!("service not found\r\n{PROMPT}")
    );
    telnet.write_all(b"offline org.example.*\r\n").await.unwrap();
    assert_eq!(read_until(&mut telnet, PROMPT).await, format!("OK\r\n{PROMPT}"));
    assert!(!provider.services()[0].1);
    let http = http_get(addr, "/ls").await;
    assert!(http.body.contains("|org.example.Greeter:1.0.0| N |"), "{}", http.body);
    provider.shutdown().await;
}

#[tokio::test]
async fn probes_answer_with_dubbos_status_codes() {
    let (provider, _consumer, _greeter, qos) = in_process("qos-probes", Duration::from_secs(30)).await;
    let addr = qos.local_addr().unwrap();
    for probe in ["/live", "/ready", "/startup"] {
        let answer = http_get(addr, probe).await;
        assert_eq!((answer.status, answer.body.as_str()), (200, "true"), "{probe}");
    }
    // Offline: not ready (no consumer can find it), still live and started.
    assert_eq!(http_get(addr, "/offline").await.body, "OK");
    let ready = http_get(addr, "/ready").await;
    assert_eq!((ready.status, ready.body.as_str()), (503, "false"));
    assert_eq!(http_get(addr, "/startup").await.status, 200);
    // The path form of an argument, and online again.
    assert_eq!(http_get(addr, "/online/org.example.Greeter").await.body, "OK");
    assert_eq!(http_get(addr, "/ready").await.status, 200);
    // Stopping: neither ready nor started, and online is refused.
    provider.shutdown().await;
    assert_eq!(http_get(addr, "/ready").await.status, 503);
    assert_eq!(http_get(addr, "/startup").await.status, 503);
    assert_eq!(http_get(addr, "/live").await.status, 200);
    let online = http_get(addr, "/online").await;
    assert_eq!(online.status, 500, "{online:?}");
    assert!(online.body.contains("shutting down"), "{online:?}");
    // Unknown commands, the metrics and invoke hooks unset.
    assert_eq!(http_get(addr, "/rm").await.status, 404);
    assert_eq!(http_get(addr, "/a/b/c").await.status, 404);
    assert_eq!(http_get(addr, "/metrics").await.body, "metrics are not enabled");
    let help = http_get(addr, "/help").await;
    let listed: Vec<&str> = help
        .body
        .lines()
        .filter_map(|row| row.strip_prefix('|')?.split('|').next().map(str::trim))
        .collect();
    for command in [
        "ls", "online", "offline", "ready", "live", "startup", "metrics", "invoke",
    ] {
        assert!(listed.contains(&command), "{command}: {}", help.body);
    }
}

#[tokio::test]
async fn metrics_come_from_the_hook_on_both_paths() {
    let qos = Qos::builder()
        .port(0)
        .bind_host("127.0.0.1")
        .metrics(|| "# TYPE dubbo_provider_requests_total counter\ndubbo_provider_requests_total 3\n".to_string())
        .start()
        .await
        .unwrap();
    let addr = qos.local_addr().unwrap();
    let answer = http_get(addr, "/metrics").await;
    assert_eq!(answer.status, 200);
    assert!(answer.body.contains("dubbo_provider_requests_total 3"), "{answer:?}");
    let mut telnet = TcpStream::connect(addr).await.unwrap();
    telnet.write_all(b"metrics\n").await.unwrap();
    assert!(
        read_until(&mut telnet, PROMPT)
            .await
            .contains("dubbo_provider_requests_total 3")
    );
}

#[tokio::test]
async fn garbage_input_closes_that_connection_and_the_next_client_is_answered() {
    let idle = Duration::from_millis(800);
    let (provider, _consumer, _greeter, qos) = in_process("qos-garbage", idle).await;
    let addr = qos.local_addr().unwrap();

    // Binary junk: an error answer, then the close.
    let mut junk = TcpStream::connect(addr).await.unwrap();
    junk.write_all(&[0xff, 0xfe, 0x00, 0x81, 0x13, b'\n']).await.unwrap();
    let answer = read_until_closed(&mut junk, Duration::from_secs(5)).await;
    assert!(answer.contains("UTF-8"), "{answer:?}");

    // A 1 MB line: the server reads 16 KiB of it and closes.
    let mut long = TcpStream::connect(addr).await.unwrap();
    let (mut read, mut write) = long.split();
    let line = vec![b'a'; 1 << 20];
    let writing = async {
        let _ = write.write_all(&line).await; // may be reset once the server closes
    };
    let mut text = Vec::new();
    let reading = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 4096];
        loop {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => text.extend_from_slice(&buf[..n]),
            }
        }
    });
    let ((), closed) = tokio::join!(writing, reading);
    assert!(closed.is_ok(), "an overlong line kept the connection open");
    drop(long);

    // Half an HTTP request: closed once the idle timeout passes.
    let started = Instant::now();
    let mut half = TcpStream::connect(addr).await.unwrap();
    half.write_all(b"GET /ls HTTP/1.1\r\nHost: qos\r\n").await.unwrap();
    // Meanwhile another client is answered.
    assert_eq!(http_get(addr, "/live").await.body, "true");
    read_until_closed(&mut half, Duration::from_secs(10)).await;
    assert!(
        started.elapsed() >= idle,
        "closed before the idle timeout: {:?}",
        started.elapsed()
    );

    // A silent client is greeted with the prompt, then closed when idle.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let greeting = read_until(&mut silent, PROMPT).await;
    assert!(greeting.contains("help"), "{greeting:?}");
    assert!(
        read_until_closed(&mut silent, Duration::from_secs(10))
            .await
            .contains("idle timeout")
    );

    // An HTTP head larger than the limit is refused, not buffered.
    let mut huge = TcpStream::connect(addr).await.unwrap();
    let head = format!("GET /ls HTTP/1.1\r\nX-Big: {}\r\n\r\n", "b".repeat(64 * 1024));
    let _ = huge.write_all(head.as_bytes()).await;
    let answer = read_until_closed(&mut huge, Duration::from_secs(10)).await;
    assert!(!answer.contains("As Provider side"), "{answer:?}");

    // After all that, the server still answers.
    let ls = http_get(addr, "/ls").await;
    assert_eq!(ls.status, 200);
    assert!(ls.body.contains("org.example.Greeter:1.0.0"), "{}", ls.body);
    provider.shutdown().await;
}

#[tokio::test]
async fn a_taken_port_is_a_warning_and_the_provider_starts() {
    let taken = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let mut provider = ExampleProcess::start("greeter-provider", &["--port", "0", "--qos-port", &port], "warn");
    let (_, url) = provider.wait_for_line_from(0, "listening on rpc://", Duration::from_secs(30));
    assert!(
        !provider.lines().iter().any(|l| l.starts_with("qos on")),
        "{:?}",
        provider.lines()
    );
    // It serves.
    let address = url.trim_start_matches("listening on ").to_string();
    let consumer = Consumer::builder().registry(address).build().await.unwrap();
    let greeter: GreeterClient = consumer.reference::<GreeterClient>().build().await.unwrap();
    assert_eq!(greeter.say_hello("qos".into()).await.unwrap(), "Hello, qos");
    provider.signal(Signal::SIGKILL);
    let output = provider.wait(Duration::from_secs(20));
    assert!(
        output.stderr.contains("cannot listen for QoS commands"),
        "{}",
        output.stderr
    );
    assert!(output.stderr.contains("Address already in use"), "{}", output.stderr);

    // In process too: start succeeds, without an address.
    let qos = Qos::builder()
        .port(taken.local_addr().unwrap().port())
        .start()
        .await
        .unwrap();
    assert_eq!(qos.local_addr(), None);
}

/// The providers' URLs registered in ZooKeeper now.
async fn registered(client: &zookeeper_client::Client) -> Vec<Url> {
    match client.list_children(PROVIDERS).await {
        Ok(children) => children.iter().filter_map(|c| Url::decode(c).ok()).collect(),
        Err(zookeeper_client::Error::NoNode) => Vec::new(),
        Err(e) => panic!("cannot list {PROVIDERS}: {e}"),
    }
}

/// Waits (up to 20 s) until the provider at `port` is registered or not.
async fn wait_registered(client: &zookeeper_client::Client, port: u16, present: bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let urls = registered(client).await;
        if urls.iter().any(|u| u.port() == port) == present {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "provider :{port} registered should be {present} within 20 s: {urls:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Reads the consumer's replies from line `from` until `count` replies in a
/// row come from provider `b`; the index after them. Bounded by 30 s.
fn wait_for_only_b(consumer: &mut ExampleProcess, from: usize, count: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut run = 0;
    let mut index = from;
    while run < count {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no {count} replies in a row from b within 30 s");
        let (at, line) = consumer.wait_for_line_from(index, "Hello", left);
        run = if line.ends_with("from b") { run + 1 } else { 0 };
        index = at + 1;
    }
    index
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_under_load_takes_the_provider_out_and_online_brings_it_back() {
    let zk = ZooKeeper::start();
    let registry = zk.url();
    let qos_port = free_port();
    let qos_port_text = qos_port.to_string();
    let common = [
        "--registry",
        &registry,
        "--port",
        "0",
        "--warmup-ms",
        "0",
        "--delay-ms",
        "20",
    ];
    let mut a = ExampleProcess::start(
        "greeter-provider",
        &[&common[..], &["--tag", "a", "--qos-port", &qos_port_text]].concat(),
        "warn",
    );
    let (_, qos_line) = a.wait_for_line_from(0, "qos on", Duration::from_secs(30));
    let (_, a_url) = a.wait_for_line_from(0, "listening on rpc://", Duration::from_secs(30));
    let a_port: u16 = a_url.rsplit(':').next().unwrap().parse().unwrap();
    assert!(qos_line.ends_with(&format!(":{qos_port}")), "{qos_line}");
    let mut b = ExampleProcess::start("greeter-provider", &[&common[..], &["--tag", "b"]].concat(), "warn");
    b.wait_for_line_from(0, "listening on rpc://", Duration::from_secs(30));
    let qos: SocketAddr = format!("127.0.0.1:{qos_port}").parse().unwrap();

    let client = zookeeper_client::Client::connect(&zk.connect_string()).await.unwrap();
    wait_registered(&client, a_port, true).await;

    let mut consumer = ExampleProcess::spawn(&[
        "--registry",
        &registry,
        "--duration",
        "120",
        "--concurrency",
        "8",
        "--timeout-ms",
        "5000",
        "-v",
    ]);
    // Both providers answer.
    consumer.wait_for_line_from(0, "from a", Duration::from_secs(30));
    consumer.wait_for_line_from(0, "from b", Duration::from_secs(30));

    // offline over HTTP, under load.
    let offline = http_get(qos, "/offline").await;
    assert_eq!((offline.status, offline.body.as_str()), (200, "OK"));
    wait_registered(&client, a_port, false).await;
    assert_eq!(http_get(qos, "/ready").await.status, 503);
    let ls = http_get(qos, "/ls").await;
    assert!(ls.body.contains("| N |"), "{}", ls.body);
    // The consumer stops sending to a: 300 replies in a row from b.
    let from = consumer.seen();
    let after_offline = wait_for_only_b(&mut consumer, from, 300);
    // Offline twice is harmless.
    assert_eq!(http_get(qos, "/offline").await.body, "OK");

    // online: back in ZooKeeper, and it gets calls again.
    let online = http_get(qos, "/online").await;
    assert_eq!((online.status, online.body.as_str()), (200, "OK"));
    wait_registered(&client, a_port, true).await;
    assert_eq!(http_get(qos, "/ready").await.status, 200);
    consumer.wait_for_line_from(after_offline, "from a", Duration::from_secs(30));

    // Not one call failed, in flight at the offline or since.
    consumer.signal(Signal::SIGINT);
    let output = consumer.wait(Duration::from_secs(30));
    let (ok, failed) = output.counts();
    assert_eq!(failed, 0, "{}", output.stderr);
    assert_eq!(ok as usize, output.count_lines("Hello"), "every reply is a greeting");
    drop((a, b));
}

/// `invoke` without a hook calls this process's own provider (as Dubbo's
/// command does), with the export's token when it has one; a service the
/// process does not provide, or arguments that are not JSON, say so.
#[tokio::test]
async fn invoke_calls_this_processs_own_provider() {
    let provider = Provider::builder()
        .registry("memory://qos-invoke")
        .protocol("rpc", 0)
        .export(Export::new(GreeterServer::new(GreeterImpl::new(None))).token(Token::Fixed("s3cret".into())))
        .start()
        .await
        .unwrap();
    let qos = Qos::builder()
        .port(0)
        .bind_host("127.0.0.1")
        .provider(&provider)
        .start()
        .await
        .unwrap();
    let addr = qos.local_addr().unwrap();
    let mut telnet = TcpStream::connect(addr).await.unwrap();
    telnet
        .write_all(b"invoke org.example.Greeter.sayHello(\"qos\")\r\n")
        .await
        .unwrap();
    let answer = read_until(&mut telnet, PROMPT).await;
    assert!(answer.starts_with("\"Hello, qos\""), "{answer}");
    telnet
        .write_all(b"invoke org.example.Nope.sayHello(1)\r\n")
        .await
        .unwrap();
    let answer = read_until(&mut telnet, PROMPT).await;
    assert!(
        answer.contains("does not provide `org.example.Nope`") && answer.contains("org.example.Greeter"),
        "{answer}"
    );
    telnet
        .write_all(b"invoke org.example.Greeter.sayHello(qos)\r\n")
        .await
        .unwrap();
    let answer = read_until(&mut telnet, PROMPT).await;
    assert!(answer.contains("not JSON"), "{answer}");
    telnet
        .write_all(b"invoke org.example.Greeter.frobnicate(1)\r\n")
        .await
        .unwrap();
    let answer = read_until(&mut telnet, PROMPT).await;
    assert!(answer.contains("frobnicate"), "{answer}");
    provider.shutdown().await;
}

/// `curl` from the neighbour namespace: (HTTP status, body).
fn curl_from(neighbour: &rpc_tests::netns::Neighbour, url: &str) -> (u16, String) {
    let output = neighbour
        .command("curl")
        .args(["-s", "--max-time", "10", "-w", "\n%{http_code}", url])
        .output()
        .unwrap_or_else(|e| panic!("cannot run curl in the neighbour namespace: {e}"));
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    let status = status.trim().parse().unwrap_or_else(|_| {
        panic!(
            "curl {url}: no status in {text:?} ({})",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (status, body.to_string())
}

/// A caller on another host (a second network namespace, joined by a veth
/// pair) is refused every command but the probes; a whitelisted one is
/// answered; a local caller always is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_caller_gets_the_probes_only_unless_whitelisted() {
    use rpc_tests::netns::{self, LINK_OURS, LINK_THEIRS};
    let Some(net) = netns::isolate() else { return };
    let neighbour = net.neighbour();
    let provider = Provider::builder()
        .registry("memory://qos-foreign")
        .protocol("rpc", 0)
        .serve(GreeterServer::new(GreeterImpl::new(None)))
        .start()
        .await
        .unwrap();
    let guarded = Qos::builder().port(0).provider(&provider).start().await.unwrap();
    let open = Qos::builder()
        .port(0)
        .provider(&provider)
        .accept_foreign_ip_whitelist([LINK_THEIRS.to_string()])
        .start()
        .await
        .unwrap();
    let (guarded_port, open_port) = (guarded.local_addr().unwrap().port(), open.local_addr().unwrap().port());
    let answers = tokio::task::spawn_blocking(move || {
        let at = |port: u16, path: &str| curl_from(&neighbour, &format!("http://{LINK_OURS}:{port}{path}"));
        (
            at(guarded_port, "/ls"),
            at(guarded_port, "/offline"),
            at(guarded_port, "/live"),
            at(guarded_port, "/ready"),
            at(open_port, "/ls"),
        )
    })
    .await
    .unwrap();
    let (ls, offline, live, ready, whitelisted) = answers;
    assert_eq!(ls.0, 403, "a foreign `ls`: {ls:?}");
    assert_eq!(offline.0, 403, "a foreign `offline`: {offline:?}");
    assert_eq!(live, (200, "true".to_string()), "a foreign probe is answered");
    assert_eq!(ready.0, 200, "{ready:?}");
    assert_eq!(whitelisted.0, 200, "a whitelisted caller: {whitelisted:?}");
    assert!(whitelisted.1.contains("org.example.Greeter"), "{}", whitelisted.1);
    // The refused `offline` did nothing; a local caller is answered.
    let local: SocketAddr = format!("127.0.0.1:{guarded_port}").parse().unwrap();
    let ls = http_get(local, "/ls").await;
    assert_eq!(ls.status, 200);
    assert!(ls.body.contains("|org.example.Greeter:1.0.0| Y |"), "{}", ls.body);
    provider.shutdown().await;
}

#[tokio::test]
async fn the_provider_builder_serves_a_qos_port() {
    let taken = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    drop(taken);
    let metrics = rpc::observe::Metrics::new();
    let provider = Provider::builder()
        .registry("memory://qos-builder")
        .protocol("rpc", 0)
        .qos_port(port)
        .metrics(&metrics)
        .serve(GreeterServer::new(GreeterImpl::new(None)))
        .start()
        .await
        .unwrap();
    let addr = provider.qos_addr().unwrap();
    assert_eq!(addr.port(), port);
    let loopback: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let ls = http_get(loopback, "/ls").await;
    assert!(ls.body.contains("|org.example.Greeter:1.0.0| Y |"), "{}", ls.body);
    // The provider's metrics are served at /metrics: one call counted.
    let consumer = Consumer::builder()
        .registry("memory://qos-builder")
        .build()
        .await
        .unwrap();
    let greeter: GreeterClient = consumer.reference::<GreeterClient>().build().await.unwrap();
    greeter.say_hello("metrics".into()).await.unwrap();
    let scrape = http_get(loopback, "/metrics").await;
    assert_eq!(scrape.status, 200, "{scrape:?}");
    let line = scrape
        .body
        .lines()
        .find(|l| l.starts_with("dubbo_provider_requests_total{") && l.contains("method=\"sayHello\""))
        .unwrap_or_else(|| panic!("no sayHello request counter in {}", scrape.body));
    assert!(line.ends_with(" 1"), "{line}");
    provider.shutdown().await;
    assert_eq!(http_get(loopback, "/ready").await.status, 503);
    drop(provider);
    // Closed with the provider (its task ends soon after the drop).
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(loopback).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "the QoS port still accepts 5 s after the provider was dropped"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_online_and_offline_end_in_the_last_state_and_consumers_follow() {
    let (provider, consumer, greeter, _qos) = in_process("qos-concurrent", Duration::from_secs(30)).await;
    let provider = std::sync::Arc::new(provider);
    let providers_known = || consumer.references()[0].providers;
    assert_eq!(providers_known(), 1);
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let provider = provider.clone();
            tokio::spawn(async move {
                if i % 2 == 0 {
                    provider.offline("*").await
                } else {
                    provider.online("org.example.Greeter").await
                }
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap(), 1);
    }
    // Whatever the interleaving, the last operation decides.
    assert_eq!(provider.offline("*").await.unwrap(), 1);
    assert!(!provider.services()[0].1);
    rpc_tests::wait_until("the consumer to drop the provider", Duration::from_secs(10), || {
        providers_known() == 0
    })
    .await;
    assert_eq!(provider.online("*").await.unwrap(), 1);
    assert_eq!(provider.online("*").await.unwrap(), 1, "idempotent");
    rpc_tests::wait_until(
        "the consumer to find the provider again",
        Duration::from_secs(10),
        || providers_known() == 1,
    )
    .await;
    assert_eq!(greeter.say_hello("back".into()).await.unwrap(), "Hello, back");
    assert_eq!(provider.offline("org.example.Nothing").await.unwrap(), 0);
    provider.shutdown().await;
}

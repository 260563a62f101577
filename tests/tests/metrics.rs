//! Metrics under Dubbo's names, over real TCP: 1,000 calls, some failing in
//! the service (a panic: Dubbo's business failure), some timing out, then a
//! scrape of both sides parsed with a Prometheus text parser.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use prometheus_parse::{Scrape, Value};
use rpc::observe::Metrics;

/// The service measured.
#[rpc::service(interface = "org.example.Metered", version = "1.0.0")]
pub trait Metered {
    /// `0`: answers; `1`: panics; `2`: sleeps past any deadline.
    async fn work(&self, mode: u32) -> u32;
}

struct MeteredImpl;

impl Metered for MeteredImpl {
    async fn work(&self, mode: u32) -> u32 {
        match mode {
            1 => panic!("the service failed on purpose"),
            2 => {
                tokio::time::sleep(Duration::from_secs(30)).await;
                mode
            }
            _ => mode,
        }
    }
}

const CALLS: u32 = 1000;
const TIMEOUT: Duration = Duration::from_millis(300);

/// The mode of call `i`: 100 business failures, 10 timeouts, 890 answers.
fn mode(i: u32) -> u32 {
    if i % 10 == 3 {
        1
    } else if i % 100 == 7 {
        2
    } else {
        0
    }
}

/// The parsed scrape's samples of `name` with `labels` among theirs.
fn values(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> Vec<Value> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| s.value.clone())
        .collect()
}

/// The one value of `name` with `labels`, as a number.
fn number(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    match values(scrape, name, labels).as_slice() {
        [Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v)] => *v,
        other => panic!("expected one sample of {name} {labels:?}, got {other:?}"),
    }
}

fn parse(text: &str) -> Scrape {
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap_or_else(|e| panic!("cannot parse: {e}\n{text}"))
}

/// Every Dubbo counter of `side` for the method, by name.
fn counters(scrape: &Scrape, side: &str, application: &str) -> HashMap<&'static str, f64> {
    let labels = [
        ("application_name", application),
        ("interface", "org.example.Metered"),
        ("method", "work"),
        ("group", ""),
        ("version", "1.0.0"),
    ];
    [
        "requests_total",
        "requests_succeed_total",
        "requests_failed_total",
        "requests_business_failed_total",
        "requests_timeout_total",
        "requests_limit_total",
        "requests_failed_network_total",
        "requests_failed_codec_total",
        "requests_failed_service_unavailable_total",
        "requests_unknown_failed_total",
        "requests_processing",
    ]
    .into_iter()
    .map(|name| (name, number(scrape, &format!("dubbo_{side}_{name}"), &labels)))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_calls_are_counted_under_dubbo_names_on_both_sides() {
    let provider_metrics = Metrics::new();
    let consumer_metrics = Metrics::new();
    let provider = rpc::Provider::builder()
        .application("metered-provider")
        .protocol("rpc", 0)
        .metrics(&provider_metrics)
        .serve(MeteredServer::new(MeteredImpl))
        .start()
        .await
        .unwrap();
    let address = provider.local_addr("rpc").unwrap();
    let consumer = rpc::Consumer::builder()
        .application("metered-consumer")
        .registry(format!("rpc://{address}"))
        .metrics(&consumer_metrics)
        .build()
        .await
        .unwrap();
    let client: MeteredClient = consumer
        .reference::<MeteredClient>()
        .timeout(TIMEOUT)
        .retries(0)
        .build()
        .await
        .unwrap();

    let results: Vec<(u32, Result<u32, rpc::RpcError>)> = futures::stream::iter(0..CALLS)
        .map(|i| {
            let client = client.clone();
            async move { (mode(i), client.work(mode(i)).await) }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    for (mode, result) in &results {
        match (mode, result) {
            (0, Ok(0)) => {}
            (1, Err(e)) if e.kind() == rpc::ErrorKind::Remote(rpc::Status::ServiceError) => {}
            // The consumer's timer, or the provider's answer at the same deadline.
            (2, Err(e))
                if matches!(
                    e.kind(),
                    rpc::ErrorKind::Timeout | rpc::ErrorKind::Remote(rpc::Status::ServerTimeout)
                ) => {}
            other => panic!("unexpected result {other:?}"),
        }
    }

    let consumer_text = consumer_metrics.render();
    let scrape = parse(&consumer_text);
    let got = counters(&scrape, "consumer", "metered-consumer");
    let want: HashMap<&str, f64> = [
        ("requests_total", 1000.0),
        ("requests_succeed_total", 890.0),
        ("requests_failed_total", 110.0),
        ("requests_business_failed_total", 100.0),
        ("requests_timeout_total", 10.0),
        ("requests_limit_total", 0.0),
        ("requests_failed_network_total", 0.0),
        ("requests_failed_codec_total", 0.0),
        ("requests_failed_service_unavailable_total", 0.0),
        ("requests_unknown_failed_total", 0.0),
        ("requests_processing", 0.0),
    ]
    .into_iter()
    .collect();
    assert_eq!(got, want, "consumer counters in:\n{consumer_text}");
    let labels = [("application_name", "metered-consumer"), ("method", "work")];
    // The latency gauges and the histogram cover the same calls.
    let max = number(&scrape, "dubbo_consumer_rt_milliseconds_max", &labels);
    let p99 = number(&scrape, "dubbo_consumer_rt_milliseconds_p99", &labels);
    let min = number(&scrape, "dubbo_consumer_rt_milliseconds_min", &labels);
    assert!(
        max >= TIMEOUT.as_millis() as f64,
        "max {max} ms: the timeouts took the timeout"
    );
    assert!(min <= p99 && p99 <= max, "min {min} <= p99 {p99} <= max {max}");
    match values(&scrape, "dubbo_consumer_rt_milliseconds_histogram", &labels).as_slice() {
        [Value::Histogram(buckets)] => {
            let last = buckets.last().unwrap();
            assert!(last.less_than.is_infinite() && last.count == 1000.0, "{buckets:?}");
        }
        other => panic!("expected one histogram, got {other:?}"),
    }
    let interface = [("interface", "org.example.Metered")];
    assert_eq!(number(&scrape, "dubbo_registry_directory_num_all", &interface), 1.0);
    assert_eq!(
        number(&scrape, "dubbo_registry_directory_num_valid_total", &interface),
        1.0
    );
    assert!(number(&scrape, "rpc_consumer_request_bytes_total", &labels) > 0.0);
    // The OpenMetrics rendering parses too and says the same.
    let open = parse(&consumer_metrics.render_openmetrics());
    assert_eq!(counters(&open, "consumer", "metered-consumer"), want);

    // The provider counts a timed-out request when its deadline stops it,
    // just after the consumer gave up: wait for the last ones.
    let provider_counters = || counters(&parse(&provider_metrics.render()), "provider", "metered-provider");
    rpc_tests::wait_until("the provider to finish every request", Duration::from_secs(10), || {
        let c = provider_counters();
        c["requests_processing"] == 0.0 && c["requests_succeed_total"] + c["requests_failed_total"] == 1000.0
    })
    .await;
    let provider_text = provider_metrics.render();
    assert_eq!(
        counters(&parse(&provider_text), "provider", "metered-provider"),
        want,
        "provider counters in:\n{provider_text}"
    );
    assert!(
        number(&parse(&provider_text), "rpc_server_connections", &[("protocol", "rpc")]) >= 1.0,
        "{provider_text}"
    );
    provider.shutdown().await;
}

/// A provider of [`Metered`] on `port` (0: any), counted in `metrics`.
async fn metered_provider(
    metrics: &Metrics,
    port: u16,
    config: rpc::protocol::server::ServerConfig,
) -> rpc::RunningProvider {
    rpc::Provider::builder()
        .application("metered-provider")
        .protocol("rpc", port)
        .server_config(config)
        .metrics(metrics)
        .serve(MeteredServer::new(MeteredImpl))
        .start()
        .await
        .unwrap_or_else(|e| panic!("the provider did not start on port {port}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_by_the_servers_limits_and_a_reconnect_after_a_restart_are_counted() {
    let provider_metrics = Metrics::new();
    let consumer_metrics = Metrics::new();
    let config = rpc::protocol::server::ServerConfig {
        max_connections: 1,
        max_in_flight: 1,
        ..Default::default()
    };
    let provider = metered_provider(&provider_metrics, 0, config).await;
    let address = provider.local_addr("rpc").unwrap();
    let consumer = rpc::Consumer::builder()
        .application("metered-consumer")
        .registry(format!("rpc://{address}"))
        .metrics(&consumer_metrics)
        .build()
        .await
        .unwrap();
    let client: MeteredClient = consumer
        .reference::<MeteredClient>()
        .timeout(TIMEOUT)
        .retries(0)
        .build()
        .await
        .unwrap();
    assert_eq!(client.work(0).await.unwrap(), 0);

    // The consumer holds the one connection allowed: another is closed at accept.
    let mut refused = tokio::net::TcpStream::connect(address).await.unwrap();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read_to_end(&mut refused, &mut rest),
    )
    .await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "expected a close, got {read:?}");
    // One call in flight (it sleeps until its deadline), so the next is refused unrun.
    let slow = tokio::spawn({
        let client = client.clone();
        async move { client.work(2).await }
    });
    rpc_tests::wait_until("the slow call in flight", Duration::from_secs(5), || {
        provider.in_flight() == 1
    })
    .await;
    let err = client.work(0).await.unwrap_err();
    assert_eq!(
        err.kind(),
        rpc::ErrorKind::Remote(rpc::Status::ServerOverloaded),
        "{err}"
    );
    assert!(slow.await.unwrap().is_err(), "the slow call times out");
    let text = provider_metrics.render();
    let scrape = parse(&text);
    let server = [("application_name", "metered-provider"), ("protocol", "rpc")];
    assert_eq!(
        number(&scrape, "rpc_server_connections_refused_total", &server),
        1.0,
        "{text}"
    );
    assert_eq!(
        number(&scrape, "rpc_server_requests_refused_total", &server),
        1.0,
        "{text}"
    );
    assert_eq!(number(&scrape, "rpc_server_requests_queued", &server), 0.0, "{text}");
    // The consumer counts the refused call as Dubbo's limit failure.
    let consumer_scrape = parse(&consumer_metrics.render());
    assert_eq!(
        counters(&consumer_scrape, "consumer", "metered-consumer")["requests_limit_total"],
        1.0
    );

    // The provider restarts on the same port: the consumer's channel connects again.
    let channel = [
        ("application_name", "metered-consumer"),
        ("protocol", "rpc"),
        ("address", &*address.to_string()),
    ];
    assert_eq!(number(&consumer_scrape, "rpc_consumer_reconnects_total", &channel), 0.0);
    provider.shutdown().await;
    // The port is an ephemeral one: while nothing listens there, the
    // consumer's reconnect attempts can briefly hold it (Linux connects a
    // socket to itself when its source port is the port it dials), so the
    // restart tries again for a bounded time.
    let started = Instant::now();
    let restarted = loop {
        let attempt = rpc::Provider::builder()
            .application("metered-provider")
            .protocol("rpc", address.port())
            .metrics(&Metrics::new())
            .serve(MeteredServer::new(MeteredImpl))
            .start()
            .await;
        match attempt {
            Ok(provider) => break provider,
            Err(e)
                if e.to_string().contains("Address already in use") && started.elapsed() < Duration::from_secs(10) =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("the provider did not restart on port {}: {e}", address.port()),
        }
    };
    let answered = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match client.work(0).await {
                Ok(answer) => return answer,
                // Refused unsent while the channel backs off or sees the old provider leaving.
                Err(e) => {
                    assert_eq!(e.outcome(), rpc::Outcome::NotSent, "{e}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    })
    .await;
    assert_eq!(answered.expect("no answer from the restarted provider within 10 s"), 0);
    let text = consumer_metrics.render();
    assert_eq!(
        number(&parse(&text), "rpc_consumer_reconnects_total", &channel),
        1.0,
        "{text}"
    );
    restarted.shutdown().await;
}

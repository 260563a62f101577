//! Filters on both sides, the tower way: a logging and timing layer of our
//! own around every call of the consumer and every request of the provider,
//! and tower's own concurrency limit and load shedding on the consumer.
//!
//! ```text
//! cargo run -p rpc-examples --example filters
//! ```
//!
//! One process, a memory registry: the provider and the consumer find each
//! other without ZooKeeper. Each line the filters print names the side, the
//! method, who is on the other end, the outcome and the time taken.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use rpc::{Invocation, Response, RpcError};
use rpc_examples::{GreeterClient, GreeterImpl, GreeterServer};
use tower::{Layer, Service, ServiceBuilder};

/// Logs every call that passes it, with its outcome and how long it took.
#[derive(Clone, Copy)]
struct Timing {
    side: &'static str,
}

impl<S> Layer<S> for Timing {
    type Service = Timed<S>;

    fn layer(&self, inner: S) -> Timed<S> {
        Timed { inner, side: self.side }
    }
}

#[derive(Clone)]
struct Timed<S> {
    inner: S,
    side: &'static str,
}

impl<S> Service<Invocation> for Timed<S>
where
    S: Service<Invocation, Response = Response, Error = RpcError>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = RpcError;
    type Future = Pin<Box<dyn Future<Output = Result<Response, RpcError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), RpcError>> {
        // Readiness is the inner service's: a limit below us holds us back.
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, invocation: Invocation) -> Self::Future {
        let side = self.side;
        let method = invocation.method().to_string();
        // The provider sees its caller; an attempt layer would see the provider.
        let peer = match (invocation.remote_address(), invocation.provider()) {
            (Some(caller), _) => format!("from {caller}"),
            (None, Some(provider)) => format!("to {}", provider.address()),
            (None, None) => String::new(),
        };
        let started = Instant::now();
        let call = self.inner.call(invocation);
        Box::pin(async move {
            let result = call.await;
            let outcome = match &result {
                Ok(_) => "ok".to_string(),
                Err(error) => format!("failed: {error}"),
            };
            println!("[{side}] {method} {peer} {outcome} in {:?}", started.elapsed());
            result
        })
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let provider = rpc::Provider::builder()
        .application("filters-provider")
        .registry("memory://filters")
        .protocol("rpc", 0)
        .layer(Timing { side: "provider" })
        .serve(GreeterServer::new(GreeterImpl::new(None)))
        .start()
        .await?;

    let consumer = rpc::Consumer::builder()
        .application("filters-consumer")
        .registry("memory://filters")
        // Once per call, above the cluster.
        .layer(Timing { side: "consumer" })
        // Once per attempt, around the provider the balancer picked.
        .attempt_layer(Timing { side: "attempt" })
        .build()
        .await?;
    let greeter: GreeterClient = consumer
        .reference::<GreeterClient>()
        .timeout(Duration::from_secs(2))
        // At most one call of this reference in flight; more are refused at
        // once, unsent (`ErrorKind::LocalLimit`), instead of queueing.
        .layer(ServiceBuilder::new().load_shed().concurrency_limit(1).into_inner())
        .build()
        .await?;

    println!("{}", greeter.say_hello("filters".into()).await?);

    // Two calls at once against a limit of one: the second is shed.
    let (slow, quick) = tokio::join!(greeter.sleep(200), greeter.say_hello("second".into()));
    println!("slow call: {:?}", slow.map_err(|e| e.kind()));
    match quick {
        Ok(_) => println!("the second call was answered"),
        Err(error) => println!(
            "the second call was shed: kind {:?}, outcome {:?}",
            error.kind(),
            error.outcome()
        ),
    }

    provider.shutdown().await;
    Ok(())
}

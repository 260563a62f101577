//! The `java-dubbo` system: a Java Apache Dubbo 3.3.6 provider
//! (`tests/java/dubbo-greeter`'s `GreeterProvider`, built by
//! `tests/java/build.sh`) called by our `dubbo` client (Hessian2 over a
//! `DubboChannel`), so the table compares a Java provider with ours under the
//! same load generator and on the same core.
//!
//! Opt-in (`--systems java-dubbo`): it needs the Java peers built and a JDK.
//! The Java interface has no echo: the call is `sayHello(64-byte string)`,
//! answered `Hello, <name> from java`; only the 64-byte scenario runs.

use std::os::unix::process::CommandExt as _;
use std::time::Duration;

use rpc::protocol::dubbo::DubboChannel;
use rpc::protocol::rpc::RpcChannelConfig;
use rpc::{BoxInvoker, ServiceClient as _, ServiceKey, Stub};
use rpc_tests::java_greeter::GreeterClient;
use tower::Layer as _;

use crate::payload::{self, Payload};

const TIMEOUT: Duration = Duration::from_secs(30);

/// The class path of the built Java peers, or why there is none (with the
/// command that builds them).
pub fn classpath() -> Result<String, String> {
    std::panic::catch_unwind(rpc_tests::java::classpath).map_err(|panic| {
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| format!("the Java peers are missing: {}", rpc_tests::java::BUILD_INSTRUCTION))
    })
}

/// Serves from this process, already pinned to its core: prints `listening
/// 127.0.0.1:<dubbo port>`, then replaces itself with the Java provider (same
/// process id and CPU affinity), which prints `exported ...` and `ready`.
/// Returns only when that fails.
pub fn serve() -> Result<(), String> {
    let classpath = classpath()?;
    let (dubbo, tri) = (rpc_tests::free_port(), rpc_tests::free_port());
    println!("listening 127.0.0.1:{dubbo}");
    let error = std::process::Command::new("java")
        // The JIT at full strength (the tests' JVMs stop at C1 to start fast).
        .args(["-Xmx512m", "-Djava.net.preferIPv4Stack=true", "-cp", &classpath])
        .arg("org.example.GreeterProvider")
        .args(["--registry", "N/A", "--dubbo-port", &dubbo.to_string()])
        .args(["--tri-port", &tri.to_string()])
        .exec();
    Err(format!("cannot run `java org.example.GreeterProvider`: {error}"))
}

/// A client calling `sayHello` on the Java provider over `dubbo`.
#[derive(Clone, Debug)]
pub struct Client {
    greeter: GreeterClient,
    name: std::sync::Arc<String>,
}

impl Client {
    /// A client for `payload` (only [`Payload::Small`]) to `addr`.
    pub async fn connect(addr: std::net::SocketAddr, payload: Payload) -> Result<Client, String> {
        if payload != Payload::Small {
            return Err("java-dubbo runs only the 64-byte scenario (the Java interface has no record echo)".into());
        }
        let key = ServiceKey::new("org.example.Greeter", Some("1.0.0"), None);
        let deadline = tower::util::MapRequestLayer::new(|mut invocation: rpc::Invocation| {
            invocation.set_deadline(tokio::time::Instant::now().checked_add(TIMEOUT));
            invocation
        });
        let channel = DubboChannel::new(addr.to_string(), RpcChannelConfig::default());
        let stub = Stub::new(key, BoxInvoker::always_ready(deadline.layer(channel)))
            .with_serialization(rpc::Serialization::Hessian2);
        let client = Client {
            greeter: GreeterClient::from_stub(stub),
            name: std::sync::Arc::new(payload::small()),
        };
        // Connect now, not during the measurement.
        client.call().await?;
        Ok(client)
    }

    /// One `sayHello` call, its answer checked.
    pub fn call(&self) -> impl std::future::Future<Output = Result<(), String>> + Send + 'static + use<> {
        let call = self.greeter.say_hello((*self.name).clone());
        let want = "Hello, ".len() + self.name.len() + " from java".len();
        async move {
            let reply = call.await.map_err(|e| e.to_string())?;
            if reply.len() != want {
                return Err(format!("wrong reply: {reply}"));
            }
            Ok(())
        }
    }
}

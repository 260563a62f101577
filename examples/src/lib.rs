//! The greeter API shared by the example provider and consumer, and an
//! implementation of it.
//!
//! `cargo run --example quickstart` runs both sides in one process;
//! `greeter-provider` and `greeter-consumer` are the two sides as separate
//! programs (see `--help`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// An order for [`Greeter::place_order`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// What to buy.
    pub item: String,
    /// How many.
    pub quantity: u32,
}

/// The id of a placed order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderId(pub u64);

/// Why an order was refused: a business error, returned as a value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum OrderError {
    /// Nothing left of the item.
    #[error("out of stock: {item}")]
    OutOfStock {
        /// The item.
        item: String,
    },
    /// The quantity is zero or too large.
    #[error("invalid quantity {0} (1 to 100)")]
    InvalidQuantity(u32),
}

/// Greets people and takes orders.
#[rpc::service(interface = "org.example.Greeter", version = "1.0.0")]
pub trait Greeter {
    /// Answers `Hello, {name}`.
    async fn say_hello(&self, name: String) -> String;

    /// Places an order. Not idempotent: never retried after an unknown outcome.
    #[rpc(timeout = "300ms", retries = 0, idempotent = false)]
    async fn place_order(&self, order: Order) -> Result<OrderId, OrderError>;

    /// Waits `millis` milliseconds, then answers them: for timeout experiments.
    async fn sleep(&self, millis: u64) -> u64;
}

/// The example implementation. `tag` (when set) is appended to greetings, so
/// a consumer can tell providers apart.
#[derive(Debug, Default)]
pub struct GreeterImpl {
    tag: Option<String>,
    delay: Duration,
    next_order: std::sync::atomic::AtomicU64,
    greeted: std::sync::atomic::AtomicU64,
}

impl GreeterImpl {
    /// A greeter whose greetings end with ` from {tag}` when `tag` is set.
    pub fn new(tag: Option<String>) -> Self {
        GreeterImpl {
            tag,
            delay: Duration::ZERO,
            next_order: std::sync::atomic::AtomicU64::new(1),
            greeted: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Waits `delay` before each greeting (to play a slow provider).
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Greetings answered so far.
    pub fn greeted(&self) -> u64 {
        self.greeted.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Greeter for GreeterImpl {
    async fn say_hello(&self, name: String) -> String {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        self.greeted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match &self.tag {
            Some(tag) => format!("Hello, {name} from {tag}"),
            None => format!("Hello, {name}"),
        }
    }

    async fn place_order(&self, order: Order) -> Result<OrderId, OrderError> {
        if order.quantity == 0 || order.quantity > 100 {
            return Err(OrderError::InvalidQuantity(order.quantity));
        }
        if order.item == "unobtainium" {
            return Err(OrderError::OutOfStock { item: order.item });
        }
        Ok(OrderId(
            self.next_order.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        ))
    }

    async fn sleep(&self, millis: u64) -> u64 {
        tokio::time::sleep(Duration::from_millis(millis)).await;
        millis
    }
}

/// Installs the examples' logging: `tracing` events on stderr, filtered by
/// `RUST_LOG` (else `default_filter`), with terminal colours only when
/// stderr is a terminal (a file or pipe gets plain text); and, when
/// `RPC_TRACE_FILE` names a file, every finished span appended to it as a
/// JSON line ([`rpc::observe::TraceFile`]), whatever the filter.
pub fn init_logging(default_filter: &str) {
    use std::io::IsTerminal;
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default_filter.into());
    let log = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_filter(filter);
    tracing_subscriber::registry()
        .with(log)
        .with(rpc::observe::TraceFile::from_env())
        .init();
}

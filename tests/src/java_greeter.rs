//! The Java peers' interface, `org.example.Greeter` (`tests/java/dubbo-greeter`),
//! in Rust: the types with their Java class names, the service trait, a Rust
//! implementation answering as the Java provider does (`from rust` instead of
//! `from java`), and the checks of the Java provider's answers.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How long a Java consumer may take for its calls once started.
pub const CALLS_TIMEOUT: Duration = Duration::from_secs(60);

/// `org.example.Order`: its Java class is the interface's package plus the name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Order {
    /// What to buy.
    pub item: String,
    /// How many (Java `int`).
    pub quantity: i32,
    /// Free-form tags.
    pub tags: Vec<String>,
}

/// `org.example.OrderId`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OrderId {
    /// The id (Java `long`).
    pub id: i64,
}

/// `org.example.OrderRejected`, the declared exception of `placeOrder`: its
/// message is Java's `Throwable.detailMessage`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OrderRejected {
    /// Why.
    #[serde(rename = "detailMessage")]
    pub message: String,
}

/// The Java interface `org.example.Greeter`, in Rust.
#[rpc::service(interface = "org.example.Greeter", version = "1.0.0")]
pub trait Greeter {
    /// `sayHello(String)`.
    async fn say_hello(&self, name: String) -> String;
    /// `placeOrder(Order) throws OrderRejected`.
    async fn place_order(&self, order: Order) -> Result<OrderId, OrderRejected>;
    /// `sleep(long)`.
    async fn sleep(&self, millis: i64);
    /// `echoList(List<String>)`.
    async fn echo_list(&self, values: Vec<String>) -> Vec<String>;
    /// `echoMap(Map<String, Integer>)`.
    async fn echo_map(&self, values: BTreeMap<String, i32>) -> BTreeMap<String, i32>;
    /// `echoNullable(String)`.
    async fn echo_nullable(&self, value: Option<String>) -> Option<String>;
}

/// The same interface with a method the Java one does not have.
#[rpc::service(interface = "org.example.Greeter", version = "1.0.0")]
pub trait GreeterPlus {
    /// `sayHello(String)`.
    async fn say_hello(&self, name: String) -> String;
    /// Not in the Java interface.
    async fn shout(&self, name: String) -> String;
}

/// What the Java provider does, in Rust: `from rust` instead of `from java`.
#[derive(Clone, Copy, Debug, Default)]
pub struct RustGreeter;

impl Greeter for RustGreeter {
    async fn say_hello(&self, name: String) -> String {
        format!("Hello, {name} from rust")
    }

    async fn place_order(&self, order: Order) -> Result<OrderId, OrderRejected> {
        if order.quantity <= 0 {
            return Err(OrderRejected {
                message: format!("quantity must be positive, got {} for {}", order.quantity, order.item),
            });
        }
        Ok(OrderId {
            id: i64::from(order.quantity) * 1000 + order.tags.len() as i64,
        })
    }

    async fn sleep(&self, millis: i64) {
        tokio::time::sleep(Duration::from_millis(millis.max(0) as u64)).await;
    }

    async fn echo_list(&self, values: Vec<String>) -> Vec<String> {
        values
    }

    async fn echo_map(&self, values: BTreeMap<String, i32>) -> BTreeMap<String, i32> {
        values
    }

    async fn echo_nullable(&self, value: Option<String>) -> Option<String> {
        value
    }
}

/// The call cases every Rust consumer of the Java provider checks, whatever
/// the protocol (`dubbo` or `tri`): a string, a struct argument and its id,
/// the declared exception as the method's `Err`, `void`, lists, a map, nulls.
///
/// # Panics
/// On any call that fails or answers otherwise than the Java provider does.
#[allow(clippy::unwrap_used)] // a test helper: a panic is a failed test
pub async fn check_java_provider_answers(greeter: &GreeterClient) {
    assert_eq!(
        greeter.say_hello("world".into()).await.unwrap(),
        "Hello, world from java"
    );
    let order = Order {
        item: "apple".into(),
        quantity: 3,
        tags: vec!["red".into(), "big".into()],
    };
    assert_eq!(greeter.place_order(order).await.unwrap(), Ok(OrderId { id: 3002 }));
    let rejected = Order {
        item: "apple".into(),
        quantity: 0,
        tags: vec![],
    };
    assert_eq!(
        greeter.place_order(rejected).await.unwrap(),
        Err(OrderRejected {
            message: "quantity must be positive, got 0 for apple".into()
        })
    );
    greeter.sleep(10).await.unwrap();
    let list = vec!["a".to_string(), "b".to_string()];
    assert_eq!(greeter.echo_list(list.clone()).await.unwrap(), list);
    assert!(greeter.echo_list(vec![]).await.unwrap().is_empty());
    let map: BTreeMap<String, i32> = [("k".to_string(), 1), ("j".to_string(), 2)].into();
    assert_eq!(greeter.echo_map(map.clone()).await.unwrap(), map);
    assert_eq!(greeter.echo_nullable(None).await.unwrap(), None);
    assert_eq!(
        greeter.echo_nullable(Some("x".into())).await.unwrap().as_deref(),
        Some("x")
    );
}

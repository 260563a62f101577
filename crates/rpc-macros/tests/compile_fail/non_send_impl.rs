use std::rc::Rc;

#[rpc_macros::service(crate = "::rpc_core")]
trait Greeter {
    async fn say_hello(&self, name: String) -> String;
}

struct Impl;

impl Greeter for Impl {
    async fn say_hello(&self, name: String) -> String {
        let greeting = Rc::new(format!("hello, {name}"));
        std::future::ready(()).await;
        greeting.to_string()
    }
}

fn main() {}

#[rpc_macros::service(crate = "::rpc_core")]
trait Greeter {
    async fn say_hello(name: String) -> String;
    async fn ping();
}

fn main() {}

#[rpc_macros::service(crate = "::rpc_core")]
trait Greeter {
    async fn say_hello(self: Box<Self>, name: String) -> String;
}

fn main() {}

#[rpc_macros::service(crate = "::rpc_core")]
trait Greeter {
    async fn say_hello(self, name: String) -> String;
}

fn main() {}

#[rpc_macros::service(crate = "::rpc_core")]
#[rpc(timeout = "1s")]
trait Greeter {
    async fn say_hello(&self, name: String) -> String;
}

fn main() {}

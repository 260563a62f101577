#[rpc_macros::service(crate = "::rpc_core")]
trait Greeter {
    #[rpc(tmeout = "1s")]
    async fn say_hello(&self, name: String) -> String;
}

fn main() {}

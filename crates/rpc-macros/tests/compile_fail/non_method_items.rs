#[rpc_macros::service(crate = "::rpc_core")]
trait Greeter {
    const GREETING: &'static str;
    type Name;
    async fn say_hello(&self, name: String) -> String;
}

fn main() {}

#[rpc_macros::service(crate = "::rpc_core", interface = "", version = 1)]
trait Greeter {
    #[rpc(retries = -1, idempotent = "yes", name = "say hello")]
    async fn say_hello(&self, name: String) -> String;
    #[rpc(retries = 1, retries = 2)]
    async fn ping(&self);
    #[rpc]
    async fn pong(&self);
}

fn main() {}

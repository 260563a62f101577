#[rpc_macros::service(crate = "::rpc_core")]
trait Greeter {
    #[rpc(cluster = "failfastt")]
    async fn say_hello(&self, name: String) -> String;
    #[rpc(cluster = "roundrobin")]
    async fn ping(&self);
}

fn main() {}

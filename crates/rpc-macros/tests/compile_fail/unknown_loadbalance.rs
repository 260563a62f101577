#[rpc_macros::service(crate = "::rpc_core")]
trait Greeter {
    #[rpc(loadbalance = "least_activ")]
    async fn say_hello(&self, name: String) -> String;
    #[rpc(loadbalance = "fastest")]
    async fn ping(&self);
}

fn main() {}

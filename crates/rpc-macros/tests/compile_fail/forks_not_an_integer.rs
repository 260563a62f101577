#[rpc_macros::service(crate = "::rpc_core")]
trait Greeter {
    #[rpc(cluster = "forking", forks = "3")]
    async fn say_hello(&self, name: String) -> String;
    #[rpc(cluster = "forking", forks = 1.5)]
    async fn say_goodbye(&self, name: String) -> String;
    #[rpc(cluster = "forking", forks = 0)]
    async fn ping(&self);
    #[rpc(actives = "10")]
    async fn pong(&self);
}

fn main() {}

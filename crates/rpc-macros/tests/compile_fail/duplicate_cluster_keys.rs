#[rpc_macros::service(crate = "::rpc_core")]
trait Greeter {
    #[rpc(cluster = "failfast", loadbalance = "random")]
    #[rpc(cluster = "failover", loadbalance = "p2c")]
    async fn say_hello(&self, name: String) -> String;
    #[rpc(forks = 2, actives = 1, attempt_timeout = "1s", hash_arguments = [0])]
    #[rpc(forks = 3, actives = 2, attempt_timeout = "2s", hash_arguments = [0])]
    async fn say_goodbye(&self, name: String) -> String;
}

fn main() {}

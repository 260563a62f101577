#[rpc_macros::service(crate = "::rpc_core")]
trait Greeter {
    #[rpc(loadbalance = "consistenthash", hash_arguments = [0, 2])]
    async fn say_hello(&self, name: String, lang: String) -> String;
    #[rpc(hash_arguments = [1])]
    async fn say_goodbye(&self, name: String) -> String;
    #[rpc(hash_arguments = [0])]
    async fn ping(&self);
}

fn main() {}

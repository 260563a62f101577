#[rpc_macros::service(crate = "::rpc_core")]
trait Greeter {
    async fn say_hello(&self, name: &str) -> String;
    async fn clone_me(&self) -> Self;
    async fn greet_all(&self, names: impl IntoIterator<Item = String>) -> Vec<String>;
}

fn main() {}

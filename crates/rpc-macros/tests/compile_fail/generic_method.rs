#[rpc_macros::service(crate = "::rpc_core")]
trait Store {
    async fn get<K: serde::Serialize>(&self, key: K) -> String;
}

fn main() {}

#[rpc_macros::service(crate = "::rpc_core")]
trait Store<K> {
    async fn get(&self, key: K) -> String;
}

fn main() {}

#[rpc_macros::service(crate = "::rpc_core")]
trait Counter {
    async fn increment(&mut self) -> u64;
}

fn main() {}

#[rpc_macros::service(crate = "::rpc_core")]
trait Calculator {
    async fn add(&self, (a, b): (u8, u8)) -> u8;
}

fn main() {}

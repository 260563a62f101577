#[rpc_macros::service(crate = "::rpc_core")]
trait Greeter {
    #[rpc(hash_arguments = 0)]
    async fn one(&self, a: u32) -> u32;
    #[rpc(hash_arguments = [])]
    async fn none(&self, a: u32) -> u32;
    #[rpc(hash_arguments = [0, -1, "b", 1u8, 32])]
    async fn mixed(&self, a: u32, b: u32) -> u32;
    #[rpc(hash_arguments = [1, 0, 1])]
    async fn twice(&self, a: u32, b: u32) -> u32;
}

fn main() {}

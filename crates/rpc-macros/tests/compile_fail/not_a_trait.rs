#[rpc_macros::service(crate = "::rpc_core")]
struct Greeter {
    name: String,
}

fn main() {}

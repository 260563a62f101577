#[rpc_macros::service(crate = "::rpc_core")]
trait Greeter {
    fn say_hello(&self, name: String) -> String;
}

fn main() {}

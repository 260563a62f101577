#[rpc_macros::service(crate = "::rpc_core", foo = 1, intreface = "org.example.Greeter")]
trait Greeter {
    async fn say_hello(&self, name: String) -> String;
}

fn main() {}

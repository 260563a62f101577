#[rpc_macros::service(crate = "::rpc_core")]
trait Greeter
where
    Self: Sized,
{
    async fn say_hello(&self, name: String) -> String
    where
        Self: Send;
}

fn main() {}

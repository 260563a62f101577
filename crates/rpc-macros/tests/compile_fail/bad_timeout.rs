#[rpc_macros::service(crate = "::rpc_core")]
trait Greeter {
    #[rpc(timeout = "abc")]
    async fn say_hello(&self, name: String) -> String;
    #[rpc(timeout = "300")]
    async fn say_goodbye(&self, name: String) -> String;
    #[rpc(timeout = "0s")]
    async fn ping(&self);
    #[rpc(attempt_timeout = "5h")]
    async fn pong(&self);
}

fn main() {}

#[rpc_macros::service(crate = "::rpc_core")]
trait Store<'a> {
    async fn get<'b>(&self, key: &'b str) -> Vec<&'a str>;
}

fn main() {}

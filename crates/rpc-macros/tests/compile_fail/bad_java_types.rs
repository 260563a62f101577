#[rpc_macros::service(crate = "::rpc_core")]
trait Bad {
    #[rpc(java_types = "Ljava/lang/String")]
    async fn unterminated(&self, name: String) -> String;

    #[rpc(java_types = "JJ")]
    async fn too_many(&self, a: i64) -> i64;

    #[rpc(java_types = 3)]
    async fn not_a_string(&self, a: i64) -> i64;
}

fn main() {}

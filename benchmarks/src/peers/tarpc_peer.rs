//! The tarpc peer: an `Echo` service over tarpc's TCP serde transport with
//! Bincode framing, the configuration tarpc's README and examples use.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tarpc::client;
use tarpc::context::{self, Context};
use tarpc::serde_transport;
use tarpc::server::{BaseChannel, Channel};
use tarpc::tokio_serde::formats::Bincode;
use tarpc::tokio_util::codec::{Framed, LengthDelimitedCodec};
use tokio::net::TcpListener;

use crate::payload::{self, Payload, Record};

/// Largest frame either side accepts.
const MAX_FRAME: usize = 16 * 1024 * 1024;

/// Deadline carried by every request's context.
const DEADLINE: Duration = Duration::from_secs(30);

/// Echo service definition: each method returns its argument.
#[tarpc::service]
pub(crate) trait Echo {
    /// Echoes the 64-byte string.
    async fn small(s: String) -> String;
    /// Echoes the ~1 KiB record.
    async fn large(r: Record) -> Record;
}

/// The server-side implementation of [`Echo`].
#[derive(Clone, Copy, Debug)]
struct EchoServer;

impl Echo for EchoServer {
    async fn small(self, _: Context, s: String) -> String {
        s
    }

    async fn large(self, _: Context, r: Record) -> Record {
        r
    }
}

async fn spawn(fut: impl Future<Output = ()> + Send + 'static) {
    tokio::spawn(fut);
}

/// Serves Echo on `listener` (accepting connections forever) until the process ends.
pub async fn serve(listener: TcpListener) -> Result<(), String> {
    loop {
        let (stream, _peer) = listener.accept().await.map_err(|e| format!("tarpc accept: {e}"))?;
        stream
            .set_nodelay(true)
            .map_err(|e| format!("tarpc set_nodelay: {e}"))?;
        let codec = LengthDelimitedCodec::builder().max_frame_length(MAX_FRAME).new_codec();
        let transport = serde_transport::new(Framed::new(stream, codec), Bincode::default());
        let channel = BaseChannel::with_defaults(transport);
        tokio::spawn(channel.execute(EchoServer.serve()).for_each(spawn));
    }
}

/// The prebuilt value a [`Client`] echoes.
#[derive(Debug)]
enum Prebuilt {
    Small(String),
    Large(Record),
}

/// A client echoing `payload` on one connection to `addr`.
#[derive(Clone, Debug)]
pub struct Client {
    client: EchoClient,
    payload: Arc<Prebuilt>,
}

impl Client {
    /// Connects to the tarpc server at `addr` (one TCP connection, nodelay,
    /// Bincode) and prepares `payload`.
    pub async fn connect(addr: SocketAddr, payload: Payload) -> Result<Client, String> {
        let mut connect = serde_transport::tcp::connect(addr, Bincode::default);
        connect.config_mut().max_frame_length(MAX_FRAME);
        let transport = connect.await.map_err(|e| format!("tarpc connect {addr}: {e}"))?;
        transport
            .get_ref()
            .set_nodelay(true)
            .map_err(|e| format!("tarpc set_nodelay: {e}"))?;
        let config = {
            let mut config = client::Config::default();
            config.max_in_flight_requests = config.max_in_flight_requests.max(4096);
            config.pending_request_buffer = config.pending_request_buffer.max(1024);
            config
        };
        let client = EchoClient::new(config, transport).spawn();
        let payload = match payload {
            Payload::Small => Prebuilt::Small(payload::small()),
            Payload::Large => Prebuilt::Large(payload::record()),
        };
        Ok(Client {
            client,
            payload: Arc::new(payload),
        })
    }

    /// One echo call of the payload (a clone of a prebuilt value); checks the
    /// reply cheaply (length or id), error string on failure.
    pub fn call(&self) -> impl Future<Output = Result<(), String>> + Send + 'static + use<> {
        let client = self.client.clone();
        let payload = Arc::clone(&self.payload);
        async move {
            let mut ctx = context::current();
            ctx.deadline = Instant::now() + DEADLINE;
            match &*payload {
                Prebuilt::Small(s) => {
                    let reply = client
                        .small(ctx, s.clone())
                        .await
                        .map_err(|e| format!("tarpc small: {e}"))?;
                    if reply.len() != s.len() {
                        return Err(format!("tarpc small: got {} bytes, want {}", reply.len(), s.len()));
                    }
                }
                Prebuilt::Large(r) => {
                    let reply = client
                        .large(ctx, r.clone())
                        .await
                        .map_err(|e| format!("tarpc large: {e}"))?;
                    if reply.id != r.id || reply.note.len() != r.note.len() {
                        return Err(format!("tarpc large: reply id {} does not match {}", reply.id, r.id));
                    }
                }
            }
            Ok(())
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tarpc_echoes_both_payloads_concurrently() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener));

        for payload in [Payload::Small, Payload::Large] {
            let client = Client::connect(addr, payload).await.unwrap();
            let calls: Vec<_> = (0..100).map(|_| tokio::spawn(client.call())).collect();
            for call in calls {
                call.await.unwrap().unwrap();
            }
        }
    }
}

//! The floor: a raw tokio length-prefixed echo with request ids, one writer
//! task per connection coalescing frames, no serialization, no framework.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::{BufMut, Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

use crate::payload::{self, Payload};

/// Echoes every frame on every connection of `listener` until the process ends.
pub async fn serve(listener: TcpListener) -> Result<(), String> {
    loop {
        let (stream, _) = listener.accept().await.map_err(|e| e.to_string())?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let (read, write) = stream.into_split();
            let mut frames = FramedRead::new(read, LengthDelimitedCodec::new());
            let mut sink = FramedWrite::new(write, LengthDelimitedCodec::new());
            let (tx, mut rx) = mpsc::channel::<Bytes>(1024);
            let writer = tokio::spawn(async move {
                let mut batch = Vec::with_capacity(64);
                while rx.recv_many(&mut batch, 64).await > 0 {
                    // The same batching as the frameworks get: let ready senders run first.
                    tokio::task::yield_now().await;
                    while batch.len() < 256 {
                        match rx.try_recv() {
                            Ok(frame) => batch.push(frame),
                            Err(_) => break,
                        }
                    }
                    for frame in batch.drain(..) {
                        if sink.feed(frame).await.is_err() {
                            return;
                        }
                    }
                    if SinkExt::<Bytes>::flush(&mut sink).await.is_err() {
                        return;
                    }
                }
            });
            while let Some(Ok(frame)) = frames.next().await {
                // Echo on a task, as a server handling requests concurrently would.
                let tx = tx.clone();
                tokio::spawn(async move {
                    let _ = tx.send(frame.freeze()).await;
                });
            }
            drop(tx);
            let _ = writer.await;
        });
    }
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Bytes>>>>;

/// A multiplexed raw client: frames are `u64 id | payload`.
#[derive(Clone, Debug)]
pub struct Client {
    tx: mpsc::Sender<Bytes>,
    pending: Pending,
    next: Arc<AtomicU64>,
    body: Bytes,
}

impl Client {
    /// A client echoing `payload` (the bincode encoding of the record for the large one).
    pub async fn connect(addr: SocketAddr, payload: Payload) -> Result<Client, String> {
        let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let _ = stream.set_nodelay(true);
        let (read, write) = stream.into_split();
        let pending: Pending = Arc::default();
        let (tx, mut rx) = mpsc::channel::<Bytes>(1024);
        let mut sink = FramedWrite::new(write, LengthDelimitedCodec::new());
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(64);
            while rx.recv_many(&mut batch, 64).await > 0 {
                tokio::task::yield_now().await;
                while batch.len() < 256 {
                    match rx.try_recv() {
                        Ok(frame) => batch.push(frame),
                        Err(_) => break,
                    }
                }
                for frame in batch.drain(..) {
                    if sink.feed(frame).await.is_err() {
                        return;
                    }
                }
                if SinkExt::<Bytes>::flush(&mut sink).await.is_err() {
                    return;
                }
            }
        });
        let reader_pending = pending.clone();
        tokio::spawn(async move {
            let mut frames = FramedRead::new(read, LengthDelimitedCodec::new());
            while let Some(Ok(frame)) = frames.next().await {
                let Some(id) = frame.get(..8).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes) else {
                    continue;
                };
                let waiter = reader_pending
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&id);
                if let Some(waiter) = waiter {
                    let _ = waiter.send(frame.freeze());
                }
            }
        });
        let body = match payload {
            Payload::Small => Bytes::from(payload::small()),
            Payload::Large => rpc::Serialization::Bincode
                .encode(&payload::record())
                .map_err(|e| e.to_string())?,
        };
        Ok(Client {
            tx,
            pending,
            next: Arc::default(),
            body,
        })
    }

    /// One echo round trip.
    pub fn call(&self) -> impl std::future::Future<Output = Result<(), String>> + Send + 'static + use<> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let mut frame = BytesMut::with_capacity(8 + self.body.len());
        frame.put_u64(id);
        frame.put_slice(&self.body);
        let (done, reply) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, done);
        let tx = self.tx.clone();
        let expected = frame.len();
        async move {
            tx.send(frame.freeze())
                .await
                .map_err(|_| "connection closed".to_string())?;
            let reply = reply.await.map_err(|_| "connection closed".to_string())?;
            if reply.len() != expected {
                return Err("wrong reply".into());
            }
            Ok(())
        }
    }
}

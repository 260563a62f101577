//! A loopback TCP proxy that records the bytes it forwards, and splitters for
//! what it records: Dubbo frames (16-byte header) and HTTP/2 frames.
//!
//! [`RecordingProxy::start`] listens on `127.0.0.1:0` and forwards each
//! connection to its target like [`crate::proxy::Proxy`], appending every
//! byte to that connection's [`Recording`] (client to server, server to
//! client). Recordings are bounded ([`MAX_RECORDED`] per direction; more is
//! forwarded, not recorded) so a long test cannot grow them without limit.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// Bytes recorded per connection and direction, at most.
pub const MAX_RECORDED: usize = 4 * 1024 * 1024;

/// The bytes of one proxied connection, in the order they were forwarded.
#[derive(Clone, Debug, Default)]
pub struct Recording {
    /// What the client sent.
    pub to_server: Vec<u8>,
    /// What the server answered.
    pub to_client: Vec<u8>,
}

type Recordings = Arc<Mutex<Vec<Arc<Mutex<Recording>>>>>;

/// A recording TCP proxy from a loopback port to a target; stops (closing
/// every connection) on drop.
#[derive(Debug)]
pub struct RecordingProxy {
    address: SocketAddr,
    recordings: Recordings,
    accept: JoinHandle<()>,
}

impl RecordingProxy {
    /// Listens on a free loopback port and forwards each connection to
    /// `target` (`host:port`), recording both directions.
    ///
    /// # Panics
    /// Outside a Tokio runtime, or when no loopback port can be bound.
    pub fn start(target: &str) -> RecordingProxy {
        RecordingProxy::start_on("127.0.0.1", target)
    }

    /// Like [`start`](Self::start), listening on a free port of `host`
    /// instead: Java Dubbo's `dubbo://` client replaces a loopback address
    /// with the machine's own (`NetUtils.filterLocalHost`), so a proxy for a
    /// Java consumer listens on the address the Java provider registered.
    ///
    /// # Panics
    /// Outside a Tokio runtime, or when no port of `host` can be bound.
    pub fn start_on(host: &str, target: &str) -> RecordingProxy {
        let listener = std::net::TcpListener::bind((host, 0))
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .unwrap_or_else(|e| panic!("the recording proxy to {target} cannot listen on {host}: {e}"));
        let address = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("the recording proxy to {target} has no local address: {e}"));
        let listener = TcpListener::from_std(listener)
            .unwrap_or_else(|e| panic!("the recording proxy to {target} cannot register its listener: {e}"));
        let recordings = Recordings::default();
        let accept = tokio::spawn(accept_loop(listener, target.to_owned(), Arc::clone(&recordings)));
        RecordingProxy {
            address,
            recordings,
            accept,
        }
    }

    /// `host:port`, the address clients connect to instead of the target's.
    pub fn address(&self) -> String {
        self.address.to_string()
    }

    /// A copy of every connection's recording so far, in accept order.
    pub fn recordings(&self) -> Vec<Recording> {
        self.recordings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|r| r.lock().unwrap_or_else(PoisonError::into_inner).clone())
            .collect()
    }
}

impl Drop for RecordingProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn accept_loop(listener: TcpListener, target: String, recordings: Recordings) {
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let Ok((client, _)) = accepted else {
            continue;
        };
        let recording = Arc::new(Mutex::new(Recording::default()));
        recordings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::clone(&recording));
        let target = target.clone();
        connections.spawn(async move {
            let Ok(server) = TcpStream::connect(&target).await else {
                return;
            };
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            let up = copy_recording(client_read, server_write, Arc::clone(&recording), true);
            let down = copy_recording(server_read, client_write, recording, false);
            // Either side closing ends the connection (both halves dropped).
            tokio::select! {
                () = up => {}
                () = down => {}
            }
        });
    }
}

async fn copy_recording(
    mut from: impl AsyncReadExt + Unpin,
    mut to: impl AsyncWriteExt + Unpin,
    recording: Arc<Mutex<Recording>>,
    to_server: bool,
) {
    let mut buffer = vec![0; 64 * 1024];
    loop {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        {
            let mut recording = recording.lock().unwrap_or_else(PoisonError::into_inner);
            let bytes = if to_server {
                &mut recording.to_server
            } else {
                &mut recording.to_client
            };
            let room = MAX_RECORDED.saturating_sub(bytes.len());
            bytes.extend_from_slice(&buffer[..n.min(room)]);
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}

/// One Dubbo frame: the 16-byte header and its body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DubboFrame {
    /// The whole frame, header included.
    pub bytes: Vec<u8>,
}

impl DubboFrame {
    /// The flag byte: request (0x80), two-way (0x40), event (0x20), and the
    /// serialization id in the low 5 bits.
    pub fn flags(&self) -> u8 {
        self.bytes[2]
    }

    /// Whether it is a request.
    pub fn is_request(&self) -> bool {
        self.flags() & 0x80 != 0
    }

    /// Whether it is an event (a heartbeat).
    pub fn is_event(&self) -> bool {
        self.flags() & 0x20 != 0
    }

    /// The serialization id (2: Hessian2).
    pub fn serialization(&self) -> u8 {
        self.flags() & 0x1f
    }

    /// The status byte (responses: 20 is OK).
    pub fn status(&self) -> u8 {
        self.bytes[3]
    }

    /// The request id.
    pub fn id(&self) -> u64 {
        let mut id = [0; 8];
        id.copy_from_slice(&self.bytes[4..12]);
        u64::from_be_bytes(id)
    }

    /// The body (after the header).
    pub fn body(&self) -> &[u8] {
        &self.bytes[16..]
    }
}

/// Splits a recorded direction into Dubbo frames.
///
/// # Errors
/// When the bytes do not start with Dubbo's magic `0xdabb` at a frame
/// boundary, or end inside a frame: says where.
pub fn dubbo_frames(mut bytes: &[u8]) -> Result<Vec<DubboFrame>, String> {
    let mut frames = Vec::new();
    let mut offset = 0;
    while !bytes.is_empty() {
        if bytes.len() < 16 {
            return Err(format!(
                "{} bytes left at offset {offset}: not a whole header",
                bytes.len()
            ));
        }
        if bytes[..2] != [0xda, 0xbb] {
            return Err(format!("no Dubbo magic at offset {offset}: {:02x?}", &bytes[..2]));
        }
        let len = u32::from_be_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]) as usize;
        let end = 16 + len;
        if bytes.len() < end {
            return Err(format!(
                "the frame at offset {offset} claims {len} body bytes, {} are left",
                bytes.len() - 16
            ));
        }
        frames.push(DubboFrame {
            bytes: bytes[..end].to_vec(),
        });
        bytes = &bytes[end..];
        offset += end;
    }
    Ok(frames)
}

/// The HTTP/2 client connection preface.
pub const HTTP2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// One HTTP/2 frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Http2Frame {
    /// The frame type (0 DATA, 1 HEADERS, 3 RST_STREAM, 4 SETTINGS, ...).
    pub kind: u8,
    /// The flags (DATA: 0x1 END_STREAM).
    pub flags: u8,
    /// The stream id.
    pub stream: u32,
    /// The payload (after the 9-byte header).
    pub payload: Vec<u8>,
}

/// Splits a recorded direction into HTTP/2 frames, skipping the client
/// preface when present.
///
/// # Errors
/// When the bytes end inside a frame: says where.
pub fn http2_frames(bytes: &[u8]) -> Result<Vec<Http2Frame>, String> {
    let mut rest = bytes.strip_prefix(HTTP2_PREFACE).unwrap_or(bytes);
    let mut frames = Vec::new();
    while !rest.is_empty() {
        if rest.len() < 9 {
            return Err(format!("{} bytes left: not a whole HTTP/2 frame header", rest.len()));
        }
        let len = u32::from_be_bytes([0, rest[0], rest[1], rest[2]]) as usize;
        if rest.len() < 9 + len {
            return Err(format!(
                "a frame of type {} claims {len} payload bytes, {} are left",
                rest[3],
                rest.len() - 9
            ));
        }
        frames.push(Http2Frame {
            kind: rest[3],
            flags: rest[4],
            stream: u32::from_be_bytes([rest[5], rest[6], rest[7], rest[8]]) & 0x7fff_ffff,
            payload: rest[9..9 + len].to_vec(),
        });
        rest = &rest[9 + len..];
    }
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dubbo_frames_split_and_refuse_garbage() {
        let mut bytes = vec![0xda, 0xbb, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 2, b'h', b'i'];
        bytes.extend_from_slice(&[0xda, 0xbb, 0x02, 20, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0]);
        let frames = dubbo_frames(&bytes).unwrap();
        assert_eq!(frames.len(), 2);
        assert!(frames[0].is_request() && !frames[1].is_request());
        assert_eq!(
            (frames[0].id(), frames[0].serialization(), frames[0].body()),
            (7, 2, &b"hi"[..])
        );
        assert_eq!(frames[1].status(), 20);
        assert!(dubbo_frames(&bytes[..17]).unwrap_err().contains("claims 2 body bytes"));
        assert!(
            dubbo_frames(b"GET / HTTP/1.1\r\n\r\n")
                .unwrap_err()
                .contains("no Dubbo magic")
        );
    }

    #[test]
    fn http2_frames_skip_the_preface() {
        let mut bytes = HTTP2_PREFACE.to_vec();
        bytes.extend_from_slice(&[0, 0, 2, 0, 1, 0, 0, 0, 3, b'o', b'k']);
        let frames = http2_frames(&bytes).unwrap();
        assert_eq!(
            frames,
            [Http2Frame {
                kind: 0,
                flags: 1,
                stream: 3,
                payload: b"ok".to_vec()
            }]
        );
        assert!(http2_frames(&bytes[..bytes.len() - 1]).is_err());
    }
}

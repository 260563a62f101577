//! Frames of the native protocol: Dubbo's 16-byte header and our bodies.
//!
//! ```text
//! 0      2      3        4                12          16
//! +------+------+--------+-----------------+-----------+-----------
//! |magic | flag | status |   request id    | body len  |  body ...
//! |dabb  |      |        |   u64 (BE)      | u32 (BE)  |
//! +------+------+--------+-----------------+-----------+-----------
//! flag: 0x80 request, 0x40 two-way, 0x20 event, low 5 bits serialization id
//! ```
//!
//! Request body: `u32 meta length (BE) | meta | arguments`, where the meta
//! ([`RequestMeta`]: service, version, group, method, relative timeout,
//! attachments) and the arguments use the frame's serialization. Response body:
//! the encoded return value when the status is OK, else a UTF-8 message.
//! Events: a heartbeat has an empty body; the read-only event (the provider is
//! shutting down) has the body `R`.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::borrow::Cow;

use serde::{Deserialize, Deserializer, Serialize};
use tokio_util::codec::Decoder;

use crate::error::Status;
use crate::invocation::{Attachments, Invocation};
#[cfg(test)]
use crate::protocol::DEFAULT_MAX_PAYLOAD;
use crate::serialization::Serialization;

/// Magic number opening every frame.
pub const MAGIC: u16 = 0xdabb;
/// Length of the fixed header.
pub const HEADER_LEN: usize = 16;
/// Flag bit: the frame is a request.
pub(crate) const FLAG_REQUEST: u8 = 0x80;
/// Flag bit: the request expects a response.
pub(crate) const FLAG_TWO_WAY: u8 = 0x40;
/// Flag bit: the frame is an event (heartbeat, read-only).
pub(crate) const FLAG_EVENT: u8 = 0x20;
/// Mask of the serialization id in the flag byte.
pub(crate) const SERIALIZATION_MASK: u8 = 0x1f;
/// Body of the read-only event.
pub const READONLY_EVENT: &[u8] = b"R";

/// The fixed header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Flag byte.
    pub flag: u8,
    /// Status byte (responses only).
    pub status: u8,
    /// Request id.
    pub id: u64,
    /// Length of the body in bytes.
    pub body_len: u32,
}

impl Header {
    /// Whether the frame is a request.
    pub fn is_request(&self) -> bool {
        self.flag & FLAG_REQUEST != 0
    }

    /// Whether a request expects a response.
    pub fn is_two_way(&self) -> bool {
        self.flag & FLAG_TWO_WAY != 0
    }

    /// Whether the frame is an event.
    pub fn is_event(&self) -> bool {
        self.flag & FLAG_EVENT != 0
    }

    /// The serialization id (low 5 bits of the flag).
    pub fn serialization_id(&self) -> u8 {
        self.flag & SERIALIZATION_MASK
    }

    /// Writes the header.
    pub fn write(&self, buf: &mut BytesMut) {
        buf.put_slice(&self.to_bytes());
    }

    /// The encoded header.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..2].copy_from_slice(&MAGIC.to_be_bytes());
        out[2] = self.flag;
        out[3] = self.status;
        out[4..12].copy_from_slice(&self.id.to_be_bytes());
        out[12..16].copy_from_slice(&self.body_len.to_be_bytes());
        out
    }
}

/// What the decoder yields.
#[derive(Clone, Debug)]
pub enum Decoded {
    /// A whole frame.
    Frame(Header, Bytes),
    /// A frame whose body was over the payload limit; its body was skipped
    /// without being buffered and the connection stays usable.
    Oversized(Header),
}

/// The stream cannot be decoded any further: the connection must be closed.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// Not our protocol (or a desynchronised stream).
    #[error("bad magic 0x{0:04x} (expected 0xdabb): not an rpc peer, or a corrupted stream")]
    BadMagic(u16),
    /// The socket failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Tokio codec for frames, enforcing the payload limit.
#[derive(Debug)]
pub struct FrameCodec {
    max_payload: usize,
    /// Bytes of an oversized body still to skip.
    skipping: usize,
}

impl FrameCodec {
    /// A codec refusing bodies over `max_payload` bytes.
    pub fn new(max_payload: usize) -> Self {
        FrameCodec {
            max_payload,
            skipping: 0,
        }
    }
}

impl Decoder for FrameCodec {
    type Item = Decoded;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Decoded>, FrameError> {
        if self.skipping > 0 {
            let n = self.skipping.min(src.len());
            src.advance(n);
            self.skipping -= n;
            if self.skipping > 0 {
                return Ok(None);
            }
        }
        if src.len() < HEADER_LEN {
            src.reserve(HEADER_LEN);
            return Ok(None);
        }
        let magic = u16::from_be_bytes([src[0], src[1]]);
        if magic != MAGIC {
            return Err(FrameError::BadMagic(magic));
        }
        let header = Header {
            flag: src[2],
            status: src[3],
            id: u64::from_be_bytes([src[4], src[5], src[6], src[7], src[8], src[9], src[10], src[11]]),
            body_len: u32::from_be_bytes([src[12], src[13], src[14], src[15]]),
        };
        let body_len = header.body_len as usize;
        if body_len > self.max_payload {
            src.advance(HEADER_LEN);
            let n = body_len.min(src.len());
            src.advance(n);
            self.skipping = body_len - n;
            return Ok(Some(Decoded::Oversized(header)));
        }
        if src.len() < HEADER_LEN + body_len {
            src.reserve(HEADER_LEN + body_len - src.len());
            return Ok(None);
        }
        src.advance(HEADER_LEN);
        let body = src.split_to(body_len).freeze();
        Ok(Some(Decoded::Frame(header, body)))
    }
}

/// Metadata of a request, written before the arguments with the frame's
/// serialization: the one form the client encodes and the server decodes.
///
/// The fields are [`Cow`]s, so a client encodes the names and attachments of
/// its [`Invocation`] as they are ([`RequestMeta::of_call`] borrows them all),
/// and [`split_request`] borrows the names from the received frame whenever
/// the serialization allows (bincode always; JSON when a string holds no
/// escapes). The encoding does not depend on whether a field is borrowed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestMeta<'a> {
    /// Interface name.
    #[serde(borrow)]
    pub service: Cow<'a, str>,
    /// Version, if any.
    #[serde(borrow, deserialize_with = "borrowed_if_any")]
    pub version: Option<Cow<'a, str>>,
    /// Group, if any.
    #[serde(borrow, deserialize_with = "borrowed_if_any")]
    pub group: Option<Cow<'a, str>>,
    /// Wire method name.
    #[serde(borrow)]
    pub method: Cow<'a, str>,
    /// Time left for the call, in milliseconds: relative, never wall-clock.
    pub timeout_ms: Option<u64>,
    /// Attachments (always owned once decoded).
    pub attachments: Cow<'a, Attachments>,
}

/// An optional string, borrowed from the input when the serialization allows:
/// serde borrows a `Cow<str>` field, but not one inside an `Option`.
fn borrowed_if_any<'de: 'a, 'a, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Cow<'a, str>>, D::Error> {
    #[derive(Deserialize)]
    struct Borrowed<'a>(#[serde(borrow)] Cow<'a, str>);
    Ok(Option::<Borrowed<'a>>::deserialize(deserializer)?.map(|b| b.0))
}

impl<'a> RequestMeta<'a> {
    /// The meta of `invocation`, borrowing its names and attachments, with
    /// `timeout_ms` left for the call: what a native channel sends.
    pub fn of_call(invocation: &'a Invocation, timeout_ms: Option<u64>) -> Self {
        let key = invocation.service();
        RequestMeta {
            service: Cow::Borrowed(key.interface()),
            version: key.version().map(Cow::Borrowed),
            group: key.group().map(Cow::Borrowed),
            method: Cow::Borrowed(invocation.method()),
            timeout_ms,
            attachments: Cow::Borrowed(invocation.attachments()),
        }
    }

    /// The same meta, owning every field.
    pub fn into_owned(self) -> RequestMeta<'static> {
        RequestMeta {
            service: Cow::Owned(self.service.into_owned()),
            version: self.version.map(|v| Cow::Owned(v.into_owned())),
            group: self.group.map(|g| Cow::Owned(g.into_owned())),
            method: Cow::Owned(self.method.into_owned()),
            timeout_ms: self.timeout_ms,
            attachments: Cow::Owned(self.attachments.into_owned()),
        }
    }
}

/// A frame ready to write: its header, for requests the encoded meta, and a
/// tail written as the caller encoded it (arguments or return value), never
/// re-encoded.
#[derive(Clone, Debug)]
pub struct OutFrame {
    /// The header.
    pub header: [u8; HEADER_LEN],
    /// For requests, the meta length and the meta; empty otherwise.
    pub meta: Bytes,
    /// Payload, written after the meta without being re-encoded.
    pub tail: Bytes,
    /// The request id, for requests: used to fail the call if the frame is
    /// never written.
    pub request_id: Option<u64>,
}

impl OutFrame {
    /// Total length on the wire.
    pub fn len(&self) -> usize {
        HEADER_LEN + self.meta.len() + self.tail.len()
    }

    /// Appends the frame to `buf`.
    pub fn write_to(&self, buf: &mut BytesMut) {
        buf.put_slice(&self.header);
        buf.put_slice(&self.meta);
        buf.put_slice(&self.tail);
    }

    /// Whether the frame is empty (never: a header is always there).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A request frame: `meta`, then `args` (already encoded with
    /// `serialization`) shared as they are. Fails when the meta cannot be encoded.
    pub fn request(
        id: u64,
        two_way: bool,
        serialization: Serialization,
        meta: &RequestMeta<'_>,
        args: Bytes,
    ) -> Result<OutFrame, crate::serialization::CodecError> {
        let encoded = crate::scratch::encode(4 + 128, |encoded| {
            encoded.put_u32(0);
            serialization.encode_into(meta, encoded)?;
            let meta_len = encoded.len() - 4;
            encoded[..4].copy_from_slice(&(meta_len as u32).to_be_bytes());
            Ok(())
        })?;
        let body_len = encoded.len() + args.len();
        let flag = FLAG_REQUEST | if two_way { FLAG_TWO_WAY } else { 0 } | serialization.id();
        let header = Header {
            flag,
            status: 0,
            id,
            body_len: u32::try_from(body_len).unwrap_or(u32::MAX),
        };
        Ok(OutFrame {
            header: header.to_bytes(),
            meta: encoded,
            tail: args,
            request_id: Some(id),
        })
    }

    /// A response frame with `status` and `body` (the encoded value, or a message).
    pub fn response(id: u64, status: Status, serialization_id: u8, body: Bytes) -> OutFrame {
        let header = Header {
            flag: serialization_id & SERIALIZATION_MASK,
            status: status.code(),
            id,
            body_len: u32::try_from(body.len()).unwrap_or(u32::MAX),
        };
        OutFrame {
            header: header.to_bytes(),
            meta: Bytes::new(),
            tail: body,
            request_id: None,
        }
    }

    /// An event frame (heartbeat or read-only).
    pub fn event(id: u64, request: bool, two_way: bool, body: &'static [u8]) -> OutFrame {
        let mut flag = FLAG_EVENT | Serialization::Bincode.id();
        if request {
            flag |= FLAG_REQUEST;
        }
        if two_way {
            flag |= FLAG_TWO_WAY;
        }
        let status = if request { 0 } else { Status::Ok.code() };
        let header = Header {
            flag,
            status,
            id,
            body_len: body.len() as u32,
        };
        OutFrame {
            header: header.to_bytes(),
            meta: Bytes::new(),
            tail: Bytes::from_static(body),
            request_id: None,
        }
    }
}

/// Splits a request body into its meta, its names borrowed from `body` where
/// the serialization allows, and its encoded arguments (sharing `body`'s
/// buffer). Fails, saying why, when the meta length or the meta is malformed.
pub fn split_request(serialization: Serialization, body: &Bytes) -> Result<(RequestMeta<'_>, Bytes), String> {
    let (meta, args) = meta_and_args(body)?;
    let meta = serialization
        .decode_borrowed::<RequestMeta<'_>>(meta)
        .map_err(|e| format!("cannot decode the request meta: {e}"))?;
    Ok((meta, args))
}

fn meta_and_args(body: &Bytes) -> Result<(&[u8], Bytes), String> {
    if body.len() < 4 {
        return Err(format!(
            "request body of {} bytes is shorter than its 4-byte meta length",
            body.len()
        ));
    }
    let meta_len = u32::from_be_bytes([body[0], body[1], body[2], body[3]]) as usize;
    if meta_len > body.len() - 4 {
        return Err(format!(
            "meta length {meta_len} exceeds the {} bytes of the body",
            body.len() - 4
        ));
    }
    Ok((&body[4..4 + meta_len], body.slice(4 + meta_len..)))
}

/// Encodes `message` as a Hessian2 string, so that an Apache Dubbo peer (which
/// decodes error messages with the serialization it asked for) reads our
/// refusal as text.
pub fn hessian2_string(message: &str) -> Bytes {
    // Hessian2 counts UTF-16 code units; keep to ASCII so counts are byte counts.
    let ascii: String = message
        .chars()
        .map(|c| if c.is_ascii() { c } else { '?' })
        .take(0x7fff)
        .collect();
    let len = ascii.len();
    let mut buf = BytesMut::with_capacity(len + 3);
    if len < 32 {
        buf.put_u8(len as u8);
    } else if len < 1024 {
        buf.put_u8(0x30 + (len >> 8) as u8);
        buf.put_u8((len & 0xff) as u8);
    } else {
        buf.put_u8(b'S');
        buf.put_u16(len as u16);
    }
    buf.put_slice(ascii.as_bytes());
    buf.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invocation::ServiceKey;
    use proptest::prelude::*;

    fn encode(frame: &OutFrame) -> BytesMut {
        let mut buf = BytesMut::new();
        frame.write_to(&mut buf);
        buf
    }

    fn call(ser: Serialization, version: Option<&str>, group: Option<&str>, method: &str) -> Invocation {
        let key = ServiceKey::new("org.example.Greeter", version, group);
        let args = ser.encode(&("world",)).unwrap();
        let mut invocation = Invocation::new(key, method.to_string(), args, ser);
        invocation.set_attachments([("trace".to_string(), "abc".to_string())].into_iter().collect());
        invocation
    }

    /// What a native channel writes for `invocation` and what a provider
    /// reads back: the frame's header, the meta and the arguments.
    fn send_and_read(invocation: &Invocation, timeout_ms: Option<u64>) -> (Header, Bytes) {
        let ser = invocation.serialization();
        let meta = RequestMeta::of_call(invocation, timeout_ms);
        let frame = OutFrame::request(42, true, ser, &meta, invocation.args().clone()).unwrap();
        let mut buf = encode(&frame);
        assert_eq!(&buf[..2], &[0xda, 0xbb]);
        let mut codec = FrameCodec::new(DEFAULT_MAX_PAYLOAD);
        let Some(Decoded::Frame(header, body)) = codec.decode(&mut buf).unwrap() else {
            panic!("expected a frame")
        };
        assert!(buf.is_empty());
        (header, body)
    }

    #[test]
    fn request_round_trips_in_both_serializations() {
        for ser in Serialization::ALL {
            let invocation = call(ser, Some("1.0.0"), None, "sayHello");
            let (header, body) = send_and_read(&invocation, Some(300));
            assert!(header.is_request() && header.is_two_way() && !header.is_event());
            assert_eq!((header.id, header.serialization_id()), (42, ser.id()));
            let (meta, args) = split_request(ser, &body).unwrap();
            assert_eq!(meta, RequestMeta::of_call(&invocation, Some(300)));
            assert_eq!(meta.service, "org.example.Greeter");
            assert_eq!((meta.version.as_deref(), meta.group.as_deref()), (Some("1.0.0"), None));
            assert_eq!((&*meta.method, meta.timeout_ms), ("sayHello", Some(300)));
            assert_eq!(meta.attachments.get("trace").map(String::as_str), Some("abc"));
            assert_eq!(args, invocation.args().clone());
            // The names are read in place, not copied.
            for name in [&meta.service, &meta.method, meta.version.as_ref().unwrap()] {
                assert!(matches!(name, Cow::Borrowed(_)), "{ser:?} copied {name}");
            }
        }
    }

    #[test]
    fn a_decoded_meta_outlives_its_frame_once_owned() {
        let invocation = call(Serialization::Json, None, Some("blue"), "say\"Hello\"");
        let (_, body) = send_and_read(&invocation, None);
        let meta = split_request(Serialization::Json, &body).unwrap().0.into_owned();
        drop(body);
        assert_eq!(meta, RequestMeta::of_call(&invocation, None));
    }

    fn arb_call() -> impl Strategy<Value = (Invocation, Option<u64>)> {
        (
            proptest::sample::select(Serialization::ALL.to_vec()),
            "\\PC{1,20}",
            proptest::option::of("\\PC{0,8}"),
            proptest::option::of("\\PC{0,8}"),
            "\\PC{1,12}",
            proptest::option::of(any::<u64>()),
            proptest::collection::btree_map("\\PC{1,8}", "\\PC{0,16}", 0..4),
            proptest::collection::vec(any::<u8>(), 0..32),
        )
            .prop_map(
                |(ser, service, version, group, method, timeout_ms, attachments, args)| {
                    let key = ServiceKey::new(&service, version.as_deref(), group.as_deref());
                    let mut invocation = Invocation::new(key, method, Bytes::from(args), ser);
                    invocation.set_attachments(attachments);
                    (invocation, timeout_ms)
                },
            )
    }

    proptest! {
        #[test]
        fn whatever_a_channel_sends_a_provider_reads((invocation, timeout_ms) in arb_call()) {
            let (header, body) = send_and_read(&invocation, timeout_ms);
            let ser = Serialization::from_id(header.serialization_id()).unwrap();
            prop_assert_eq!(ser, invocation.serialization());
            let (meta, args) = split_request(ser, &body).unwrap();
            prop_assert_eq!(meta, RequestMeta::of_call(&invocation, timeout_ms));
            prop_assert_eq!(args, invocation.args().clone());
        }
    }

    #[test]
    fn partial_frames_wait_for_more_bytes() {
        let frame = OutFrame::response(7, Status::Ok, 30, Bytes::from_static(b"hello"));
        let whole = encode(&frame);
        let mut codec = FrameCodec::new(DEFAULT_MAX_PAYLOAD);
        let mut buf = BytesMut::new();
        for (i, byte) in whole.iter().enumerate() {
            buf.put_u8(*byte);
            let out = codec.decode(&mut buf).unwrap();
            if i + 1 < whole.len() {
                assert!(out.is_none());
            } else {
                assert!(matches!(out, Some(Decoded::Frame(h, b)) if h.id == 7 && &b[..] == b"hello"));
            }
        }
    }

    #[test]
    fn oversized_bodies_are_skipped_and_the_stream_resyncs() {
        let mut codec = FrameCodec::new(8);
        let big = OutFrame::response(1, Status::Ok, 30, Bytes::from(vec![7u8; 100]));
        let small = OutFrame::response(2, Status::Ok, 30, Bytes::from_static(b"ok"));
        let mut all = encode(&big);
        all.extend_from_slice(&encode(&small));
        // Feed in small pieces to exercise skipping across reads.
        let mut buf = BytesMut::new();
        let mut seen = Vec::new();
        for chunk in all.chunks(13) {
            buf.extend_from_slice(chunk);
            while let Some(item) = codec.decode(&mut buf).unwrap() {
                seen.push(item);
            }
        }
        assert!(matches!(seen[0], Decoded::Oversized(h) if h.id == 1 && h.body_len == 100));
        assert!(matches!(&seen[1], Decoded::Frame(h, b) if h.id == 2 && &b[..] == b"ok"));
        assert_eq!(seen.len(), 2);
    }

    #[test]
    fn wrong_magic_is_an_error() {
        let mut codec = FrameCodec::new(DEFAULT_MAX_PAYLOAD);
        let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..]);
        assert!(matches!(codec.decode(&mut buf), Err(FrameError::BadMagic(0x4745))));
    }

    #[test]
    fn malformed_request_bodies_are_errors() {
        let ser = Serialization::Bincode;
        assert!(split_request(ser, &Bytes::from_static(b"\x00")).is_err());
        assert!(split_request(ser, &Bytes::from_static(b"\x00\x00\x00\x09abc")).is_err());
        assert!(split_request(ser, &Bytes::from_static(b"\x00\x00\x00\x03\xff\xff\xff")).is_err());
    }

    #[test]
    fn hessian2_strings_have_the_right_length_prefix() {
        assert_eq!(&hessian2_string("abc")[..], b"\x03abc");
        let s = "x".repeat(100);
        let h = hessian2_string(&s);
        assert_eq!(&h[..2], &[0x30, 100]);
        assert_eq!(h.len(), 102);
    }
}

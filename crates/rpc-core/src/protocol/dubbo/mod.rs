//! The classic `dubbo` protocol of Java Apache Dubbo: Dubbo's 16-byte header
//! (the native protocol's, see [`rpc::frame`](crate::protocol::rpc::frame))
//! with serialization id 2 (Hessian2) and Hessian bodies.
//!
//! Request body (Java's `DubboCodec.encodeRequestData`), consecutive Hessian
//! values: the protocol version `"2.0.2"` (not the release number: a peer
//! sends response attachments only from 2.0.2 on), the service path (the
//! interface name), the service version, the method, the Java parameter
//! descriptor (`Ljava/lang/String;J`), each argument, then the attachments map
//! (`path`, `interface`, `version`, `group`, `timeout`, ...).
//!
//! Response body for status 20 (OK): the Hessian *int* flag, `0` exception,
//! `1` value, `2` null, `3`–`5` the same followed by the attachments map; for
//! any other status, one Hessian string: the error message. Heartbeats are
//! two-way event requests with a `null` body, answered by an event response
//! with a `null` body.
//!
//! Everything here reads untrusted bytes: every malformed body is an error
//! saying what and where, never a panic, and nothing is allocated beyond what
//! the body holds (the Hessian decoder's limits).

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use rpc_hessian::{Decoder, Encoder, Value};
use serde::de::IgnoredAny;

use super::rpc::frame::{FLAG_EVENT, FLAG_REQUEST, FLAG_TWO_WAY, Header, OutFrame};
use crate::error::Status;
use crate::hessian2::{COMPACT_INT_ZERO, WITH_ATTACHMENTS, count_descriptors};

pub mod client;

pub use client::{DubboChannel, WeakDubboChannel};

/// Dubbo's serialization id of Hessian2: the id that makes a frame a `dubbo` one.
pub const HESSIAN2_ID: u8 = 2;

/// The protocol version this side speaks and writes into every request.
pub const DUBBO_VERSION: &str = "2.0.2";

/// Hessian's `null`: the body of heartbeat events.
pub const NULL_BODY: &[u8] = b"N";

/// Hessian's one-character string `"R"`: the body of the read-only event
/// (Java's `READONLY_EVENT`).
pub const READONLY_BODY: &[u8] = b"\x01R";

/// A `dubbo` request, decoded from its body.
#[derive(Clone, Debug, PartialEq)]
pub struct DubboRequest {
    /// The protocol version the caller speaks (`"2.0.2"`).
    pub dubbo_version: String,
    /// The service path (the interface name for Java callers).
    pub path: String,
    /// The service version (`""` or `"0.0.0"` for none).
    pub version: String,
    /// The method.
    pub method: String,
    /// The Java parameter descriptor, e.g. `Ljava/lang/String;`.
    pub parameter_types: String,
    /// The arguments: consecutive Hessian values, sharing `body`'s buffer.
    pub args: Bytes,
    /// The attachments whose values are strings (others are skipped).
    pub attachments: Vec<(String, String)>,
}

impl DubboRequest {
    /// Decodes a request body, saying what is wrong with a malformed one.
    pub fn decode(body: &Bytes) -> Result<DubboRequest, String> {
        let mut decoder = Decoder::new(body);
        let mut string = |what: &str| -> Result<String, String> {
            decoder
                .read::<Option<String>>()
                .map(Option::unwrap_or_default)
                .map_err(|e| format!("cannot read the {what}: {e}"))
        };
        let dubbo_version = string("protocol version")?;
        let path = string("service path")?;
        let version = string("service version")?;
        let method = string("method name")?;
        let parameter_types = string("parameter types")?;
        let count = count_descriptors(&parameter_types)?;
        let start = decoder.position();
        for index in 0..count {
            decoder
                .read::<IgnoredAny>()
                .map_err(|e| format!("cannot read argument {index} of {method}({parameter_types}): {e}"))?;
        }
        let args = body.slice(start..decoder.position());
        let attachments = if decoder.is_at_end() {
            Vec::new()
        } else {
            let map: Value = decoder
                .read()
                .map_err(|e| format!("cannot read the attachments: {e}"))?;
            string_entries(map).map_err(|what| format!("the attachments are {what}, not a map"))?
        };
        if !decoder.is_at_end() {
            return Err(format!(
                "{} bytes after the attachments",
                body.len() - decoder.position()
            ));
        }
        Ok(DubboRequest {
            dubbo_version,
            path,
            version,
            method,
            parameter_types,
            args,
            attachments,
        })
    }

    /// The attachment `key`, if it is there.
    pub fn attachment(&self, key: &str) -> Option<&str> {
        self.attachments.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The version the caller asks for: `None` when it asks for none.
    pub fn service_version(&self) -> Option<&str> {
        match self.version.as_str() {
            "" | "0.0.0" => None,
            version => Some(version),
        }
    }

    /// The group, from the attachments.
    pub fn group(&self) -> Option<&str> {
        self.attachment("group").filter(|group| !group.is_empty())
    }

    /// The caller's timeout (the `timeout` attachment, in milliseconds; `0`
    /// or a malformed value is none).
    pub fn timeout(&self) -> Option<Duration> {
        self.attachment("timeout")
            .and_then(|ms| ms.trim().parse::<u64>().ok())
            .filter(|&ms| ms > 0)
            .map(Duration::from_millis)
    }

    /// Whether the caller reads attachments after a response value (from
    /// protocol version 2.0.2 on, as Java's `Version.isSupportResponseAttachment`).
    pub fn wants_response_attachments(&self) -> bool {
        supports_response_attachments(&self.dubbo_version)
    }
}

/// Whether protocol version `version` reads response attachments: 2.0.2 up to 2.0.99.
fn supports_response_attachments(version: &str) -> bool {
    let mut parts = version.split('.').map(|part| part.trim().parse::<u32>().ok());
    matches!(
        (parts.next(), parts.next(), parts.next()),
        (Some(Some(2)), Some(Some(0)), Some(Some(2..=99)))
    )
}

/// The string entries of a map value; non-string values are left out.
fn string_entries(value: Value) -> Result<Vec<(String, String)>, &'static str> {
    match value {
        Value::Map { entries, .. } => Ok(entries
            .into_iter()
            .filter_map(|(key, value)| match (key, value) {
                (Value::String(key), Value::String(value)) => Some((key, value)),
                (Value::String(key), Value::Int(n)) => Some((key, n.to_string())),
                (Value::String(key), Value::Long(n)) => Some((key, n.to_string())),
                (Value::String(key), Value::Bool(b)) => Some((key, b.to_string())),
                _ => None,
            })
            .collect()),
        Value::Null => Ok(Vec::new()),
        _ => Err("another value"),
    }
}

/// Writes `entries` as an untyped Hessian map (Java reads a `HashMap`).
fn write_map(buf: &mut BytesMut, entries: &[(&str, &str)]) -> Result<(), String> {
    buf.put_u8(b'H');
    let mut encoder = Encoder::new(buf.writer());
    for (key, value) in entries {
        encoder.write(key).map_err(|e| e.to_string())?;
        encoder.write(value).map_err(|e| e.to_string())?;
    }
    drop(encoder);
    buf.put_u8(b'Z');
    Ok(())
}

/// The body of a request: the names, the encoded `args` (consecutive Hessian
/// values) and the attachments.
pub fn request_body(
    path: &str,
    version: Option<&str>,
    method: &str,
    parameter_types: &str,
    args: &[u8],
    attachments: &[(&str, &str)],
) -> Result<BytesMut, String> {
    let mut buf = BytesMut::with_capacity(64 + path.len() * 3 + args.len());
    {
        let mut encoder = Encoder::new((&mut buf).writer());
        for value in [DUBBO_VERSION, path, version.unwrap_or("0.0.0"), method, parameter_types] {
            encoder.write(value).map_err(|e| e.to_string())?;
        }
    }
    buf.put_slice(args);
    write_map(&mut buf, attachments)?;
    Ok(buf)
}

/// A request frame with id `id` around `body`.
pub fn request_frame(id: u64, two_way: bool, body: Bytes) -> OutFrame {
    let flag = FLAG_REQUEST | if two_way { FLAG_TWO_WAY } else { 0 } | HESSIAN2_ID;
    frame(flag, 0, id, body)
}

/// The answer to request `id` from a handler's reply payload (a Hessian2
/// reply: the flag, then the value or exception), with the response
/// attachments (`dubbo` = `2.0.2`) when the caller reads them.
pub fn ok_response(id: u64, reply: Bytes, with_attachments: bool) -> OutFrame {
    let Some(&flag) = reply
        .first()
        .filter(|&&flag| (COMPACT_INT_ZERO..COMPACT_INT_ZERO + WITH_ATTACHMENTS).contains(&flag))
    else {
        return error_response(id, Status::BadResponse, "the provider's reply has no Dubbo flag");
    };
    if !with_attachments {
        return frame(HESSIAN2_ID, Status::Ok.code(), id, reply);
    }
    let mut body = BytesMut::with_capacity(reply.len() + 16);
    body.put_u8(flag + WITH_ATTACHMENTS);
    body.put_slice(&reply[1..]);
    if write_map(&mut body, &[("dubbo", DUBBO_VERSION)]).is_err() {
        return error_response(id, Status::BadResponse, "cannot encode the response attachments");
    }
    frame(HESSIAN2_ID, Status::Ok.code(), id, body.freeze())
}

/// An error answer to request `id`: `status` and the message as a Hessian string.
pub fn error_response(id: u64, status: Status, message: &str) -> OutFrame {
    let mut buf = BytesMut::new();
    let encoded = Encoder::new((&mut buf).writer()).write(message);
    let body = match encoded {
        Ok(()) => buf.freeze(),
        Err(_) => super::rpc::frame::hessian2_string(message),
    };
    frame(HESSIAN2_ID, status.code(), id, body)
}

/// An event frame: a heartbeat (`NULL_BODY`) or the read-only event (`READONLY_BODY`).
pub fn event_frame(id: u64, request: bool, two_way: bool, body: &'static [u8]) -> OutFrame {
    let mut flag = FLAG_EVENT | HESSIAN2_ID;
    if request {
        flag |= FLAG_REQUEST;
    }
    if two_way {
        flag |= FLAG_TWO_WAY;
    }
    let status = if request { 0 } else { Status::Ok.code() };
    frame(flag, status, id, Bytes::from_static(body))
}

fn frame(flag: u8, status: u8, id: u64, body: Bytes) -> OutFrame {
    let header = Header {
        flag,
        status,
        id,
        body_len: u32::try_from(body.len()).unwrap_or(u32::MAX),
    };
    let request = flag & FLAG_REQUEST != 0 && flag & FLAG_EVENT == 0;
    OutFrame {
        header: header.to_bytes(),
        meta: Bytes::new(),
        tail: body,
        request_id: request.then_some(id),
    }
}

/// A response, decoded from its header and body.
#[derive(Debug, PartialEq)]
pub enum DubboResponse {
    /// Status 20: the reply body (flag, value or exception, attachments), for
    /// the stub to decode into the return type.
    Ok(Bytes),
    /// Another status, with the message the provider sent.
    Failed(Status, String),
}

impl DubboResponse {
    /// Decodes the response `body` of a frame with `status`.
    pub fn decode(status: u8, body: Bytes) -> DubboResponse {
        let status = Status::from_code(status);
        if status == Status::Ok {
            return DubboResponse::Ok(body);
        }
        let message = match Decoder::new(&body).read::<Option<String>>() {
            Ok(Some(message)) => message,
            Ok(None) => String::new(),
            Err(_) => String::from_utf8_lossy(&body).into_owned(),
        };
        DubboResponse::Failed(status, message)
    }
}

#[cfg(test)]
mod tests;

//! The pieces of the Triple wire format: gRPC message framing, the
//! `grpc-timeout` header, gRPC status codes and `grpc-message` encoding.

use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};

use crate::error::{ErrorKind, RpcError, Status};

/// Length of the prefix of a gRPC message: a compressed flag and a big-endian length.
pub const PREFIX_LEN: usize = 5;

/// Frames `message` as one gRPC message (uncompressed).
pub fn frame(message: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(PREFIX_LEN + message.len());
    out.put_u8(0);
    out.put_u32(u32::try_from(message.len()).unwrap_or(u32::MAX));
    out.put_slice(message);
    out.freeze()
}

/// Why a gRPC body could not be read as one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnframeError {
    /// Fewer bytes than the prefix or its length announce.
    Truncated,
    /// The compressed flag is set; no compression is negotiated here.
    Compressed,
    /// The announced length exceeds the payload limit.
    TooLarge(usize),
    /// More than one message in a unary call.
    Trailing,
}

impl std::fmt::Display for UnframeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UnframeError::Truncated => f.write_str("the gRPC message is truncated"),
            UnframeError::Compressed => f.write_str("compressed gRPC messages are not supported (no grpc-encoding)"),
            UnframeError::TooLarge(len) => write!(f, "the gRPC message of {len} bytes exceeds the payload limit"),
            UnframeError::Trailing => f.write_str("a unary call carries exactly one gRPC message"),
        }
    }
}

/// Reads the single message of a unary call's body. An empty body is
/// refused ([`UnframeError::Truncated`]).
pub fn unframe(mut body: Bytes, max_payload: usize) -> Result<Bytes, UnframeError> {
    if body.len() < PREFIX_LEN {
        return Err(UnframeError::Truncated);
    }
    let compressed = body.get_u8();
    let len = body.get_u32() as usize;
    if compressed != 0 {
        return Err(UnframeError::Compressed);
    }
    if len > max_payload {
        return Err(UnframeError::TooLarge(len));
    }
    if body.len() < len {
        return Err(UnframeError::Truncated);
    }
    let rest = body.split_off(len);
    // Empty messages after the one that counts are tolerated: the Python
    // Dubbo client ends every call with one (`done_writing` sends `b""`).
    if rest.chunks(PREFIX_LEN).any(|empty| empty != [0, 0, 0, 0, 0]) {
        return Err(UnframeError::Trailing);
    }
    Ok(body)
}

/// The announced length of the message starting `prefix` (at least 5 bytes).
pub fn announced_len(prefix: &[u8]) -> Option<usize> {
    let bytes: [u8; 4] = prefix.get(1..PREFIX_LEN)?.try_into().ok()?;
    Some(u32::from_be_bytes(bytes) as usize)
}

/// Formats `timeout` as a `grpc-timeout` header value (at most 8 digits and a unit).
pub fn format_timeout(timeout: Duration) -> String {
    let millis = timeout.as_millis();
    if millis < 100_000_000 {
        // Milliseconds keep precision for every timeout a user sets; under
        // one millisecond, say one.
        return format!("{}m", millis.max(1));
    }
    let secs = timeout.as_secs();
    if secs < 100_000_000 {
        format!("{secs}S")
    } else {
        format!("{}H", (secs / 3600).min(99_999_999))
    }
}

/// Parses a `grpc-timeout` header value: up to 8 digits and a unit of
/// `H`, `M`, `S`, `m`, `u` or `n`. Anything else, non-ASCII text included,
/// is `None`, never a panic.
pub fn parse_timeout(value: &str) -> Option<Duration> {
    // ASCII only, so the unit is the last byte and splitting there is safe.
    if value.len() < 2 || value.len() > 9 || !value.is_ascii() {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// gRPC status codes.
pub mod code {
    /// Success.
    pub const OK: u32 = 0;
    /// The client cancelled.
    pub const CANCELLED: u32 = 1;
    /// An error with no better code.
    pub const UNKNOWN: u32 = 2;
    /// The request is malformed.
    pub const INVALID_ARGUMENT: u32 = 3;
    /// The deadline passed.
    pub const DEADLINE_EXCEEDED: u32 = 4;
    /// Something requested was not found.
    pub const NOT_FOUND: u32 = 5;
    /// The caller may not do this.
    pub const PERMISSION_DENIED: u32 = 7;
    /// Out of some resource (capacity, size limit).
    pub const RESOURCE_EXHAUSTED: u32 = 8;
    /// No such service or method.
    pub const UNIMPLEMENTED: u32 = 12;
    /// The server failed.
    pub const INTERNAL: u32 = 13;
    /// The service cannot take the call now; safe to retry.
    pub const UNAVAILABLE: u32 = 14;
    /// The caller is not authenticated.
    pub const UNAUTHENTICATED: u32 = 16;
}

/// The gRPC code for one of our errors.
pub(crate) fn code_of(error: &RpcError) -> u32 {
    match error.kind() {
        ErrorKind::Timeout | ErrorKind::Remote(Status::ServerTimeout) | ErrorKind::Remote(Status::ClientTimeout) => {
            code::DEADLINE_EXCEEDED
        }
        ErrorKind::NoProvider | ErrorKind::Connect | ErrorKind::Closed | ErrorKind::ConnectionLost => code::UNAVAILABLE,
        ErrorKind::Remote(Status::ChannelInactive) => code::UNAVAILABLE,
        ErrorKind::PayloadTooLarge | ErrorKind::LocalLimit | ErrorKind::Remote(Status::ServerOverloaded) => {
            code::RESOURCE_EXHAUSTED
        }
        ErrorKind::Remote(Status::ServiceNotFound) => code::UNIMPLEMENTED,
        ErrorKind::Encode | ErrorKind::Remote(Status::BadRequest) | ErrorKind::Remote(Status::SerializationError) => {
            code::INVALID_ARGUMENT
        }
        ErrorKind::Remote(Status::Other(c)) if c == OTHER_UNAUTHENTICATED => code::UNAUTHENTICATED,
        ErrorKind::Decode
        | ErrorKind::Layer
        | ErrorKind::Remote(Status::BadResponse)
        | ErrorKind::Remote(Status::ServiceError)
        | ErrorKind::Remote(Status::ServerError)
        | ErrorKind::Remote(Status::ClientError)
        | ErrorKind::Remote(Status::Ok)
        | ErrorKind::Remote(Status::Other(_)) => code::INTERNAL,
        // `Remote` is the only open-ended kind; future kinds land here.
        #[allow(unreachable_patterns)]
        _ => code::UNKNOWN,
    }
}

/// The status our native code uses for gRPC's UNAUTHENTICATED, which Dubbo's
/// status byte has no code for.
pub(crate) const OTHER_UNAUTHENTICATED: u8 = Status::UNAUTHENTICATED.code();

/// Our error for a gRPC status a peer answered.
pub(crate) fn error_of(grpc_code: u32, message: &str) -> RpcError {
    let status = match grpc_code {
        code::DEADLINE_EXCEEDED => Status::ServerTimeout,
        code::UNAVAILABLE => Status::ChannelInactive,
        code::RESOURCE_EXHAUSTED => Status::ServerOverloaded,
        code::UNIMPLEMENTED | code::NOT_FOUND => Status::ServiceNotFound,
        code::INVALID_ARGUMENT => Status::BadRequest,
        code::UNAUTHENTICATED | code::PERMISSION_DENIED => Status::Other(OTHER_UNAUTHENTICATED),
        code::CANCELLED => Status::ClientError,
        _ => Status::ServiceError,
    };
    RpcError::remote(status, format!("grpc-status {grpc_code}: {message}"))
}

/// What `grpc-message` must escape: controls, `%` and non-ASCII (the
/// encoder escapes every byte of a multi-byte character).
const GRPC_MESSAGE: &AsciiSet = &CONTROLS.add(b'%');

/// Percent-encodes a `grpc-message` value.
pub fn encode_message(message: &str) -> String {
    utf8_percent_encode(message, GRPC_MESSAGE).to_string()
}

/// Decodes a `grpc-message` value (lossily: a peer's bad escape never fails a call).
pub fn decode_message(value: &str) -> String {
    percent_decode_str(value).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_bad_frames_are_refused() {
        let framed = frame(b"hello");
        assert_eq!(&framed[..5], &[0, 0, 0, 0, 5]);
        assert_eq!(unframe(framed.clone(), 1024).unwrap(), Bytes::from_static(b"hello"));
        assert_eq!(unframe(framed.slice(..7), 1024), Err(UnframeError::Truncated));
        assert_eq!(unframe(Bytes::new(), 1024), Err(UnframeError::Truncated));
        assert_eq!(unframe(framed.clone(), 4), Err(UnframeError::TooLarge(5)));
        let mut two = BytesMut::from(&framed[..]);
        two.extend_from_slice(&framed);
        assert_eq!(unframe(two.freeze(), 1024), Err(UnframeError::Trailing));
        let mut compressed = BytesMut::from(&framed[..]);
        compressed[0] = 1;
        assert_eq!(unframe(compressed.freeze(), 1024), Err(UnframeError::Compressed));
        assert_eq!(unframe(frame(b""), 1024).unwrap(), Bytes::new());
        // The Python client's trailing empty message is tolerated.
        let mut python = BytesMut::from(&framed[..]);
        python.extend_from_slice(&frame(b""));
        assert_eq!(unframe(python.freeze(), 1024).unwrap(), Bytes::from_static(b"hello"));
        let mut ragged = BytesMut::from(&framed[..]);
        ragged.extend_from_slice(&[0, 0, 0]);
        assert_eq!(unframe(ragged.freeze(), 1024), Err(UnframeError::Trailing));
    }

    #[test]
    fn timeouts_follow_the_grpc_spec() {
        assert_eq!(format_timeout(Duration::from_millis(1500)), "1500m");
        assert_eq!(format_timeout(Duration::from_micros(10)), "1m");
        assert_eq!(parse_timeout("1500m"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_timeout("100u"), Some(Duration::from_micros(100)));
        assert_eq!(parse_timeout("99999999n"), Some(Duration::from_nanos(99_999_999)));
        for bad in ["", "m", "123456789m", "12x", "-1S", "1.5S", " 1S"] {
            assert_eq!(parse_timeout(bad), None, "{bad:?}");
        }
        let long = Duration::from_secs(200_000_000);
        assert_eq!(
            parse_timeout(&format_timeout(long)),
            Some(Duration::from_secs(200_000_000 / 3600 * 3600))
        );
    }

    #[test]
    fn timeouts_ending_in_a_multibyte_character_are_refused() {
        // Found by the `tri_headers` fuzz target: the unit was split off at
        // a byte, not a character, and panicked inside a character.
        for bad in ["\u{fffd}", "1\u{fffd}", "12é", "9ꝏ", "1😀"] {
            assert_eq!(parse_timeout(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn status_codes_map_both_ways() {
        let round = |status: Status| {
            let error = RpcError::remote(status, "x");
            error_of(code_of(&error), "x").status()
        };
        assert_eq!(round(Status::ServiceNotFound), Some(Status::ServiceNotFound));
        assert_eq!(round(Status::BadRequest), Some(Status::BadRequest));
        assert_eq!(round(Status::ServerTimeout), Some(Status::ServerTimeout));
        assert_eq!(round(Status::ServerOverloaded), Some(Status::ServerOverloaded));
        assert_eq!(round(Status::ChannelInactive), Some(Status::ChannelInactive));
        assert_eq!(round(Status::ServiceError), Some(Status::ServiceError));
        assert_eq!(code_of(&RpcError::new(ErrorKind::Timeout, "")), code::DEADLINE_EXCEEDED);
        assert_eq!(
            error_of(code::UNAUTHENTICATED, "who?").status(),
            Some(Status::Other(OTHER_UNAUTHENTICATED))
        );
        assert_eq!(code_of(&error_of(code::UNAUTHENTICATED, "")), code::UNAUTHENTICATED);
    }

    #[test]
    fn grpc_messages_are_percent_encoded() {
        let text = "no method `x` in a.B: 100% ünïcødé\r\n";
        let encoded = encode_message(text);
        assert!(encoded.is_ascii() && !encoded.contains('\n'));
        assert_eq!(decode_message(&encoded), text);
        assert_eq!(decode_message("bad %zz escape"), "bad %zz escape");
    }
}

//! The `tri` header values a peer controls: `grpc-timeout`
//! (`codec::parse_timeout`), `grpc-message` (`codec::decode_message`), the
//! request's `content-type` and path as the server classifies them, and the
//! `grpc-status`/`grpc-message` pair a consumer turns into an error.
//!
//! Input: up to three lines: a text tried as every single value, then the
//! raw bytes of a `grpc-status` and of a `grpc-message` header.
//!
//! Checked: no panic; a timeout is read only from 2 to 9 ASCII bytes, and
//! what `format_timeout` writes reads back at no more than the duration;
//! `grpc-message` escaping round-trips any text; a path splits into two
//! non-empty parts that rebuild it; content types are classified
//! case-insensitively; a status error exists exactly for a non-zero numeric
//! status and says which.

#![no_main]

use std::time::Duration;

use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use rpc_core::Serialization;
use rpc_core::fuzzing::{tri_content_type, tri_split_path, tri_status_error};
use rpc_core::protocol::tri::codec::{decode_message, encode_message, format_timeout, parse_timeout};

fn timeout(text: &str) {
    if let Some(duration) = parse_timeout(text) {
        assert!(
            text.is_ascii() && (2..=9).contains(&text.len()),
            "{text:?} read as {duration:?}"
        );
        let written = format_timeout(duration);
        let back = parse_timeout(&written).unwrap_or_else(|| panic!("{written:?} (for {duration:?}) is unreadable"));
        assert!(
            back <= duration.max(Duration::from_millis(1)),
            "{duration:?} -> {written:?} -> {back:?}"
        );
    }
}

fn message(text: &str) {
    let encoded = encode_message(text);
    assert!(
        HeaderValue::from_str(&encoded).is_ok(),
        "{encoded:?} is not a valid header value"
    );
    assert_eq!(decode_message(&encoded), text);
    let _ = decode_message(text);
}

fn content_type(text: &str) {
    let found = tri_content_type(text);
    assert_eq!(found, tri_content_type(&text.to_ascii_uppercase()));
    if let Some((grpc, serialization)) = found {
        let lower = text.to_ascii_lowercase();
        let essence = lower.split(';').next().unwrap_or_default().trim();
        assert_eq!(grpc, essence.starts_with("application/grpc"), "{text:?}");
        if !grpc {
            assert_eq!((essence, serialization), ("application/json", Serialization::Json));
        }
    }
}

fn path(text: &str) {
    if let Some((interface, method)) = tri_split_path(text) {
        assert!(!interface.is_empty() && !method.is_empty() && !method.contains('/'));
        assert_eq!(format!("/{interface}/{method}"), text);
    }
}

fn status(status: &[u8], message: &[u8]) {
    let mut headers = HeaderMap::new();
    let Ok(status_value) = HeaderValue::from_bytes(status) else {
        return;
    };
    headers.insert("grpc-status", status_value);
    if let Ok(message) = HeaderValue::from_bytes(message) {
        headers.insert("grpc-message", message);
    }
    // What a consumer can read: a header value of visible ASCII (or tabs).
    let code = std::str::from_utf8(status)
        .ok()
        .filter(|s| s.bytes().all(|b| b == b'\t' || (32..127).contains(&b)))
        .and_then(|s| s.trim().parse::<u32>().ok());
    match tri_status_error(&headers) {
        Some(error) => {
            let code = code.expect("an error from a non-numeric grpc-status");
            assert_ne!(code, 0);
            assert!(error.message().starts_with(&format!("grpc-status {code}: ")), "{error}");
            assert!(error.status().is_some());
        }
        None => assert!(code.is_none_or(|c| c == 0), "grpc-status {code:?} was not an error"),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut lines = data.splitn(3, |b| *b == b'\n');
    let text = String::from_utf8_lossy(lines.next().unwrap_or_default());
    timeout(&text);
    message(&text);
    content_type(&text);
    path(&text);
    status(lines.next().unwrap_or_default(), lines.next().unwrap_or_default());
});

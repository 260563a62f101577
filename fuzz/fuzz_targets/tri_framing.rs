//! The gRPC message framing of `tri` (`codec::unframe`, `codec::announced_len`),
//! which both the tri server (request bodies) and the tri consumer (response
//! bodies) run on a peer's bytes.
//!
//! Input: `[limit, body...]`. `limit` < 0x80 is the payload limit in bytes,
//! else the default 8 MiB.
//!
//! Checked: no panic; a message is read only when the prefix is
//! uncompressed, its announced length is within the limit and present in
//! full, and nothing but empty messages follows it; each refusal names the
//! right reason; `frame` and `unframe` are inverses.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use rpc_core::protocol::DEFAULT_MAX_PAYLOAD;
use rpc_core::protocol::tri::codec::{PREFIX_LEN, UnframeError, announced_len, frame, unframe};

fuzz_target!(|data: &[u8]| {
    let [limit, body @ ..] = data else { return };
    let max_payload = if *limit < 0x80 {
        usize::from(*limit)
    } else {
        DEFAULT_MAX_PAYLOAD
    };
    let announced = announced_len(body);
    if body.len() >= PREFIX_LEN {
        assert_eq!(
            announced,
            Some(u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize)
        );
    } else {
        assert_eq!(announced, None);
    }
    match unframe(Bytes::copy_from_slice(body), max_payload) {
        Ok(message) => {
            let len = announced.expect("a message was read from fewer bytes than a prefix");
            assert_eq!(body[0], 0, "a compressed message was accepted");
            assert!(len <= max_payload, "a message over the limit was accepted");
            assert_eq!(&message[..], &body[PREFIX_LEN..PREFIX_LEN + len]);
            let rest = &body[PREFIX_LEN + len..];
            assert!(
                rest.len() % PREFIX_LEN == 0 && rest.iter().all(|b| *b == 0),
                "trailing data accepted"
            );
        }
        Err(UnframeError::Truncated) => {
            assert!(announced.is_none_or(|len| body.len() < PREFIX_LEN + len));
        }
        Err(UnframeError::Compressed) => assert_ne!(body[0], 0),
        Err(UnframeError::TooLarge(len)) => {
            assert_eq!(Some(len), announced);
            assert!(len > max_payload);
        }
        Err(UnframeError::Trailing) => {
            let len = announced.expect("trailing data behind no prefix");
            let rest = &body[PREFIX_LEN + len..];
            assert!(!(rest.len() % PREFIX_LEN == 0 && rest.iter().all(|b| *b == 0)));
        }
    }
    // Whatever a peer sends, framing it and reading it back gives it back.
    if body.len() <= max_payload {
        assert_eq!(unframe(frame(body), max_payload).as_deref(), Ok(body));
    }
});

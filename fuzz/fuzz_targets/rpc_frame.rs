//! The native protocol's frame decoder (`FrameCodec`), as both ends of a
//! connection run it on whatever bytes the socket delivers.
//!
//! Input: `[limit, seed, stream...]`. `limit` < 0x80 is the payload limit in
//! bytes (small, so the oversized-body skip path runs often), else the
//! default 8 MiB; `seed` chooses how the stream is cut into reads.
//!
//! Checked: no panic; the frames decoded do not depend on how the stream was
//! cut (one read, or many small ones); every frame is within the limit and
//! every oversized one is over it; a frame's body is exactly its announced
//! length; a bad magic stops the stream the same way in both cases.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use rpc_core::protocol::DEFAULT_MAX_PAYLOAD;
use rpc_core::protocol::rpc::frame::{Decoded, FrameCodec, FrameError, Header};
use tokio_util::codec::Decoder;

#[derive(Debug, PartialEq)]
enum Item {
    Frame(Header, Vec<u8>),
    Oversized(Header),
    BadMagic(u16),
}

/// Decodes the reads in order, as a connection's reader does; stops at the first error.
/// Returns the items and, unless it stopped on an error, the bytes left buffered.
fn decode(max_payload: usize, reads: &[&[u8]]) -> (Vec<Item>, Option<usize>) {
    let mut codec = FrameCodec::new(max_payload);
    let mut buf = BytesMut::new();
    let mut items = Vec::new();
    for read in reads {
        buf.extend_from_slice(read);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(Decoded::Frame(header, body))) => {
                    assert_eq!(
                        body.len(),
                        header.body_len as usize,
                        "body length differs from the header's"
                    );
                    assert!(body.len() <= max_payload, "a frame over the limit was buffered");
                    items.push(Item::Frame(header, body.to_vec()));
                }
                Ok(Some(Decoded::Oversized(header))) => {
                    assert!(
                        header.body_len as usize > max_payload,
                        "a frame within the limit was skipped"
                    );
                    items.push(Item::Oversized(header));
                }
                Ok(None) => break,
                Err(FrameError::BadMagic(magic)) => {
                    assert_ne!(magic, rpc_core::protocol::rpc::frame::MAGIC);
                    items.push(Item::BadMagic(magic));
                    return (items, None);
                }
                Err(FrameError::Io(e)) => panic!("the decoder made up an I/O error: {e}"),
            }
        }
    }
    (items, Some(buf.len()))
}

fuzz_target!(|data: &[u8]| {
    let [limit, seed, stream @ ..] = data else { return };
    let max_payload = if *limit < 0x80 {
        usize::from(*limit)
    } else {
        DEFAULT_MAX_PAYLOAD
    };
    let whole = decode(max_payload, &[stream]);
    let cut = decode(max_payload, &rpc_fuzz::chunks(stream, *seed));
    assert_eq!(whole, cut, "the frames depend on how the stream was cut into reads");
});

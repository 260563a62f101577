//! Small encodings (arguments, return values, request metadata) split off a
//! per-thread scratch buffer instead of allocating one buffer each.
//!
//! Why: a call encodes two or three buffers of tens of bytes, and on the hot
//! path a `malloc`/`free` pair per buffer costs as much as the encoding. Each
//! encoding is written at the end of the thread's buffer and split off as a
//! [`Bytes`] that shares the buffer's chunk; a chunk is freed (or reused in
//! place) once every encoding split from it is dropped, so one allocation
//! serves many calls. An encoding kept for long keeps its whole chunk alive,
//! which is why chunks are small.

use std::cell::RefCell;

use bytes::{Bytes, BytesMut};

/// Size of the chunks encodings are split from.
const CHUNK: usize = 8 * 1024;
/// Room the thread keeps after an encoding: more (left by a large encoding
/// that grew the buffer) is let go, so that later small encodings do not
/// keep a large allocation alive.
const KEEP: usize = 4 * CHUNK;

thread_local! {
    static SCRATCH: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

/// Runs `write` on an empty buffer with room for `hint` bytes and returns
/// what it wrote. `write` may write more than `hint` (the buffer grows); on
/// error, what it wrote is discarded.
pub(crate) fn encode<E>(hint: usize, write: impl FnOnce(&mut BytesMut) -> Result<(), E>) -> Result<Bytes, E> {
    let mut write = Some(write);
    let shared = SCRATCH
        .try_with(|cell| {
            // Busy when an encoding encodes again inside (a Serialize impl
            // that calls the codec): that one gets a buffer of its own.
            let mut buf = cell.try_borrow_mut().ok()?;
            let write = write.take()?;
            // Left over only by a `write` that panicked (a Serialize impl):
            // never let it prefix this encoding.
            buf.clear();
            if buf.capacity() - buf.len() < hint {
                // Reuses the chunk in place when nothing split from it is alive.
                buf.reserve(CHUNK.max(hint));
            }
            let result = write(&mut buf);
            let written = buf.split();
            if buf.capacity() > KEEP {
                *buf = BytesMut::new();
            }
            Some(result.map(|()| written.freeze()))
        })
        .ok()
        .flatten();
    match (shared, write) {
        (Some(result), _) => result,
        (None, Some(write)) => {
            let mut buf = BytesMut::with_capacity(hint);
            write(&mut buf)?;
            Ok(buf.freeze())
        }
        // `write` ran only when the scratch buffer answered.
        (None, None) => Ok(Bytes::new()),
    }
}

#[cfg(test)]
mod tests {
    use bytes::BufMut;

    use super::*;

    #[test]
    fn encodings_are_independent_and_errors_leave_nothing() {
        let a = encode::<()>(16, |b| {
            b.put_slice(b"first");
            Ok(())
        })
        .unwrap_or_default();
        let failed = encode(16, |b| {
            b.put_slice(b"partial");
            Err("no")
        });
        let c = encode::<()>(16, |b| {
            b.put_slice(b"second");
            Ok(())
        })
        .unwrap_or_default();
        assert_eq!(&a[..], b"first");
        assert_eq!(failed, Err("no"));
        assert_eq!(&c[..], b"second");
    }

    #[test]
    fn large_and_nested_encodings() {
        let big = encode::<()>(4, |b| {
            b.put_bytes(7, 3 * CHUNK);
            Ok(())
        })
        .unwrap_or_default();
        assert_eq!(big.len(), 3 * CHUNK);
        assert!(big.iter().all(|&x| x == 7));
        let outer = encode::<()>(8, |b| {
            let inner = encode::<()>(8, |i| {
                i.put_slice(b"inner");
                Ok(())
            })
            .unwrap_or_default();
            b.put_slice(&inner);
            b.put_slice(b"+outer");
            Ok(())
        })
        .unwrap_or_default();
        assert_eq!(&outer[..], b"inner+outer");
    }

    #[test]
    fn a_large_encoding_leaves_no_large_buffer_behind() {
        let big = encode::<()>(16, |b| {
            b.reserve(1 << 20);
            b.put_bytes(1, 10);
            Ok(())
        })
        .unwrap_or_default();
        assert_eq!(big.len(), 10);
        let left = SCRATCH.with(|cell| cell.borrow().capacity());
        assert!(left <= KEEP, "{left} bytes kept");
    }

    #[test]
    fn many_small_encodings_reuse_chunks() {
        // Kept alive across chunk boundaries, then all dropped: contents stay intact.
        let kept: Vec<Bytes> = (0..2_000u32)
            .map(|i| {
                encode::<()>(8, |b| {
                    b.put_u32(i);
                    Ok(())
                })
                .unwrap_or_default()
            })
            .collect();
        for (i, bytes) in kept.iter().enumerate() {
            assert_eq!(&bytes[..], &(i as u32).to_be_bytes());
        }
    }

    /// Defect: a `Serialize` impl that panicked midway left its bytes in the
    /// thread's buffer, and the next encoding on that thread began with them.
    #[test]
    fn a_panic_while_encoding_leaves_nothing_for_the_next_encoding() {
        let panicked = std::panic::catch_unwind(|| {
            let _ = encode::<()>(16, |b| {
                b.put_slice(b"garbage");
                panic!("a Serialize impl panicked");
            });
        });
        assert!(panicked.is_err());
        let next = encode::<()>(16, |b| {
            b.put_slice(b"clean");
            Ok(())
        })
        .unwrap_or_default();
        assert_eq!(&next[..], b"clean");
    }
}

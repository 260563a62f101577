//! The one error type of the crate.

use std::fmt::Display;
use std::io;

/// Why a value could not be written or read.
///
/// Decoding errors say what was wrong and at which byte offset of the input (counted
/// from the start of the slice given to [`Decoder::new`](crate::Decoder::new)), so a
/// bad message from a peer can be reported precisely. Encoding errors name the Rust
/// type, variant or value that has no Hessian form.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input ended in the middle of a value.
    #[error("hessian: truncated input: {expected} needed at byte {offset}, but the input ends there")]
    Truncated {
        /// Offset of the first byte that is missing.
        offset: usize,
        /// What was being read.
        expected: &'static str,
    },
    /// The input is not valid Hessian 2.0, or exceeds a limit of this decoder
    /// (nesting depth, a length larger than the remaining input, reference expansion).
    #[error("hessian: {message} at byte {offset}")]
    Invalid {
        /// Offset of the offending byte (the start of the value or length concerned).
        offset: usize,
        /// What is wrong.
        message: String,
    },
    /// The input is valid Hessian but does not fit the Rust type asked for (a message
    /// from the type's `Deserialize` implementation, e.g. a missing field).
    #[error("hessian: {message} (value at byte {offset})")]
    Mismatch {
        /// Offset of the value that did not fit.
        offset: usize,
        /// What did not fit.
        message: String,
    },
    /// A Rust value has no Hessian 2.0 form here (e.g. a `u64` above `i64::MAX`, an enum
    /// variant carrying data), or a custom `Serialize` implementation reported an error.
    #[error("hessian: cannot encode {0}")]
    Unsupported(String),
    /// The underlying writer failed.
    #[error("hessian: write failed: {0}")]
    Io(#[from] io::Error),
    /// An error raised by a `Deserialize` implementation outside a decoder position
    /// (only seen when this crate's error type is used with another deserializer).
    #[error("hessian: {0}")]
    Message(String),
}

impl serde::ser::Error for Error {
    fn custom<T: Display>(msg: T) -> Self {
        Error::Unsupported(msg.to_string())
    }
}

impl serde::de::Error for Error {
    fn custom<T: Display>(msg: T) -> Self {
        Error::Message(msg.to_string())
    }
}

impl Error {
    /// Attaches a byte offset to an error raised by a `Deserialize` implementation.
    pub(crate) fn at(self, offset: usize) -> Self {
        match self {
            Error::Message(message) => Error::Mismatch { offset, message },
            other => other,
        }
    }

    pub(crate) fn invalid(offset: usize, message: impl Into<String>) -> Self {
        Error::Invalid {
            offset,
            message: message.into(),
        }
    }
}

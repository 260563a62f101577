//! Payload serializations: `bincode` (2.x, via serde; the default) and `json`
//! for the native `rpc` protocol, and `hessian2` for Java Dubbo's `dubbo`.
//!
//! Each has a wire id carried in the low 5 bits of the frame header's flag
//! byte. The native ids (30, 31) avoid every id Apache Dubbo uses (2 hessian2,
//! 3, 4, 6, 7, 8, 9, 10, 11, 12, 16, 18, 21, 22, 23, 27, 28); Hessian2 keeps
//! Dubbo's id 2, and that id is what makes a frame a `dubbo` one.

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Upper bound on the memory a bincode decode may claim, so that a length
/// prefix in a hostile payload cannot make the decoder allocate without bound.
const BINCODE_LIMIT: usize = 1 << 30;

fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<BINCODE_LIMIT>()
}

/// A payload serialization.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Serialization {
    /// bincode 2.x with serde, standard config (varint integers). Rust to Rust.
    #[default]
    Bincode,
    /// JSON via serde_json. Interoperable; arguments travel as a JSON array.
    Json,
    /// Hessian 2.0 (`rpc-hessian`), Java Dubbo's default: the serialization
    /// of `dubbo://` calls. Arguments travel as consecutive values and replies
    /// start with Dubbo's flag (value, null or exception); not one of the
    /// native protocol's serializations ([`ALL`](Self::ALL)).
    Hessian2,
}

impl Serialization {
    /// Every serialization of the native `rpc` protocol (Hessian2 is `dubbo`'s).
    pub const ALL: [Serialization; 2] = [Serialization::Bincode, Serialization::Json];

    /// This serialization's bit in a set of them (see [`Serialization::mask`]).
    pub const fn bit(self) -> u8 {
        match self {
            Serialization::Bincode => 1,
            Serialization::Json => 2,
            Serialization::Hessian2 => 4,
        }
    }

    /// The set of `serializations`, as a bit mask.
    pub fn mask(serializations: impl IntoIterator<Item = Serialization>) -> u8 {
        serializations.into_iter().fold(0, |mask, s| mask | s.bit())
    }

    /// The wire id (low 5 bits of the flag byte).
    pub const fn id(self) -> u8 {
        match self {
            Serialization::Bincode => 30,
            Serialization::Json => 31,
            Serialization::Hessian2 => 2,
        }
    }

    /// The serialization for a wire id.
    pub fn from_id(id: u8) -> Option<Serialization> {
        [Serialization::Bincode, Serialization::Json, Serialization::Hessian2]
            .into_iter()
            .find(|s| s.id() == id)
    }

    /// The name used in URLs (`serialization=bincode`).
    pub const fn name(self) -> &'static str {
        match self {
            Serialization::Bincode => "bincode",
            Serialization::Json => "json",
            Serialization::Hessian2 => "hessian2",
        }
    }

    /// The serialization called `name` (case-insensitive).
    pub fn from_name(name: &str) -> Option<Serialization> {
        [Serialization::Bincode, Serialization::Json, Serialization::Hessian2]
            .into_iter()
            .find(|s| s.name().eq_ignore_ascii_case(name))
    }

    /// Encodes `value`.
    ///
    /// Small encodings share a per-thread buffer (no allocation of their
    /// own): a `Bytes` kept for long keeps its 8 KiB chunk alive. Copy it
    /// (`Bytes::copy_from_slice`) to keep it apart.
    pub fn encode<T: Serialize + ?Sized>(self, value: &T) -> Result<Bytes, CodecError> {
        // Room for small values at once, split off the thread's scratch
        // buffer: no allocation of its own.
        crate::scratch::encode(256, |buf| self.encode_into(value, buf))
    }

    /// Encodes `value`, appending to `buf`.
    pub fn encode_into<T: Serialize + ?Sized>(self, value: &T, buf: &mut BytesMut) -> Result<(), CodecError> {
        let mut writer = buf.writer();
        match self {
            Serialization::Bincode => bincode::serde::encode_into_std_write(value, &mut writer, bincode_config())
                .map(|_| ())
                .map_err(|e| CodecError::new(self, e.to_string())),
            Serialization::Json => {
                serde_json::to_writer(&mut writer, value).map_err(|e| CodecError::new(self, e.to_string()))
            }
            Serialization::Hessian2 => rpc_hessian::Encoder::new(writer)
                .write(value)
                .map_err(|e| CodecError::new(self, e.to_string())),
        }
    }

    /// Decodes a `T` from all of `bytes` (trailing bytes are an error).
    pub fn decode<T: DeserializeOwned>(self, bytes: &[u8]) -> Result<T, CodecError> {
        match self {
            Serialization::Bincode => {
                let (value, used) = bincode::serde::decode_from_slice(bytes, bincode_config())
                    .map_err(|e| CodecError::new(self, e.to_string()))?;
                if used != bytes.len() {
                    return Err(CodecError::new(
                        self,
                        format!("{} trailing bytes after the value", bytes.len() - used),
                    ));
                }
                Ok(value)
            }
            Serialization::Json => serde_json::from_slice(bytes).map_err(|e| CodecError::new(self, e.to_string())),
            Serialization::Hessian2 => rpc_hessian::from_slice(bytes).map_err(|e| CodecError::new(self, e.to_string())),
        }
    }

    /// Decodes a `T` that may borrow from `bytes` (say `&str` or `Cow<str>`
    /// fields), from all of `bytes`.
    pub fn decode_borrowed<'a, T: Deserialize<'a>>(self, bytes: &'a [u8]) -> Result<T, CodecError> {
        match self {
            Serialization::Bincode => {
                let (value, used) = bincode::serde::borrow_decode_from_slice(bytes, bincode_config())
                    .map_err(|e| CodecError::new(self, e.to_string()))?;
                if used != bytes.len() {
                    return Err(CodecError::new(
                        self,
                        format!("{} trailing bytes after the value", bytes.len() - used),
                    ));
                }
                Ok(value)
            }
            Serialization::Json => serde_json::from_slice(bytes).map_err(|e| CodecError::new(self, e.to_string())),
            Serialization::Hessian2 => rpc_hessian::from_slice(bytes).map_err(|e| CodecError::new(self, e.to_string())),
        }
    }
}

impl fmt::Display for Serialization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A value could not be encoded or decoded.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{serialization}: {reason}")]
pub struct CodecError {
    serialization: Serialization,
    reason: String,
}

impl CodecError {
    pub(crate) fn new(serialization: Serialization, reason: String) -> Self {
        CodecError { serialization, reason }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Order {
        id: u64,
        items: Vec<String>,
        tags: BTreeMap<String, i32>,
        note: Option<String>,
    }

    #[test]
    fn both_serializations_round_trip() {
        let order = Order {
            id: 7,
            items: vec!["a".into(), "b".into()],
            tags: [("x".to_string(), -1)].into_iter().collect(),
            note: None,
        };
        for s in Serialization::ALL {
            let bytes = s.encode(&(&order, 3u8)).unwrap();
            let (back, n): (Order, u8) = s.decode(&bytes).unwrap();
            assert_eq!((back, n), (order_clone(&order), 3));
        }
    }

    fn order_clone(o: &Order) -> Order {
        Order {
            id: o.id,
            items: o.items.clone(),
            tags: o.tags.clone(),
            note: o.note.clone(),
        }
    }

    #[test]
    fn json_arguments_are_an_array() {
        let bytes = Serialization::Json.encode(&("world", 3)).unwrap();
        assert_eq!(&bytes[..], br#"["world",3]"#);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for s in Serialization::ALL {
            assert!(s.decode::<(String, Vec<u64>)>(&[0xff; 16]).is_err());
            assert!(s.decode::<String>(&[]).is_err());
        }
        // A huge claimed length must not allocate without bound.
        let hostile = [0xfc, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f];
        assert!(Serialization::Bincode.decode::<Vec<u8>>(&hostile).is_err());
        assert!(Serialization::Bincode.decode::<String>(&hostile).is_err());
    }

    #[test]
    fn ids_avoid_dubbo_ids() {
        const DUBBO: [u8; 17] = [2, 3, 4, 6, 7, 8, 9, 10, 11, 12, 16, 18, 21, 22, 23, 27, 28];
        for s in Serialization::ALL {
            assert!(!DUBBO.contains(&s.id()));
            assert!(s.id() < 32);
            assert_eq!(Serialization::from_id(s.id()), Some(s));
            assert_eq!(Serialization::from_name(s.name()), Some(s));
        }
        assert_eq!(Serialization::from_id(2), Some(Serialization::Hessian2));
        assert_eq!(Serialization::from_name("Hessian2"), Some(Serialization::Hessian2));
        assert!(!Serialization::ALL.contains(&Serialization::Hessian2));
    }
}

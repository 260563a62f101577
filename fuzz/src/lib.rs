//! Helpers shared by the fuzz targets in `fuzz_targets/`: the representative
//! payload types decoded from outside bytes, and a deterministic way to cut
//! an input into the reads a socket could deliver.

use std::collections::BTreeMap;

use rpc_core::Serialization;
use serde::{Deserialize, Serialize};

/// A business type as generated services carry them: nested strings, maps,
/// options and an enum.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    /// An integer id.
    pub id: u64,
    /// A sequence.
    pub items: Vec<String>,
    /// A map.
    pub tags: BTreeMap<String, i32>,
    /// An optional field.
    pub note: Option<String>,
    /// An enum with data.
    pub state: State,
}

/// An enum of every variant shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum State {
    /// Unit.
    New,
    /// Newtype.
    Paid(u32),
    /// Struct.
    Shipped {
        /// A string field.
        carrier: String,
    },
}

/// The serialization bit 0 of `selector` names.
pub fn serialization(selector: u8) -> Serialization {
    if selector & 1 == 0 {
        Serialization::Bincode
    } else {
        Serialization::Json
    }
}

/// Decodes `bytes` as a `T` and, when that works, checks that encoding the
/// value and decoding it again gives it back (what a peer that re-sends a
/// value relies on).
pub fn decode_round_trip<T>(serialization: Serialization, bytes: &[u8]) -> Option<T>
where
    T: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let value: T = serialization.decode(bytes).ok()?;
    let encoded = serialization
        .encode(&value)
        .unwrap_or_else(|e| panic!("{serialization}: a decoded {value:?} does not encode: {e}"));
    let back: T = serialization
        .decode(&encoded)
        .unwrap_or_else(|e| panic!("{serialization}: re-encoded {value:?} does not decode: {e}"));
    assert_eq!(back, value, "{serialization}: round trip changed the value");
    Some(value)
}

/// Cuts `data` into consecutive pieces whose sizes (0 to 31 bytes, sometimes
/// everything left) follow a generator seeded by `seed`: the same input and
/// seed always give the same cut.
pub fn chunks(data: &[u8], seed: u8) -> Vec<&[u8]> {
    let mut state = u32::from(seed) | 0x9e37_7900;
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        // xorshift32
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let size = if state % 16 == 0 {
            rest.len()
        } else {
            (state >> 8) as usize % 32
        };
        let (piece, tail) = rest.split_at(size.min(rest.len()));
        out.push(piece);
        rest = tail;
    }
    out
}

//! The payloads every system echoes: a 64-byte string and a ~1 KiB record.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Which payload a scenario echoes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Payload {
    /// A 64-byte string.
    Small,
    /// A ~1 KiB record: nested fields, a vector, a map.
    Large,
}

impl Payload {
    /// The name used in tables and CSV.
    pub fn name(self) -> &'static str {
        match self {
            Payload::Small => "echo-64B",
            Payload::Large => "echo-1KiB",
        }
    }
}

/// The 64-byte string.
pub fn small() -> String {
    "x".repeat(64)
}

/// A nested part of [`Record`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    /// Street line.
    pub street: String,
    /// City.
    pub city: String,
    /// Postal code.
    pub zip: u32,
}

/// The ~1 KiB record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// An id.
    pub id: u64,
    /// A name.
    pub name: String,
    /// A nested struct.
    pub address: Address,
    /// A vector of numbers.
    pub scores: Vec<u32>,
    /// A map of tags.
    pub tags: BTreeMap<String, String>,
    /// Free text.
    pub note: String,
}

/// The record every system echoes (about 1 KiB encoded).
pub fn record() -> Record {
    Record {
        id: 42,
        name: "Ada Lovelace".into(),
        address: Address {
            street: "12 Analytical Engine Row".into(),
            city: "London".into(),
            zip: 10_815,
        },
        scores: (0..64).map(|i| i * 1_000 + 7).collect(),
        tags: (0..16)
            .map(|i| (format!("key-{i:02}"), format!("value-{i:02}-abcdefgh")))
            .collect(),
        note: "n".repeat(300),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_is_about_a_kilobyte() {
        let json = serde_json::to_vec(&record()).unwrap_or_default();
        assert!((900..2_000).contains(&json.len()), "{}", json.len());
        assert_eq!(small().len(), 64);
    }
}

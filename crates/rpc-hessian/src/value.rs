//! [`Value`], any Hessian value, and [`Date`].

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

use crate::magic;

/// A `java.util.Date`: milliseconds since 1970-01-01T00:00:00Z.
///
/// Written as a Hessian date (`0x4a`, or `0x4b` for whole minutes); read from a date
/// or a long. With other serde formats it is the plain `i64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Date(pub i64);

impl Serialize for Date {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_newtype_struct(magic::DATE, &self.0)
    }
}

impl<'de> Deserialize<'de> for Date {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        i64::deserialize(deserializer).map(Date)
    }
}

/// Any Hessian value, as read from or written to a Java peer without a Rust type:
/// untyped data, Java exceptions (an object of class `java.lang.RuntimeException`
/// with fields `detailMessage`, `cause`, `stackTrace`, ...), generic invocation.
///
/// Reading a `Value` keeps what Hessian says: int and long stay apart, a list or map
/// keeps its Java type, an object its class and field order. Writing it back with this
/// crate's [`Encoder`](crate::Encoder) writes the same kinds. A back-reference to an
/// object that is still being read (a cycle, as in a `Throwable` whose `cause` is
/// itself) reads as [`Value::Null`]: a `Value` is a tree.
///
/// With other serde formats (e.g. JSON for logging) scalars, untyped lists and maps
/// serialize plainly; a date is its millis, and a typed list or map or an object is a
/// tuple of its type (class and field names) and contents.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    /// `null`.
    #[default]
    Null,
    /// `boolean`.
    Bool(bool),
    /// `int` (also what Java's `byte`, `short` and `char`-as-number are written as).
    Int(i32),
    /// `long`.
    Long(i64),
    /// `double` (and `float`).
    Double(f64),
    /// `java.util.Date`, in milliseconds since the epoch.
    Date(i64),
    /// `String`.
    String(String),
    /// `byte[]`.
    Binary(Vec<u8>),
    /// A list or array; `type` is the Java type the writer named (`[int`,
    /// `java.util.HashSet`, ...), `None` for an untyped list (read as `ArrayList`).
    List {
        /// The Java type, if the writer sent one.
        r#type: Option<String>,
        /// The elements.
        items: Vec<Value>,
    },
    /// A map; `type` is the Java type the writer named, `None` for an untyped map
    /// (read as `HashMap`).
    Map {
        /// The Java type, if the writer sent one.
        r#type: Option<String>,
        /// The entries, in the order written.
        entries: Vec<(Value, Value)>,
    },
    /// An object of a Java class, its fields in the order of its class definition.
    Object {
        /// The Java class name, e.g. `org.example.Order`.
        class: String,
        /// Field names and values.
        fields: Vec<(String, Value)>,
    },
}

impl Value {
    /// The value of an object's field, or of a map's string key; `None` otherwise.
    pub fn field(&self, name: &str) -> Option<&Value> {
        match self {
            Value::Object { fields, .. } => fields.iter().find(|(n, _)| n == name).map(|(_, v)| v),
            Value::Map { entries, .. } => entries
                .iter()
                .find(|(k, _)| matches!(k, Value::String(s) if s == name))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
}

struct Entries<'a>(&'a [(Value, Value)]);

impl Serialize for Entries<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

struct FieldNames<'a>(&'a [(String, Value)]);

impl Serialize for FieldNames<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for (name, _) in self.0 {
            seq.serialize_element(name)?;
        }
        seq.end()
    }
}

struct FieldValues<'a>(&'a [(String, Value)]);

impl Serialize for FieldValues<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for (_, value) in self.0 {
            seq.serialize_element(value)?;
        }
        seq.end()
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => serializer.serialize_unit(),
            Value::Bool(b) => serializer.serialize_bool(*b),
            Value::Int(i) => serializer.serialize_i32(*i),
            Value::Long(l) => serializer.serialize_i64(*l),
            Value::Double(d) => serializer.serialize_f64(*d),
            Value::Date(millis) => Date(*millis).serialize(serializer),
            Value::String(s) => serializer.serialize_str(s),
            Value::Binary(b) => serializer.serialize_bytes(b),
            Value::List { r#type: None, items } => items.serialize(serializer),
            Value::List { r#type: Some(t), items } => serializer.serialize_newtype_struct(magic::LIST, &(t, items)),
            Value::Map { r#type: None, entries } => Entries(entries).serialize(serializer),
            Value::Map {
                r#type: Some(t),
                entries,
            } => serializer.serialize_newtype_struct(magic::MAP, &(t, Entries(entries))),
            Value::Object { class, fields } => {
                serializer.serialize_newtype_struct(magic::OBJECT, &(class, FieldNames(fields), FieldValues(fields)))
            }
        }
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_newtype_struct(magic::VALUE, ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any Hessian value")
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        Value::deserialize(deserializer)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i8<E>(self, v: i8) -> Result<Value, E> {
        Ok(Value::Int(v.into()))
    }
    fn visit_i16<E>(self, v: i16) -> Result<Value, E> {
        Ok(Value::Int(v.into()))
    }
    fn visit_i32<E>(self, v: i32) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Long(v))
    }
    fn visit_u8<E>(self, v: u8) -> Result<Value, E> {
        Ok(Value::Int(v.into()))
    }
    fn visit_u16<E>(self, v: u16) -> Result<Value, E> {
        Ok(Value::Int(v.into()))
    }
    fn visit_u32<E>(self, v: u32) -> Result<Value, E> {
        Ok(i32::try_from(v).map_or(Value::Long(v.into()), Value::Int))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        i64::try_from(v)
            .map(Value::Long)
            .map_err(|_| E::custom(format_args!("u64 {v} is above i64::MAX")))
    }
    fn visit_f32<E>(self, v: f32) -> Result<Value, E> {
        Ok(Value::Double(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Double(v))
    }
    fn visit_char<E>(self, v: char) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::Binary(v.to_vec()))
    }
    fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Value, E> {
        Ok(Value::Binary(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        let mut r#type = None;
        if let Some(first) = seq.next_element::<Value>()? {
            match first {
                Value::String(s) if s.starts_with(magic::LIST) => {
                    r#type = s[magic::LIST.len()..].strip_prefix(':').map(str::to_owned);
                }
                other => items.push(other),
            }
        }
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::List { r#type, items })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let Some(first) = map.next_key::<Value>()? else {
            return Ok(Value::Map {
                r#type: None,
                entries: Vec::new(),
            });
        };
        match first.as_str() {
            Some(magic::DATE) => Ok(Value::Date(map.next_value()?)),
            Some(magic::OBJECT) => {
                let class = map.next_value()?;
                let mut fields = Vec::new();
                while let Some((name, value)) = map.next_entry()? {
                    fields.push((name, value));
                }
                Ok(Value::Object { class, fields })
            }
            Some(magic::MAP) => {
                let r#type = match map.next_value::<Value>()? {
                    Value::String(t) => Some(t),
                    _ => None,
                };
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(Value::Map { r#type, entries })
            }
            _ => {
                let mut entries = vec![(first, map.next_value()?)];
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(Value::Map { r#type: None, entries })
            }
        }
    }
}

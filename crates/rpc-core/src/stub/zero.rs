//! The "zero value" of any deserializable type, without `T: Default`.
//!
//! It lives with the stub because only typed code can build it: the failsafe
//! and failback policies (in `rpc-cluster`) answer with an untyped
//! [`Response::zero`](crate::Response::zero), and the stub, which knows the
//! method's return type, turns that into a value when it decodes the reply.
//!
//! The failsafe cluster policy answers a failed call with the empty value of the
//! method's return type. [`zero_value`] builds it by running `T`'s own
//! [`Deserialize`](serde::Deserialize) impl against a deserializer that answers
//! every request with the zero of what is asked:
//!
//! * numbers are `0`, `bool` is `false`, `char` is `'\0'`, strings and byte
//!   buffers are empty;
//! * sequences and maps (`Vec`, `HashMap`, `BTreeSet`, ...) are empty, `Option`
//!   is `None`, `()` and unit structs are unit;
//! * tuples, arrays, tuple structs and structs are built field by field from the
//!   zero of each field, so any derived struct, nested or not, has a zero;
//! * enums take their **first** variant, so `Result<T, E>` is `Ok(zero of T)`;
//! * `Duration` is [`Duration::ZERO`](std::time::Duration::ZERO) and `SystemTime`
//!   is [`UNIX_EPOCH`](std::time::UNIX_EPOCH);
//! * the deserializer is not human-readable, so types with a compact form take
//!   it: `IpAddr` is `0.0.0.0`, `SocketAddr` is `0.0.0.0:0`;
//! * a self-describing request (`deserialize_any`) gets unit, so
//!   `serde_json::Value` is `Null`; `#[serde(untagged)]` enums ask this way and
//!   succeed only if a variant accepts unit (such as one holding an `Option`).
//!
//! A type whose `Deserialize` rejects the zero input has no zero value, and
//! [`zero_value`] returns a [`ZeroError`]: `NonZeroU32`; a `#[serde(try_from)]`
//! newtype whose validation refuses zero or empty; a type parsed from a string
//! that must not be empty; an enum with no variants; an internally tagged enum
//! (`#[serde(tag = "...")]`); a struct with a `#[serde(flatten)]` field (it asks
//! for a map, gets an empty one, and misses its required fields); and a type that
//! nests itself more than 64 levels deep (e.g. `struct A(Box<A>)`).

use std::fmt;

use serde::de::value::U32Deserializer;
use serde::de::{self, DeserializeSeed, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor};

/// How deep [`zero_value`] follows nested types before it gives up.
const MAX_DEPTH: usize = 64;

/// The reason given when a type nests deeper than [`MAX_DEPTH`].
const TOO_DEEP: &str = "type nests deeper than 64 levels";

/// The zero value of `T`: zero numbers, empty strings and collections, `None`,
/// structs built field by field and enums at their first variant.
///
/// See the [module documentation](self) for the full rules.
///
/// # Errors
///
/// [`ZeroError`] if `T`'s `Deserialize` impl rejects the zero input (as
/// `NonZeroU32` does), if `T` is an enum with no variants, or if `T` nests
/// deeper than 64 levels (a recursive type).
pub(crate) fn zero_value<T: de::DeserializeOwned>() -> Result<T, ZeroError> {
    T::deserialize(Zero(0))
}

/// Why a type has no zero value (its Deserialize impl rejected the zero input).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ZeroError {
    reason: String,
}

#[cfg(test)]
impl ZeroError {
    /// Why the zero input was rejected.
    pub(crate) fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for ZeroError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "type has no zero value: {}", self.reason)
    }
}

impl std::error::Error for ZeroError {}

impl de::Error for ZeroError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        let reason = msg.to_string();
        ZeroError { reason }
    }
}

/// A deserializer that answers every request with the zero of what is asked,
/// `.0` levels below the value [`zero_value`] was asked for.
#[derive(Debug, Clone, Copy)]
struct Zero(usize);

/// Names of struct fields or enum variants, as serde passes them.
type Names = &'static [&'static str];

impl Zero {
    /// The deserializer for a value nested one level inside this one.
    fn child(self) -> Result<Zero, ZeroError> {
        if self.0 >= MAX_DEPTH {
            return Err(de::Error::custom(TOO_DEEP));
        }
        Ok(Zero(self.0 + 1))
    }

    /// A sequence of `len` zero elements.
    fn seq(self, len: usize) -> Result<ZeroSeq, ZeroError> {
        Ok(ZeroSeq(len, self.child()?))
    }
}

macro_rules! zero_scalars {
    ($($method:ident => $visit:ident($($value:expr)?);)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ZeroError> {
            visitor.$visit($($value)?)
        }
    )*};
}

impl<'de> de::Deserializer<'de> for Zero {
    type Error = ZeroError;

    zero_scalars! {
        deserialize_any => visit_unit();
        deserialize_bool => visit_bool(false);
        deserialize_i8 => visit_i8(0);
        deserialize_i16 => visit_i16(0);
        deserialize_i32 => visit_i32(0);
        deserialize_i64 => visit_i64(0);
        deserialize_i128 => visit_i128(0);
        deserialize_u8 => visit_u8(0);
        deserialize_u16 => visit_u16(0);
        deserialize_u32 => visit_u32(0);
        deserialize_u64 => visit_u64(0);
        deserialize_u128 => visit_u128(0);
        deserialize_f32 => visit_f32(0.0);
        deserialize_f64 => visit_f64(0.0);
        deserialize_char => visit_char('\0');
        deserialize_str => visit_borrowed_str("");
        deserialize_string => visit_string(String::new());
        deserialize_bytes => visit_borrowed_bytes(&[]);
        deserialize_byte_buf => visit_byte_buf(Vec::new());
        deserialize_option => visit_none();
        deserialize_unit => visit_unit();
        deserialize_identifier => visit_u64(0);
        deserialize_ignored_any => visit_unit();
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, _: &str, visitor: V) -> Result<V::Value, ZeroError> {
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _: &str, visitor: V) -> Result<V::Value, ZeroError> {
        visitor.visit_newtype_struct(self.child()?)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ZeroError> {
        visitor.visit_seq(self.seq(0)?)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ZeroError> {
        visitor.visit_map(EmptyMap)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, ZeroError> {
        visitor.visit_seq(self.seq(len)?)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(self, _: &str, len: usize, v: V) -> Result<V::Value, ZeroError> {
        v.visit_seq(self.seq(len)?)
    }

    fn deserialize_struct<V: Visitor<'de>>(self, _: &str, fields: Names, v: V) -> Result<V::Value, ZeroError> {
        v.visit_seq(self.seq(fields.len())?)
    }

    fn deserialize_enum<V: Visitor<'de>>(self, _: &str, variants: Names, v: V) -> Result<V::Value, ZeroError> {
        if variants.is_empty() {
            return Err(de::Error::custom("enum has no variants"));
        }
        v.visit_enum(self)
    }

    /// Not human-readable: types with a compact form (`IpAddr`, ...) take it
    /// instead of parsing an empty string.
    fn is_human_readable(&self) -> bool {
        false
    }
}

/// A sequence of `.0` more zero elements, each deserialized from `.1`.
#[derive(Debug)]
struct ZeroSeq(usize, Zero);

impl<'de> SeqAccess<'de> for ZeroSeq {
    type Error = ZeroError;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, ZeroError> {
        if self.0 == 0 {
            return Ok(None);
        }
        self.0 -= 1;
        seed.deserialize(self.1).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.0)
    }
}

/// A map with no entries.
#[derive(Debug)]
struct EmptyMap;

impl<'de> MapAccess<'de> for EmptyMap {
    type Error = ZeroError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, _: K) -> Result<Option<K::Value>, ZeroError> {
        Ok(None)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, _: V) -> Result<V::Value, ZeroError> {
        Err(de::Error::custom("map value requested without a key"))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(0)
    }
}

/// An enum at its first variant (index 0), whose contents are zero.
impl<'de> EnumAccess<'de> for Zero {
    type Error = ZeroError;
    type Variant = Zero;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Zero), ZeroError> {
        Ok((seed.deserialize(U32Deserializer::<ZeroError>::new(0))?, self))
    }
}

impl<'de> VariantAccess<'de> for Zero {
    type Error = ZeroError;

    fn unit_variant(self) -> Result<(), ZeroError> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, ZeroError> {
        seed.deserialize(self.child()?)
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, ZeroError> {
        visitor.visit_seq(self.seq(len)?)
    }

    fn struct_variant<V: Visitor<'de>>(self, fields: Names, visitor: V) -> Result<V::Value, ZeroError> {
        visitor.visit_seq(self.seq(fields.len())?)
    }
}

#[cfg(test)]
#[allow(dead_code)]
mod tests {
    use std::collections::{BTreeMap, HashMap};
    use std::net::{IpAddr, Ipv4Addr, SocketAddr};
    use std::num::NonZeroU32;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use serde::Deserialize;
    use serde_json::Value;

    use super::*;

    fn zero<T: de::DeserializeOwned>() -> T {
        zero_value().unwrap()
    }

    fn reason<T: de::DeserializeOwned + fmt::Debug>() -> String {
        zero_value::<T>().unwrap_err().reason().to_owned()
    }

    #[test]
    fn primitives_strings_and_collections() {
        let nums = (false, 0i8, 0u16, 0i32, 0u64, 0i128, 0u128, 0.0f32, 0.0f64, '\0');
        assert_eq!(zero::<(bool, i8, u16, i32, u64, i128, u128, f32, f64, char)>(), nums);
        assert_eq!(
            zero::<(String, Vec<u8>, Vec<String>, Option<u32>, ())>(),
            Default::default()
        );
        assert_eq!(
            zero::<(HashMap<String, u32>, BTreeMap<u32, Vec<u8>>)>(),
            Default::default()
        );
        assert_eq!(zero::<[u16; 3]>(), [0, 0, 0]);
        assert_eq!(zero::<Box<u32>>(), Box::new(0));
        assert_eq!(&*zero::<Box<str>>(), "");
        assert_eq!(zero::<Result<u32, String>>(), Ok(0));
        assert_eq!(zero::<Result<Vec<u8>, String>>(), Ok(vec![]));
        assert_eq!(zero::<Value>(), Value::Null);
        assert_eq!(zero::<Duration>(), Duration::ZERO);
        assert_eq!(zero::<SystemTime>(), UNIX_EPOCH);
        assert_eq!(zero::<IpAddr>(), IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        assert_eq!(zero::<SocketAddr>(), SocketAddr::from(([0, 0, 0, 0], 0)));
    }

    #[derive(Debug, Default, PartialEq, Deserialize)]
    struct Inner {
        id: u64,
        tags: Vec<String>,
        attrs: HashMap<String, String>,
        parent: Option<Box<Inner>>,
    }

    #[derive(Debug, Default, PartialEq, Deserialize)]
    struct Outer {
        name: String,
        inner: Inner,
        pair: (i32, bool),
        #[serde(skip)]
        skipped: u8,
        shape: Shape,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    struct Pair(u32, String);

    #[derive(Debug, PartialEq, Deserialize)]
    struct Marker;

    #[derive(Debug, Default, PartialEq, Deserialize)]
    enum Shape {
        #[default]
        Empty,
        Circle(f64),
    }

    #[derive(Debug, PartialEq, Deserialize)]
    enum Wrapped {
        Value(Inner),
        Other,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    enum Rect {
        Sized { w: u32, label: Option<String> },
        Point(i8, i8),
    }

    #[test]
    fn derived_structs_and_enums() {
        assert_eq!(zero::<Outer>(), Outer::default());
        assert_eq!(zero::<Pair>(), Pair(0, String::new()));
        assert_eq!(zero::<Marker>(), Marker);
        assert_eq!(zero::<Wrapped>(), Wrapped::Value(Inner::default()));
        assert_eq!(zero::<Rect>(), Rect::Sized { w: 0, label: None });
    }

    #[derive(Debug, Deserialize)]
    #[serde(try_from = "String")]
    struct NonEmpty(String);

    impl TryFrom<String> for NonEmpty {
        type Error = &'static str;
        fn try_from(s: String) -> Result<Self, Self::Error> {
            if s.is_empty() {
                Err("empty name")
            } else {
                Ok(NonEmpty(s))
            }
        }
    }

    #[derive(Debug, Deserialize)]
    enum Never {}

    #[derive(Debug, Deserialize)]
    struct Loop(Box<Loop>);

    #[derive(Debug, Deserialize)]
    struct Tree(Vec<u8>, Box<Tree>, Box<Tree>);

    #[test]
    fn types_without_a_zero() {
        let err = zero_value::<NonZeroU32>().unwrap_err();
        assert!(err.to_string().starts_with("type has no zero value: "), "{err}");
        assert!(err.reason().contains("nonzero"), "{err}");
        assert_eq!(reason::<NonEmpty>(), "empty name");
        assert_eq!(reason::<Never>(), "enum has no variants");
        assert_eq!(reason::<Loop>(), "type nests deeper than 64 levels");
        assert_eq!(reason::<Tree>(), "type nests deeper than 64 levels");
        assert!(zero::<Option<Loop>>().is_none());
    }
}

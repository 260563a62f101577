//! Hash keys over chosen arguments, for consistent hashing.
//!
//! A call's arguments travel as one encoded tuple. Dubbo's consistent-hash
//! balancer hashes only the arguments named by `hash.arguments` (by default
//! the first), so that, say, every call about one user id lands on the same
//! provider whatever the other arguments are. [`hash_arguments`] gives that
//! key: it walks the argument tuple with a serializer that encodes only the
//! chosen elements, each with bincode, into a stable 64-bit FNV-1a hash.
//!
//! It lives with the stub because only typed code can walk the arguments:
//! past the stub a call's arguments are bytes. The cluster decides which
//! methods are hashed and on which positions (an [`ArgumentMask`]); the stub
//! computes the key and the consistent-hash balancer reads it from the
//! [`Invocation`](crate::Invocation).

use std::fmt;

use serde::Serialize;
use serde::ser::{self, Impossible, SerializeTuple};

/// A set of argument positions (0 to 31), as a bit mask.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ArgumentMask(u32);

impl ArgumentMask {
    /// The arguments at `positions` (positions above 31 are ignored).
    pub const fn of(positions: &[u8]) -> ArgumentMask {
        let mut mask = 0u32;
        let mut i = 0;
        while i < positions.len() {
            if positions[i] < 32 {
                mask |= 1 << positions[i];
            }
            i += 1;
        }
        ArgumentMask(mask)
    }

    /// Only the first argument (Dubbo's default).
    pub const FIRST: ArgumentMask = ArgumentMask(1);

    /// Whether position `i` is chosen.
    pub const fn contains(self, i: usize) -> bool {
        i < 32 && self.0 & (1 << i) != 0
    }
}

/// The hash of the arguments of `args` (the method's argument tuple) chosen
/// by `mask`. Stable across processes and platforms. Arguments that cannot be
/// encoded hash as nothing.
pub(crate) fn hash_arguments<A: Serialize + ?Sized>(args: &A, mask: ArgumentMask) -> u64 {
    let mut walker = Walker {
        mask,
        hash: Fnv::new(),
        index: 0,
    };
    let _ = args.serialize(&mut walker);
    walker.hash.0
}

/// FNV-1a, 64 bits.
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl std::io::Write for Fnv {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct Walker {
    mask: ArgumentMask,
    hash: Fnv,
    index: usize,
}

impl Walker {
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) {
        if self.mask.contains(self.index) {
            // The position first, so that (a, b) and (b, a) differ.
            let _ = std::io::Write::write(&mut self.hash, &[self.index as u8]);
            let _ = bincode::serde::encode_into_std_write(value, &mut self.hash, bincode::config::standard());
        }
        self.index += 1;
    }
}

/// Why the walker stopped: the value is not a tuple.
#[derive(Debug)]
struct NotATuple;

impl fmt::Display for NotATuple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the arguments are not a tuple")
    }
}

impl std::error::Error for NotATuple {}

impl ser::Error for NotATuple {
    fn custom<T: fmt::Display>(_msg: T) -> Self {
        NotATuple
    }
}

impl SerializeTuple for &mut Walker {
    type Ok = ();
    type Error = NotATuple;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), NotATuple> {
        self.element(value);
        Ok(())
    }

    fn end(self) -> Result<(), NotATuple> {
        Ok(())
    }
}

macro_rules! refuse {
    ($($name:ident($($ty:ty),*);)*) => {
        $(fn $name(self, $(_: $ty),*) -> Result<(), NotATuple> { Err(NotATuple) })*
    };
}

impl ser::Serializer for &mut Walker {
    type Ok = ();
    type Error = NotATuple;
    type SerializeSeq = Impossible<(), NotATuple>;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Impossible<(), NotATuple>;
    type SerializeTupleVariant = Impossible<(), NotATuple>;
    type SerializeMap = Impossible<(), NotATuple>;
    type SerializeStruct = Impossible<(), NotATuple>;
    type SerializeStructVariant = Impossible<(), NotATuple>;

    fn serialize_tuple(self, _len: usize) -> Result<Self, NotATuple> {
        Ok(self)
    }

    // No arguments: nothing to hash.
    fn serialize_unit(self) -> Result<(), NotATuple> {
        Ok(())
    }

    refuse! {
        serialize_bool(bool);
        serialize_i8(i8);
        serialize_i16(i16);
        serialize_i32(i32);
        serialize_i64(i64);
        serialize_u8(u8);
        serialize_u16(u16);
        serialize_u32(u32);
        serialize_u64(u64);
        serialize_f32(f32);
        serialize_f64(f64);
        serialize_char(char);
        serialize_str(&str);
        serialize_bytes(&[u8]);
        serialize_none();
        serialize_unit_struct(&'static str);
        serialize_unit_variant(&'static str, u32, &'static str);
    }

    fn serialize_some<T: Serialize + ?Sized>(self, _value: &T) -> Result<(), NotATuple> {
        Err(NotATuple)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, _: &T) -> Result<(), NotATuple> {
        Err(NotATuple)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), NotATuple> {
        Err(NotATuple)
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, NotATuple> {
        Err(NotATuple)
    }

    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeTupleStruct, NotATuple> {
        Err(NotATuple)
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, NotATuple> {
        Err(NotATuple)
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, NotATuple> {
        Err(NotATuple)
    }

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, NotATuple> {
        Err(NotATuple)
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, NotATuple> {
        Err(NotATuple)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_chosen_arguments_count() {
        let first = ArgumentMask::FIRST;
        assert_eq!(
            hash_arguments(&("user-1", 10u32), first),
            hash_arguments(&("user-1", 99u32), first)
        );
        assert_ne!(
            hash_arguments(&("user-1", 10u32), first),
            hash_arguments(&("user-2", 10u32), first)
        );
        let both = ArgumentMask::of(&[0, 1]);
        assert_ne!(
            hash_arguments(&("user-1", 10u32), both),
            hash_arguments(&("user-1", 99u32), both)
        );
        let second = ArgumentMask::of(&[1]);
        assert_eq!(hash_arguments(&("a", 7u8), second), hash_arguments(&("b", 7u8), second));
    }

    #[test]
    fn positions_matter_and_hashes_are_stable() {
        let both = ArgumentMask::of(&[0, 1]);
        assert_ne!(hash_arguments(&(1u8, 2u8), both), hash_arguments(&(2u8, 1u8), both));
        // Pinned: every consumer, every platform, every release maps a key
        // alike. FNV-1a of [position 0, bincode "k" = len 1, b'k'].
        assert_eq!(hash_arguments(&("k",), ArgumentMask::FIRST), 0xd949_c318_6c0c_73a3);
    }

    #[test]
    fn out_of_range_positions_are_ignored() {
        assert_eq!(ArgumentMask::of(&[40]), ArgumentMask::default());
        assert!(!ArgumentMask::of(&[31]).contains(32));
        assert!(ArgumentMask::of(&[31]).contains(31));
    }
}

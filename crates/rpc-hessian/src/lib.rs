//! Hessian 2.0 serialization for serde, to exchange values with Java (Apache Dubbo's
//! `dubbo://` protocol and the Hessian-wrapped arguments of its Triple protocol).
//!
//! Write values with an [`Encoder`] (or [`to_vec`]) and read them with a [`Decoder`]
//! (or [`from_slice`]). One encoder or decoder handles *one message* of several
//! consecutive values that share class definitions, type names and back-references,
//! as Java's `Hessian2Output`/`Hessian2Input` do:
//!
//! ```
//! use rpc_hessian::{Decoder, Encoder};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize, Debug, PartialEq)]
//! struct Order { item: String, quantity: i32 }
//!
//! let mut message = Vec::new();
//! let mut encoder = Encoder::with_package(&mut message, "org.example");
//! encoder.write("2.0.2")?;
//! encoder.write(&Order { item: "tea".into(), quantity: 2 })?; // class definition + object
//! encoder.write(&Order { item: "cake".into(), quantity: 1 })?; // object only
//!
//! let mut decoder = Decoder::new(&message);
//! assert_eq!(decoder.read::<String>()?, "2.0.2");
//! assert_eq!(decoder.read::<Order>()?.item, "tea");
//! assert_eq!(decoder.read::<rpc_hessian::Value>()?.field("item").and_then(|v| v.as_str()), Some("cake"));
//! # Ok::<(), rpc_hessian::Error>(())
//! ```
//!
//! # Type mapping
//!
//! | Rust | Hessian 2.0 | Java |
//! |------|-------------|------|
//! | `bool` | `T` / `F` | `boolean` |
//! | `i8`, `i16`, `i32`, `u8`, `u16`; `u32` up to `i32::MAX` | int | `int` (`byte`, `short` read it too) |
//! | `i64`; `u32` above `i32::MAX`; `u64` up to `i64::MAX` | long | `long` |
//! | `f32`, `f64` | double | `double` (`float` reads it) |
//! | `char`, `String`, `&str` | string (UTF-16 length, non-BMP characters as surrogate pairs) | `String` (`char` reads a 1-character string) |
//! | `Vec<u8>`, `[u8]` | list of ints; read from binary too | `byte[]` via binary: use `serde_bytes` |
//! | `serde_bytes::ByteBuf`, anything calling `serialize_bytes` | binary | `byte[]` |
//! | `Option<T>` | `N` or the value | `null` or the value |
//! | `()`, unit struct | `N` | `null` |
//! | `Vec<T>`, slices, arrays, tuples, tuple structs, sets | untyped fixed-length list (`0x78..0x7f`, `0x58`) | `ArrayList`; Java arrays, `List` and `Set` fields read it |
//! | `HashMap`, `BTreeMap`, other maps | untyped map (`H`) | `HashMap` |
//! | struct | object (`C` class definition once per message, then `0x60..0x6f` / `O`) of the class named below | that class, fields matched by name |
//! | enum, unit variants | object of the enum's class with one field `name` | `enum` |
//! | [`Date`] | date (`0x4a`, `0x4b` for whole minutes) | `java.util.Date` |
//! | newtype struct | its content | its content |
//! | [`Value`] | whatever it holds, typed lists/maps and objects included | any |
//!
//! **Java class names.** A struct's or enum's serde name (`#[serde(rename = "...")]`
//! changes it) containing a `.` is the Java class name as is; otherwise the package of
//! [`Encoder::with_package`] is prefixed (`Order` -> `org.example.Order`); without a
//! package the bare name is written. Java's deserializer loads that class, so it must
//! exist on the Java side (Dubbo 3.3's serialization check also requires it to be a
//! class the service interface uses).
//!
//! **Reading** accepts every Hessian 2.0 form of each type: ints and longs into any Rust
//! integer that holds the value, any number into `f64`, a date into `i64`/[`Date`], a
//! string or a Java enum object into an enum's unit variant, binary into `Vec<u8>`,
//! objects and maps into structs and maps (unknown fields are ignored, as serde does),
//! typed and untyped lists of every form, chunked strings and binary, and
//! back-references (`Q`). [`Value`] reads anything.
//!
//! # Refused, and how
//!
//! Writing: enum variants carrying data (newtype, tuple, struct variants) and `u64`
//! above `i64::MAX` are refused with [`Error::Unsupported`] naming the type and variant
//! or value; so are `i128`/`u128` and nesting deeper than [`MAX_DEPTH`]. A struct with
//! `#[serde(flatten)]` is written as an untyped map (serde hands it over as a map), which
//! Java reads as a `HashMap`, not as the class.
//!
//! Reading: malformed input, truncated input, unknown tags, references to unknown class
//! definitions, types or values, invalid UTF-8 and unpaired surrogates (a Rust `String`
//! cannot hold them), lengths larger than the remaining input, nesting deeper than
//! [`MAX_DEPTH`] and back-reference expansion beyond [`MAX_EXPANSION_FACTOR`] times the
//! input are each an [`Error`] with the byte offset; nothing panics and nothing is
//! allocated beyond what the input can fill. A reference to a value still being read
//! (a cycle, e.g. a Java exception whose `cause` is itself) reads as `None`/null.
//!
//! The encoder writes no back-references: Rust values are trees, so a value that
//! appears twice is written twice (Java reads two equal objects).
//!
//! # Also not supported
//!
//! - Object graphs with cycles or sharing, as Rust values (cycles read as null).
//! - Borrowed `&str`/`&[u8]` fields when the string or binary is chunked (over 32 KiB)
//!   or, for strings, holds characters outside the BMP (Java writes them as two
//!   surrogates, which a `&str` cannot borrow): read `String`/`Vec<u8>` instead.
//! - Java types with custom Hessian serializers (`BigDecimal`, `java.time`, ...) have
//!   no dedicated Rust type: they read as the objects their serializers write (e.g.
//!   `java.math.BigDecimal` with a `value` string field), which a struct or [`Value`]
//!   can hold.
//! - Hessian 1 and the Hessian call/reply envelope (`c`/`r`/`H` headers): this crate
//!   is the value serialization the `dubbo` protocol embeds.
//!
//! After an error the [`Encoder`]'s message is incomplete and the [`Decoder`]'s
//! position unspecified: discard them.

mod de;
mod error;
mod magic;
mod ser;
mod value;

pub use de::{Decoder, MAX_EXPANSION_FACTOR, MIN_EXPANSION, from_slice};
pub use error::Error;
pub use ser::{Compound, Encoder, MAX_DEPTH, Refused, to_vec};
pub use value::{Date, Value};

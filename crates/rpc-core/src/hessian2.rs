//! Hessian2 as a call's serialization: how the arguments and the reply of a
//! `dubbo://` call are laid out (Java Dubbo's `DubboCodec`).
//!
//! * **Arguments** are consecutive Hessian values, one per parameter, sharing
//!   one message's class definitions (not one list): the generated argument
//!   tuple `(a, b)` is written and read element by element, and a method
//!   without arguments has no bytes at all.
//! * **The reply** starts with Dubbo's *int* flag: `1` and the value, `2` for
//!   `null` (a `()` or `None` return), `0` and a Java exception object. A method
//!   returning `Result<T, E>` answers `Ok(v)` as the value (or null) and
//!   `Err(e)` as the exception, `e` written as an object of `E`'s Java class;
//!   reading it back, an exception becomes `Err(E)` when its class is `E`'s,
//!   and a [`JavaException`] otherwise (or when the method returns no `Result`).
//!   Flags `3`–`5` (the same, followed by an attachments map) are read too.
//!
//! Struct names without a dot take the interface's package (`Order` of
//! `org.example.Greeter` is `org.example.Order`), as the Hessian2 crate's
//! [`Encoder::with_package`] does.

use std::fmt;

use bytes::{BufMut, BytesMut};
use rpc_hessian::{Decoder, Encoder, Value};
use serde::de::{self, DeserializeOwned, DeserializeSeed, Visitor};
use serde::ser::{self, Impossible, Serialize};

/// Reply flag: a Java exception follows.
pub(crate) const FLAG_EXCEPTION: u8 = 0;
/// Reply flag: the value follows.
pub(crate) const FLAG_VALUE: u8 = 1;
/// Reply flag: the value is `null`, nothing follows.
pub(crate) const FLAG_NULL: u8 = 2;
/// Added to a flag when an attachments map follows the value.
pub(crate) const WITH_ATTACHMENTS: u8 = 3;
/// Hessian's one-byte form of the ints -16..=47: `0x90 + n`.
pub(crate) const COMPACT_INT_ZERO: u8 = 0x90;

/// The Java package of an interface name: `org.example` for `org.example.Greeter`.
pub(crate) fn package_of(interface: &str) -> &str {
    interface.rsplit_once('.').map_or("", |(package, _)| package)
}

/// A Java exception a provider answered with, where the method's return type
/// has no place for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct JavaException {
    /// The exception's Java class, e.g. `org.example.OrderRejected`.
    pub(crate) class: String,
    /// Its `detailMessage`, if it has one.
    pub(crate) message: Option<String>,
}

impl fmt::Display for JavaException {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.message {
            Some(message) => write!(f, "{}: {message}", self.class),
            None => f.write_str(&self.class),
        }
    }
}

/// Why a reply could not be read.
#[derive(Debug)]
pub(crate) enum ReplyError {
    /// The provider threw an exception the return type cannot hold.
    Exception(JavaException),
    /// The bytes are not a reply of this type.
    Codec(String),
}

// ---------------------------------------------------------------- arguments

/// Writes the argument tuple `args` as consecutive values.
pub(crate) fn encode_args<A: Serialize + ?Sized>(args: &A, package: &str, buf: &mut BytesMut) -> Result<(), String> {
    let mut encoder = Encoder::with_package(buf.writer(), package);
    args.serialize(ArgsWriter { enc: &mut encoder })
        .map_err(|e| e.to_string())
}

/// Reads the argument tuple `A` from consecutive values, all of `bytes`.
pub(crate) fn decode_args<A: DeserializeOwned>(bytes: &[u8]) -> Result<A, String> {
    let mut decoder = Decoder::new(bytes);
    let args = A::deserialize(ArgsReader { dec: &mut decoder }).map_err(|e| e.to_string())?;
    if !decoder.is_at_end() {
        return Err(format!(
            "{} bytes after the last argument",
            bytes.len() - decoder.position()
        ));
    }
    Ok(args)
}

/// How many values a descriptor list such as `Ljava/lang/String;J[I` names, or
/// why it is malformed.
pub(crate) fn count_descriptors(list: &str) -> Result<usize, String> {
    let bytes = list.as_bytes();
    let (mut i, mut count) = (0, 0);
    while i < bytes.len() {
        match bytes[i] {
            b'[' => {
                i += 1;
                continue;
            }
            b'Z' | b'B' | b'S' | b'I' | b'J' | b'F' | b'D' | b'C' | b'V' => i += 1,
            b'L' => match list[i..].find(';') {
                Some(end) => i += end + 1,
                None => return Err(format!("parameter types `{list}`: `L` at {i} without its `;`")),
            },
            other => {
                return Err(format!(
                    "parameter types `{list}`: unexpected `{}` at {i}",
                    other as char
                ));
            }
        }
        count += 1;
    }
    if bytes.last() == Some(&b'[') {
        return Err(format!("parameter types `{list}` end with `[`"));
    }
    Ok(count)
}

struct ArgsWriter<'a, W: std::io::Write> {
    enc: &'a mut Encoder<W>,
}

struct ArgsTuple<'a, W: std::io::Write> {
    enc: &'a mut Encoder<W>,
}

impl<W: std::io::Write> ser::SerializeTuple for ArgsTuple<'_, W> {
    type Ok = ();
    type Error = rpc_hessian::Error;
    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Self::Error> {
        self.enc.write(value)
    }
    fn end(self) -> Result<(), Self::Error> {
        Ok(())
    }
}

fn not_a_tuple() -> rpc_hessian::Error {
    rpc_hessian::Error::Unsupported("arguments that are not a tuple".into())
}

macro_rules! refuse_scalars {
    ($($name:ident($($t:ty),*)),* $(,)?) => {
        $(fn $name(self, $(_: $t),*) -> Result<(), rpc_hessian::Error> { Err(not_a_tuple()) })*
    };
}

impl<'a, W: std::io::Write> ser::Serializer for ArgsWriter<'a, W> {
    type Ok = ();
    type Error = rpc_hessian::Error;
    type SerializeSeq = Impossible<(), rpc_hessian::Error>;
    type SerializeTuple = ArgsTuple<'a, W>;
    type SerializeTupleStruct = Impossible<(), rpc_hessian::Error>;
    type SerializeTupleVariant = Impossible<(), rpc_hessian::Error>;
    type SerializeMap = Impossible<(), rpc_hessian::Error>;
    type SerializeStruct = Impossible<(), rpc_hessian::Error>;
    type SerializeStructVariant = Impossible<(), rpc_hessian::Error>;

    fn serialize_tuple(self, _len: usize) -> Result<ArgsTuple<'a, W>, Self::Error> {
        Ok(ArgsTuple { enc: self.enc })
    }

    refuse_scalars!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_char(char),
        serialize_str(&str),
        serialize_bytes(&[u8]),
        serialize_none(),
        serialize_unit(),
        serialize_unit_struct(&'static str),
        serialize_unit_variant(&'static str, u32, &'static str)
    );

    fn serialize_some<T: ?Sized + Serialize>(self, _: &T) -> Result<(), Self::Error> {
        Err(not_a_tuple())
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(self, _: &'static str, _: &T) -> Result<(), Self::Error> {
        Err(not_a_tuple())
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), Self::Error> {
        Err(not_a_tuple())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Self::Error> {
        Err(not_a_tuple())
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeTupleStruct, Self::Error> {
        Err(not_a_tuple())
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Self::Error> {
        Err(not_a_tuple())
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Self::Error> {
        Err(not_a_tuple())
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, Self::Error> {
        Err(not_a_tuple())
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Self::Error> {
        Err(not_a_tuple())
    }
}

struct ArgsReader<'a, 'de> {
    dec: &'a mut Decoder<'de>,
}

struct ArgsSeq<'a, 'de> {
    dec: &'a mut Decoder<'de>,
    left: usize,
}

impl<'de> de::SeqAccess<'de> for ArgsSeq<'_, 'de> {
    type Error = rpc_hessian::Error;
    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, Self::Error> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        if self.dec.is_at_end() {
            return Err(rpc_hessian::Error::Truncated {
                offset: self.dec.position(),
                expected: "another argument",
            });
        }
        seed.deserialize(&mut *self.dec).map(Some)
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

impl<'de> de::Deserializer<'de> for ArgsReader<'_, 'de> {
    type Error = rpc_hessian::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
        Err(rpc_hessian::Error::Message("arguments are read as a tuple".into()))
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_seq(ArgsSeq {
            dec: self.dec,
            left: len,
        })
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option
        unit unit_struct newtype_struct seq tuple_struct map struct enum identifier ignored_any
    }
}

// ---------------------------------------------------------------- replies

/// What a reply value is, as far as the flag goes.
enum Shape {
    /// `()`, `None`: flag null.
    Null,
    /// A `Result`: `Ok` or `Err` decides.
    Result,
    /// Anything else: flag value.
    Value,
}

/// Writes a reply: the flag, then the value or exception.
pub(crate) fn encode_reply<R: Serialize + ?Sized>(reply: &R, package: &str, buf: &mut BytesMut) -> Result<(), String> {
    let mut encoder = Encoder::with_package(buf.writer(), package);
    write_reply(reply, &mut encoder).map_err(|e| e.to_string())
}

fn write_reply<R: Serialize + ?Sized, W: std::io::Write>(
    reply: &R,
    enc: &mut Encoder<W>,
) -> Result<(), rpc_hessian::Error> {
    match reply.serialize(ShapeProbe) {
        Ok(Shape::Null) => enc
            .get_mut()
            .write_all(&[COMPACT_INT_ZERO + FLAG_NULL])
            .map_err(Into::into),
        Ok(Shape::Result) => reply.serialize(ResultWriter { enc }),
        Ok(Shape::Value) | Err(_) => {
            enc.get_mut().write_all(&[COMPACT_INT_ZERO + FLAG_VALUE])?;
            enc.write(reply)
        }
    }
}

/// The probe's way of saying "a value" from inside compound types.
#[derive(Debug)]
struct Plain;

impl fmt::Display for Plain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a plain value")
    }
}

impl std::error::Error for Plain {}

impl ser::Error for Plain {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Plain
    }
}

/// Finds a reply's [`Shape`] without writing anything.
struct ShapeProbe;

macro_rules! plain_values {
    ($($name:ident($($t:ty),*)),* $(,)?) => {
        $(fn $name(self, $(_: $t),*) -> Result<Shape, Plain> { Ok(Shape::Value) })*
    };
}

impl ser::Serializer for ShapeProbe {
    type Ok = Shape;
    type Error = Plain;
    type SerializeSeq = Impossible<Shape, Plain>;
    type SerializeTuple = Impossible<Shape, Plain>;
    type SerializeTupleStruct = Impossible<Shape, Plain>;
    type SerializeTupleVariant = Impossible<Shape, Plain>;
    type SerializeMap = Impossible<Shape, Plain>;
    type SerializeStruct = Impossible<Shape, Plain>;
    type SerializeStructVariant = Impossible<Shape, Plain>;

    plain_values!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_char(char),
        serialize_str(&str),
        serialize_bytes(&[u8]),
        serialize_unit_variant(&'static str, u32, &'static str)
    );

    fn serialize_none(self) -> Result<Shape, Plain> {
        Ok(Shape::Null)
    }
    fn serialize_unit(self) -> Result<Shape, Plain> {
        Ok(Shape::Null)
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<Shape, Plain> {
        Ok(Shape::Null)
    }
    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result<Shape, Plain> {
        value.serialize(self)
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(self, _: &'static str, value: &T) -> Result<Shape, Plain> {
        match value.serialize(self) {
            Ok(Shape::Null) => Ok(Shape::Null),
            _ => Ok(Shape::Value),
        }
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        name: &'static str,
        _: u32,
        variant: &'static str,
        _: &T,
    ) -> Result<Shape, Plain> {
        Ok(if name == "Result" && (variant == "Ok" || variant == "Err") {
            Shape::Result
        } else {
            Shape::Value
        })
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Plain> {
        Err(Plain)
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Plain> {
        Err(Plain)
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeTupleStruct, Plain> {
        Err(Plain)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Plain> {
        Err(Plain)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Plain> {
        Err(Plain)
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, Plain> {
        Err(Plain)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Plain> {
        Err(Plain)
    }
}

/// Writes a `Result` reply: `Ok` as a value reply, `Err` as an exception.
struct ResultWriter<'a, W: std::io::Write> {
    enc: &'a mut Encoder<W>,
}

fn not_a_result() -> rpc_hessian::Error {
    rpc_hessian::Error::Unsupported("a reply that is not a Result".into())
}

macro_rules! refuse_non_results {
    ($($name:ident($($t:ty),*)),* $(,)?) => {
        $(fn $name(self, $(_: $t),*) -> Result<(), rpc_hessian::Error> { Err(not_a_result()) })*
    };
}

impl<W: std::io::Write> ser::Serializer for ResultWriter<'_, W> {
    type Ok = ();
    type Error = rpc_hessian::Error;
    type SerializeSeq = Impossible<(), rpc_hessian::Error>;
    type SerializeTuple = Impossible<(), rpc_hessian::Error>;
    type SerializeTupleStruct = Impossible<(), rpc_hessian::Error>;
    type SerializeTupleVariant = Impossible<(), rpc_hessian::Error>;
    type SerializeMap = Impossible<(), rpc_hessian::Error>;
    type SerializeStruct = Impossible<(), rpc_hessian::Error>;
    type SerializeStructVariant = Impossible<(), rpc_hessian::Error>;

    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Self::Error> {
        if variant == "Ok" {
            write_reply(value, self.enc)
        } else {
            self.enc.get_mut().write_all(&[COMPACT_INT_ZERO + FLAG_EXCEPTION])?;
            self.enc.write(value)
        }
    }

    refuse_non_results!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_char(char),
        serialize_str(&str),
        serialize_bytes(&[u8]),
        serialize_none(),
        serialize_unit(),
        serialize_unit_struct(&'static str),
        serialize_unit_variant(&'static str, u32, &'static str)
    );

    fn serialize_some<T: ?Sized + Serialize>(self, _: &T) -> Result<(), Self::Error> {
        Err(not_a_result())
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(self, _: &'static str, _: &T) -> Result<(), Self::Error> {
        Err(not_a_result())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Self::Error> {
        Err(not_a_result())
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Self::Error> {
        Err(not_a_result())
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeTupleStruct, Self::Error> {
        Err(not_a_result())
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Self::Error> {
        Err(not_a_result())
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Self::Error> {
        Err(not_a_result())
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, Self::Error> {
        Err(not_a_result())
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Self::Error> {
        Err(not_a_result())
    }
}

/// The flag of a reply body and where its value starts, or why it has none.
pub(crate) fn reply_flag(body: &[u8]) -> Result<(u8, usize), String> {
    let mut decoder = Decoder::new(body);
    let flag: i32 = decoder.read().map_err(|e| format!("cannot read the reply flag: {e}"))?;
    match u8::try_from(flag) {
        Ok(flag @ 0..=5) => Ok((flag, decoder.position())),
        _ => Err(format!("unknown reply flag {flag} (Dubbo's are 0 to 5)")),
    }
}

/// Reads a reply of type `R` from a reply body (flag, value or exception,
/// attachments: these are left unread).
pub(crate) fn decode_reply<R: DeserializeOwned>(body: &[u8]) -> Result<R, ReplyError> {
    let (flag, start) = reply_flag(body).map_err(ReplyError::Codec)?;
    let rest = &body[start..];
    match flag % WITH_ATTACHMENTS {
        FLAG_NULL => {
            let mut decoder = Decoder::new(b"N");
            R::deserialize(ReplyReader {
                dec: &mut decoder,
                exception: None,
            })
            .map_err(codec)
        }
        FLAG_VALUE => {
            let mut decoder = Decoder::new(rest);
            R::deserialize(ReplyReader {
                dec: &mut decoder,
                exception: None,
            })
            .map_err(codec)
        }
        _ => {
            let exception = read_exception(rest).map_err(ReplyError::Codec)?;
            let mut decoder = Decoder::new(rest);
            let reader = ReplyReader {
                dec: &mut decoder,
                exception: Some(&exception),
            };
            match R::deserialize(reader) {
                Ok(value) => Ok(value),
                Err(_) => Err(ReplyError::Exception(exception)),
            }
        }
    }
}

fn codec(e: rpc_hessian::Error) -> ReplyError {
    ReplyError::Codec(e.to_string())
}

/// The class and message of the exception object at the start of `bytes`.
pub(crate) fn read_exception(bytes: &[u8]) -> Result<JavaException, String> {
    let value: Value = Decoder::new(bytes)
        .read()
        .map_err(|e| format!("cannot read the exception: {e}"))?;
    let message = value.field("detailMessage").and_then(Value::as_str).map(str::to_owned);
    let class = match value {
        Value::Object { class, .. } => class,
        Value::String(text) => {
            return Ok(JavaException {
                class: "java.lang.String".into(),
                message: Some(text),
            });
        }
        other => format!("(not an object: {other:?})"),
    };
    Ok(JavaException { class, message })
}

/// Reads a reply value; a `Result` is `Ok(value)`, or with an exception
/// `Err(the exception as E)` when its class is `E`'s.
struct ReplyReader<'a, 'de> {
    dec: &'a mut Decoder<'de>,
    /// The exception the reply holds, if it holds one.
    exception: Option<&'a JavaException>,
}

macro_rules! forward {
    ($($method:ident($($arg:ident: $t:ty),*)),* $(,)?) => {
        $(fn $method<V: Visitor<'de>>(self, $($arg: $t,)* visitor: V) -> Result<V::Value, Self::Error> {
            if self.exception.is_some() {
                return Err(de::Error::custom("an exception where a value was expected"));
            }
            de::Deserializer::$method(&mut *self.dec, $($arg,)* visitor)
        })*
    };
}

impl<'de> de::Deserializer<'de> for ReplyReader<'_, 'de> {
    type Error = rpc_hessian::Error;

    forward!(deserialize_any(), deserialize_bool(), deserialize_i8(), deserialize_i16(), deserialize_i32(),
        deserialize_i64(), deserialize_u8(), deserialize_u16(), deserialize_u32(), deserialize_u64(),
        deserialize_f32(), deserialize_f64(), deserialize_char(), deserialize_str(), deserialize_string(),
        deserialize_bytes(), deserialize_byte_buf(), deserialize_option(), deserialize_unit(),
        deserialize_unit_struct(name: &'static str), deserialize_newtype_struct(name: &'static str),
        deserialize_seq(), deserialize_tuple(len: usize),
        deserialize_tuple_struct(name: &'static str, len: usize), deserialize_map(),
        deserialize_struct(name: &'static str, fields: &'static [&'static str]),
        deserialize_identifier(), deserialize_ignored_any());

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        if name == "Result" && variants == ["Ok", "Err"] {
            return visitor.visit_enum(ResultAccess(self));
        }
        if self.exception.is_some() {
            return Err(de::Error::custom("an exception where a value was expected"));
        }
        de::Deserializer::deserialize_enum(&mut *self.dec, name, variants, visitor)
    }
}

struct ResultAccess<'a, 'de>(ReplyReader<'a, 'de>);

impl<'a, 'de> de::EnumAccess<'de> for ResultAccess<'a, 'de> {
    type Error = rpc_hessian::Error;
    type Variant = Self;
    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<(S::Value, Self), Self::Error> {
        let variant = if self.0.exception.is_some() { 1u32 } else { 0u32 };
        let value = seed.deserialize(de::value::U32Deserializer::<rpc_hessian::Error>::new(variant))?;
        Ok((value, self))
    }
}

impl<'de> de::VariantAccess<'de> for ResultAccess<'_, 'de> {
    type Error = rpc_hessian::Error;
    fn unit_variant(self) -> Result<(), Self::Error> {
        Err(de::Error::custom("Result variants carry a value"))
    }
    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, Self::Error> {
        match self.0.exception {
            None => seed.deserialize(&mut *self.0.dec),
            Some(exception) => seed.deserialize(ExceptionReader {
                dec: self.0.dec,
                exception,
            }),
        }
    }
    fn tuple_variant<V: Visitor<'de>>(self, _: usize, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("Result variants carry one value"))
    }
    fn struct_variant<V: Visitor<'de>>(self, _: &'static [&'static str], _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("Result variants carry one value"))
    }
}

/// Reads the error type `E` of a `Result` from a Java exception: a struct or
/// enum only when the exception's class is the type's Java class (its serde
/// name, dotted or as the class's simple name), a string as `class: message`.
struct ExceptionReader<'a, 'de> {
    dec: &'a mut Decoder<'de>,
    exception: &'a JavaException,
}

impl ExceptionReader<'_, '_> {
    fn is_class(&self, name: &str) -> bool {
        let class = self.exception.class.as_str();
        class == name || (!name.contains('.') && class.rsplit('.').next() == Some(name))
    }

    fn mismatch(&self, name: &str) -> rpc_hessian::Error {
        de::Error::custom(format!("exception {} is not a {name}", self.exception.class))
    }
}

impl<'de> de::Deserializer<'de> for ExceptionReader<'_, 'de> {
    type Error = rpc_hessian::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
        Err(self.mismatch("value of this type"))
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_string(self.exception.to_string())
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_string(self.exception.to_string())
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        if !self.is_class(name) {
            return Err(self.mismatch(name));
        }
        de::Deserializer::deserialize_struct(&mut *self.dec, name, fields, visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        if name.starts_with('\0') {
            // rpc_hessian::Value asking for the detailed form: any exception.
            return de::Deserializer::deserialize_newtype_struct(&mut *self.dec, name, visitor);
        }
        Err(self.mismatch(name))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char bytes byte_buf option
        unit unit_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Order {
        item: String,
        quantity: i32,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct OrderRejected {
        #[serde(rename = "detailMessage")]
        message: String,
    }

    fn args_round_trip<A: Serialize + DeserializeOwned + PartialEq + fmt::Debug>(args: A) -> BytesMut {
        let mut buf = BytesMut::new();
        encode_args(&args, "org.example", &mut buf).unwrap();
        assert_eq!(decode_args::<A>(&buf).unwrap(), args);
        buf
    }

    #[test]
    fn arguments_are_consecutive_values() {
        let buf = args_round_trip(("world".to_string(),));
        assert_eq!(&buf[..], b"\x05world");
        let buf = args_round_trip((10i64, true));
        assert_eq!(&buf[..], b"\xeaT");
        assert!(args_round_trip([(); 0]).is_empty());
        let buf = args_round_trip((
            Order {
                item: "tea".into(),
                quantity: 2,
            },
            Order {
                item: "x".into(),
                quantity: 1,
            },
        ));
        // One class definition, two instances.
        assert_eq!(buf.iter().filter(|&&b| b == b'C').count(), 1);
        assert!(buf.windows(17).any(|w| w == b"org.example.Order"));
    }

    #[test]
    fn bad_arguments_are_errors() {
        assert!(decode_args::<(String,)>(b"").unwrap_err().contains("argument"));
        assert!(
            decode_args::<(String,)>(b"\x05worldT")
                .unwrap_err()
                .contains("after the last argument")
        );
        assert!(decode_args::<(i32,)>(b"\x05world").is_err());
        assert!(decode_args::<(String,)>(b"\x30\xff").is_err());
    }

    fn reply<R: Serialize>(reply: &R) -> BytesMut {
        let mut buf = BytesMut::new();
        encode_reply(reply, "org.example", &mut buf).unwrap();
        buf
    }

    #[test]
    fn replies_carry_dubbos_flags() {
        assert_eq!(&reply(&"hi")[..], b"\x91\x02hi");
        assert_eq!(&reply(&())[..], b"\x92");
        assert_eq!(&reply(&None::<String>)[..], b"\x92");
        assert_eq!(&reply(&Some("x"))[..], b"\x91\x01x");
        assert_eq!(&reply(&Ok::<_, OrderRejected>(7))[..], b"\x91\x97");
        assert_eq!(&reply(&Ok::<(), OrderRejected>(()))[..], b"\x92");
        let err = reply(&Err::<i32, _>(OrderRejected { message: "no".into() }));
        assert_eq!(err[0], 0x90);
        assert!(err.windows(25).any(|w| w == b"org.example.OrderRejected"));

        assert_eq!(decode_reply::<String>(&reply(&"hi")).unwrap(), "hi");
        assert_eq!(decode_reply::<()>(&reply(&())).unwrap(), ());
        assert_eq!(decode_reply::<Option<String>>(b"\x92").unwrap(), None);
        assert_eq!(decode_reply::<Result<i32, OrderRejected>>(b"\x91\x97").unwrap(), Ok(7));
        assert_eq!(
            decode_reply::<Result<i32, OrderRejected>>(&err).unwrap(),
            Err(OrderRejected { message: "no".into() })
        );
        assert_eq!(
            decode_reply::<Result<i32, String>>(&err).unwrap(),
            Err("org.example.OrderRejected: no".to_string())
        );
        match decode_reply::<i32>(&err) {
            Err(ReplyError::Exception(e)) => assert_eq!(e.to_string(), "org.example.OrderRejected: no"),
            other => panic!("{other:?}"),
        }
        // With attachments after the value (flags 3-5).
        assert_eq!(decode_reply::<String>(b"\x94\x02hiH\x05dubbo\x052.0.2Z").unwrap(), "hi");
        assert_eq!(decode_reply::<Option<i32>>(b"\x95H\x05dubbo\x052.0.2Z").unwrap(), None);
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct OtherError {
        #[serde(rename = "detailMessage")]
        message: String,
    }

    #[test]
    fn an_exception_of_another_class_is_not_the_error_type() {
        let err = reply(&Err::<i32, _>(OtherError { message: "boom".into() }));
        match decode_reply::<Result<i32, OrderRejected>>(&err) {
            Err(ReplyError::Exception(e)) => {
                assert_eq!(e.class, "org.example.OtherError");
                assert_eq!(e.message.as_deref(), Some("boom"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_error_enum_with_data_has_no_java_form() {
        #[derive(Serialize)]
        enum Bad {
            Data(u32),
        }
        let mut buf = BytesMut::new();
        let error = encode_reply(&Err::<i32, _>(Bad::Data(1)), "org.example", &mut buf).unwrap_err();
        assert!(error.contains("Data"), "{error}");
    }

    #[test]
    fn bad_replies_are_errors() {
        assert!(matches!(decode_reply::<String>(b""), Err(ReplyError::Codec(_))));
        assert!(
            matches!(decode_reply::<String>(b"\x9f"), Err(ReplyError::Codec(m)) if m.contains("unknown reply flag"))
        );
        assert!(matches!(
            decode_reply::<String>(b"\x91\x05ab"),
            Err(ReplyError::Codec(_))
        ));
        assert!(matches!(decode_reply::<String>(b"\x90"), Err(ReplyError::Codec(_))));
    }

    #[test]
    fn descriptors_are_counted() {
        assert_eq!(count_descriptors("").unwrap(), 0);
        assert_eq!(
            count_descriptors("Ljava/lang/String;J[I[[Lorg/example/Order;").unwrap(),
            4
        );
        assert!(count_descriptors("Ljava/lang/String").is_err());
        assert!(count_descriptors("Q").is_err());
        assert!(count_descriptors("J[").is_err());
    }
}

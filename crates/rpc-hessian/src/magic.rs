//! The private conventions between [`Value`](crate::Value), [`Date`](crate::Date) and
//! this crate's encoder and decoder: newtype-struct names and map keys no Rust program
//! uses, which carry what serde's data model has no place for (a date, the Java type
//! of a list or map, the class of an object).

use std::io;

use serde::ser::{self, Impossible, Serialize};

use crate::error::Error;
use crate::ser::Encoder;

/// Newtype name of a [`Date`](crate::Date) (wrapping the millis).
pub(crate) const DATE: &str = "\0hessian.Date";
/// Newtype name of a typed list: wraps the tuple `(type, items)`.
pub(crate) const LIST: &str = "\0hessian.List";
/// Newtype name of a typed map: wraps the tuple `(type, entries)`.
pub(crate) const MAP: &str = "\0hessian.Map";
/// Newtype name of an object: wraps the tuple `(class, field names, field values)`.
pub(crate) const OBJECT: &str = "\0hessian.Object";
/// Newtype name through which [`Value`](crate::Value) asks the decoder for the
/// detailed form of the next value: lists then start with a marker element
/// (`LIST` or `LIST:type`), maps and objects with a marker entry (`MAP` -> type or
/// unit, `OBJECT` -> class), and a date is a map with the one entry `DATE` -> millis.
pub(crate) const VALUE: &str = "\0hessian.Value";

/// What [`Capture`] found.
#[derive(Debug)]
pub(crate) enum Captured {
    Long(i64),
    Str(String),
    Strs(Vec<String>),
    Struct(Vec<&'static str>),
}

/// A serializer that only records an `i64`, a string, a sequence of strings, or the
/// field names of a struct (without serializing the fields); anything else is refused
/// with an empty message. As the probe (`probe: true`, run on every value written) it
/// records only struct field names and stops at anything else at once.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Capture {
    probe: bool,
}

pub(crate) const CAPTURE: Capture = Capture { probe: false };

fn stop() -> Error {
    Error::Message(String::new())
}

macro_rules! refuse {
    ($ok:ty; $($name:ident($($arg:ident: $t:ty),*)),* $(,)?) => {
        $(fn $name(self, $(_: $t),*) -> Result<$ok, Error> { Err(stop()) })*
    };
}

macro_rules! refuse_generic {
    ($ok:ty) => {
        fn serialize_some<T: ?Sized + Serialize>(self, _: &T) -> Result<$ok, Error> {
            Err(stop())
        }
        fn serialize_newtype_struct<T: ?Sized + Serialize>(self, _: &'static str, _: &T) -> Result<$ok, Error> {
            Err(stop())
        }
        fn serialize_newtype_variant<T: ?Sized + Serialize>(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: &T,
        ) -> Result<$ok, Error> {
            Err(stop())
        }
        fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Impossible<$ok, Error>, Error> {
            Err(stop())
        }
        fn serialize_tuple_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> Result<Impossible<$ok, Error>, Error> {
            Err(stop())
        }
        fn serialize_map(self, _: Option<usize>) -> Result<Impossible<$ok, Error>, Error> {
            Err(stop())
        }
        fn serialize_struct_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> Result<Impossible<$ok, Error>, Error> {
            Err(stop())
        }
        refuse!($ok; serialize_bool(a: bool), serialize_i8(a: i8), serialize_i16(a: i16),
            serialize_i32(a: i32), serialize_u8(a: u8), serialize_u16(a: u16), serialize_u32(a: u32),
            serialize_u64(a: u64), serialize_f32(a: f32), serialize_f64(a: f64), serialize_char(a: char),
            serialize_bytes(a: &[u8]), serialize_none(), serialize_unit(),
            serialize_unit_struct(a: &'static str),
            serialize_unit_variant(a: &'static str, b: u32, c: &'static str));
    };
}

impl ser::Serializer for Capture {
    type Ok = Captured;
    type Error = Error;
    type SerializeSeq = CaptureSeq;
    type SerializeTuple = Impossible<Captured, Error>;
    type SerializeTupleStruct = Impossible<Captured, Error>;
    type SerializeTupleVariant = Impossible<Captured, Error>;
    type SerializeMap = Impossible<Captured, Error>;
    type SerializeStruct = CaptureStruct;
    type SerializeStructVariant = Impossible<Captured, Error>;

    fn serialize_i64(self, v: i64) -> Result<Captured, Error> {
        if self.probe {
            return Err(stop());
        }
        Ok(Captured::Long(v))
    }
    fn serialize_str(self, v: &str) -> Result<Captured, Error> {
        if self.probe {
            return Err(stop());
        }
        Ok(Captured::Str(v.to_owned()))
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<CaptureSeq, Error> {
        if self.probe {
            return Err(stop());
        }
        Ok(CaptureSeq(Vec::with_capacity(len.unwrap_or(0).min(64))))
    }
    fn serialize_tuple(self, _: usize) -> Result<Impossible<Captured, Error>, Error> {
        Err(stop())
    }
    fn serialize_struct(self, _: &'static str, len: usize) -> Result<CaptureStruct, Error> {
        Ok(CaptureStruct(Vec::with_capacity(len.min(256))))
    }
    refuse_generic!(Captured);
}

#[derive(Debug)]
pub(crate) struct CaptureSeq(Vec<String>);

impl ser::SerializeSeq for CaptureSeq {
    type Ok = Captured;
    type Error = Error;
    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Error> {
        match value.serialize(CAPTURE)? {
            Captured::Str(s) => {
                self.0.push(s);
                Ok(())
            }
            _ => Err(Error::Unsupported("an object field name that is not a string".into())),
        }
    }
    fn end(self) -> Result<Captured, Error> {
        Ok(Captured::Strs(self.0))
    }
}

#[derive(Debug)]
pub(crate) struct CaptureStruct(Vec<&'static str>);

impl ser::SerializeStruct for CaptureStruct {
    type Ok = Captured;
    type Error = Error;
    fn serialize_field<T: ?Sized + Serialize>(&mut self, key: &'static str, _: &T) -> Result<(), Error> {
        self.0.push(key);
        Ok(())
    }
    fn end(self) -> Result<Captured, Error> {
        Ok(Captured::Struct(self.0))
    }
}

/// The field names of `value` if it is a struct.
pub(crate) struct Probe;

impl Probe {
    pub(crate) fn fields<T: ?Sized + Serialize>(value: &T) -> Option<Vec<&'static str>> {
        match value.serialize(Capture { probe: true }) {
            Ok(Captured::Struct(fields)) => Some(fields),
            _ => None,
        }
    }
}

/// Serializes the tuple wrapped by a `LIST`, `MAP` or `OBJECT` newtype: captures the
/// type (and field names), then lets the encoder write the items with that header.
pub(crate) struct HeaderCapture<'a, W: io::Write> {
    pub(crate) kind: &'static str,
    pub(crate) enc: &'a mut Encoder<W>,
}

pub(crate) struct HeaderTuple<'a, W: io::Write> {
    kind: &'static str,
    enc: &'a mut Encoder<W>,
    index: usize,
    name: String,
    fields: Vec<String>,
}

impl<'a, W: io::Write> ser::Serializer for HeaderCapture<'a, W> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Impossible<(), Error>;
    type SerializeTuple = HeaderTuple<'a, W>;
    type SerializeTupleStruct = Impossible<(), Error>;
    type SerializeTupleVariant = Impossible<(), Error>;
    type SerializeMap = Impossible<(), Error>;
    type SerializeStruct = Impossible<(), Error>;
    type SerializeStructVariant = Impossible<(), Error>;

    fn serialize_tuple(self, _: usize) -> Result<HeaderTuple<'a, W>, Error> {
        Ok(HeaderTuple {
            kind: self.kind,
            enc: self.enc,
            index: 0,
            name: String::new(),
            fields: Vec::new(),
        })
    }
    fn serialize_i64(self, _: i64) -> Result<(), Error> {
        Err(stop())
    }
    fn serialize_str(self, _: &str) -> Result<(), Error> {
        Err(stop())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Impossible<(), Error>, Error> {
        Err(stop())
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Impossible<(), Error>, Error> {
        Err(stop())
    }
    refuse_generic!(());
}

impl<W: io::Write> ser::SerializeTuple for HeaderTuple<'_, W> {
    type Ok = ();
    type Error = Error;
    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Error> {
        let last = if self.kind == OBJECT { 2 } else { 1 };
        if self.index == last {
            let name = std::mem::take(&mut self.name);
            self.enc.expect_typed(self.kind, name, &self.fields)?;
            self.enc.encode_value(value)?;
        } else {
            match (self.index, value.serialize(CAPTURE)) {
                (0, Ok(Captured::Str(name))) => self.name = name,
                (1, Ok(Captured::Strs(fields))) => self.fields = fields,
                _ => return Err(Error::Unsupported("a malformed typed list, map or object".into())),
            }
        }
        self.index += 1;
        Ok(())
    }
    fn end(self) -> Result<(), Error> {
        Ok(())
    }
}

//! Writing Hessian 2.0: the [`Encoder`] (a serde `Serializer`).

use std::io;

use serde::ser::{self, Serialize};

use crate::error::Error;
use crate::magic;

/// Deepest nesting of lists, maps and objects the encoder writes and the decoder reads
/// (a back-reference being read counts as a level too). Deeper input is an error, not
/// a stack overflow: at this limit reading or writing fits in 1 MiB of stack even in a
/// debug build (a tokio worker thread has 2 MiB). Java object graphs nested deeper
/// (e.g. a long linked list of objects) are refused.
pub const MAX_DEPTH: usize = 128;

/// Longest string or binary chunk, in UTF-16 units or bytes (what Caucho's Hessian writes).
const CHUNK: usize = 0x8000;

/// What the next `serialize_seq`/`serialize_map` writes instead of its usual header
/// (set by the magic newtypes of [`Value`](crate::Value)).
#[derive(Debug)]
enum Pending {
    None,
    /// A list with this Java type (`[int`, `java.util.List`, ...).
    ListType(String),
    /// A map with this Java type.
    MapType(String),
    /// The field values of an object whose header is already written: no header, no end.
    Bare(usize),
}

/// Writes values as Hessian 2.0, one after another, into one message.
///
/// All values written through one `Encoder` share the class-definition and type tables,
/// as the Java peer's `Hessian2Input` expects when it reads consecutive values of one
/// message (the `dubbo` protocol writes version, path, method, parameter types, arguments
/// and attachments as consecutive values): a struct's class definition is written the
/// first time the struct's Java class (with the same field list) appears and referred
/// to by index afterwards.
///
/// Struct and enum names become Java class names: a name containing `.` is used as is
/// (`#[serde(rename = "org.example.Order")]`); otherwise the package given to
/// [`Encoder::with_package`] is prefixed (`Order` -> `org.example.Order`); with no package
/// the bare name is used. See the crate documentation for the whole type mapping.
///
/// The encoder writes no back-references (Rust values are trees), so equal values are
/// written in full each time.
#[derive(Debug)]
pub struct Encoder<W: io::Write> {
    out: W,
    package: Option<String>,
    /// Class definitions written so far: Java class name and field names, by index.
    classes: Vec<(String, Vec<String>)>,
    /// Java type names written so far (typed lists and maps), by index.
    types: Vec<String>,
    pending: Pending,
    /// The field names of the struct about to be serialized, found by [`probe_struct`].
    next_fields: Option<Vec<&'static str>>,
    depth: usize,
}

impl<W: io::Write> Encoder<W> {
    /// An encoder writing into `out`, with no default Java package: struct `Order`
    /// becomes Java class `Order` unless renamed with a dotted name.
    pub fn new(out: W) -> Self {
        Encoder {
            out,
            package: None,
            classes: Vec::new(),
            types: Vec::new(),
            pending: Pending::None,
            next_fields: None,
            depth: 0,
        }
    }

    /// An encoder whose undotted struct and enum names are prefixed with `package`
    /// (`Order` -> `org.example.Order`); dotted names are kept as they are.
    pub fn with_package(out: W, package: &str) -> Self {
        let mut encoder = Encoder::new(out);
        let package = package.trim_end_matches('.');
        if !package.is_empty() {
            encoder.package = Some(package.to_owned());
        }
        encoder
    }

    /// Writes one value; the next call writes the next value of the same message.
    ///
    /// On error the message written so far is incomplete and must be discarded.
    pub fn write<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Error> {
        self.encode(value)
    }

    /// The writer, e.g. the `Vec<u8>` holding the message.
    pub fn into_inner(self) -> W {
        self.out
    }

    /// A mutable reference to the writer.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }

    fn encode<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Error> {
        self.next_fields = probe_struct(value);
        value.serialize(&mut *self)
    }

    fn java_name(&self, name: &str) -> String {
        match &self.package {
            Some(package) if !name.contains('.') => format!("{package}.{name}"),
            _ => name.to_owned(),
        }
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.out.write_all(bytes).map_err(Error::Io)
    }

    fn enter(&mut self, what: &str) -> Result<(), Error> {
        if self.depth >= MAX_DEPTH {
            return Err(Error::Unsupported(format!(
                "{what}: nesting deeper than {MAX_DEPTH} levels"
            )));
        }
        self.depth += 1;
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    fn take_pending(&mut self) -> Pending {
        std::mem::replace(&mut self.pending, Pending::None)
    }

    fn write_int(&mut self, v: i32) -> Result<(), Error> {
        match v {
            -16..=47 => self.put(&[(0x90 + v) as u8]),
            -2048..=2047 => self.put(&[(0xc8 + (v >> 8)) as u8, v as u8]),
            -262_144..=262_143 => self.put(&[(0xd4 + (v >> 16)) as u8, (v >> 8) as u8, v as u8]),
            _ => {
                self.put(b"I")?;
                self.put(&v.to_be_bytes())
            }
        }
    }

    fn write_long(&mut self, v: i64) -> Result<(), Error> {
        match v {
            -8..=15 => self.put(&[(0xe0 + v) as u8]),
            -2048..=2047 => self.put(&[(0xf8 + (v >> 8)) as u8, v as u8]),
            -262_144..=262_143 => self.put(&[(0x3c + (v >> 16)) as u8, (v >> 8) as u8, v as u8]),
            _ => match i32::try_from(v) {
                Ok(int) => {
                    self.put(&[0x59])?;
                    self.put(&int.to_be_bytes())
                }
                Err(_) => {
                    self.put(b"L")?;
                    self.put(&v.to_be_bytes())
                }
            },
        }
    }

    fn write_double(&mut self, v: f64) -> Result<(), Error> {
        // The compact forms only where they read back exactly (and never for -0.0,
        // which they would turn into +0.0).
        if !(v == 0.0 && v.is_sign_negative()) {
            let int = v as i32;
            if f64::from(int) == v {
                match int {
                    0 => return self.put(&[0x5b]),
                    1 => return self.put(&[0x5c]),
                    -0x80..=0x7f => return self.put(&[0x5d, int as u8]),
                    -0x8000..=0x7fff => {
                        self.put(&[0x5e])?;
                        return self.put(&(int as i16).to_be_bytes());
                    }
                    _ => {}
                }
            }
            let mills = (v * 1000.0) as i32;
            if 0.001 * f64::from(mills) == v {
                self.put(&[0x5f])?;
                return self.put(&mills.to_be_bytes());
            }
        }
        self.put(b"D")?;
        self.put(&v.to_bits().to_be_bytes())
    }

    fn write_date(&mut self, millis: i64) -> Result<(), Error> {
        if millis % 60_000 == 0 {
            if let Ok(minutes) = i32::try_from(millis / 60_000) {
                self.put(&[0x4b])?;
                return self.put(&minutes.to_be_bytes());
            }
        }
        self.put(&[0x4a])?;
        self.put(&millis.to_be_bytes())
    }

    /// A string: its length counts UTF-16 units, and a character outside the BMP is
    /// written as its two surrogates, three bytes each, as Java does. Strings longer
    /// than 0x8000 units are split into chunks that never split a surrogate pair.
    fn write_string(&mut self, s: &str) -> Result<(), Error> {
        let mut units: usize = s.chars().map(char::len_utf16).sum();
        let mut rest = s;
        while units > CHUNK {
            let mut len = 0;
            let mut end = 0;
            for (i, c) in rest.char_indices() {
                if len + c.len_utf16() > CHUNK {
                    break;
                }
                len += c.len_utf16();
                end = i + c.len_utf8();
            }
            self.put(&[b'R', (len >> 8) as u8, len as u8])?;
            self.put_utf16_as_utf8(&rest[..end])?;
            rest = &rest[end..];
            units -= len;
        }
        match units {
            0..=0x1f => self.put(&[units as u8])?,
            0x20..=0x3ff => self.put(&[0x30 + (units >> 8) as u8, units as u8])?,
            _ => self.put(&[b'S', (units >> 8) as u8, units as u8])?,
        }
        self.put_utf16_as_utf8(rest)
    }

    fn put_utf16_as_utf8(&mut self, s: &str) -> Result<(), Error> {
        if s.chars().all(|c| c.len_utf16() == 1) {
            return self.put(s.as_bytes());
        }
        let mut buf = Vec::with_capacity(s.len() + 8);
        let mut pair = [0u16; 2];
        for c in s.chars() {
            if c.len_utf16() == 1 {
                let mut b = [0u8; 4];
                buf.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            } else {
                for unit in c.encode_utf16(&mut pair).iter() {
                    let u = u32::from(*unit);
                    buf.extend_from_slice(&[
                        0xe0 | (u >> 12) as u8,
                        0x80 | ((u >> 6) & 0x3f) as u8,
                        0x80 | (u & 0x3f) as u8,
                    ]);
                }
            }
        }
        self.put(&buf)
    }

    fn write_binary(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let mut rest = bytes;
        while rest.len() > CHUNK {
            let (chunk, tail) = rest.split_at(CHUNK);
            self.put(&[b'A', (CHUNK >> 8) as u8, CHUNK as u8])?;
            self.put(chunk)?;
            rest = tail;
        }
        let len = rest.len();
        match len {
            0..=0x0f => self.put(&[0x20 + len as u8])?,
            0x10..=0x3ff => self.put(&[0x34 + (len >> 8) as u8, len as u8])?,
            _ => self.put(&[b'B', (len >> 8) as u8, len as u8])?,
        }
        self.put(rest)
    }

    fn write_type(&mut self, name: &str) -> Result<(), Error> {
        match self.types.iter().position(|t| t == name) {
            Some(index) => self.write_int(index as i32),
            None => {
                self.types.push(name.to_owned());
                self.write_string(name)
            }
        }
    }

    /// Writes the class definition (if this class with these fields is new in the
    /// message) and the object header referring to it.
    fn write_object_header<S: AsRef<str>>(&mut self, class: &str, fields: &[S]) -> Result<(), Error> {
        let known = self.classes.iter().position(|(name, names)| {
            name == class && names.len() == fields.len() && names.iter().zip(fields).all(|(a, b)| a == b.as_ref())
        });
        let index = match known {
            Some(index) => index,
            None => {
                self.put(b"C")?;
                self.write_string(class)?;
                self.write_int(fields.len() as i32)?;
                for field in fields {
                    self.write_string(field.as_ref())?;
                }
                self.classes
                    .push((class.to_owned(), fields.iter().map(|f| f.as_ref().to_owned()).collect()));
                self.classes.len() - 1
            }
        };
        if index <= 0x0f {
            self.put(&[0x60 + index as u8])
        } else {
            self.put(b"O")?;
            self.write_int(index as i32)
        }
    }

    fn begin_list(&mut self, len: Option<usize>) -> Result<Compound<'_, W>, Error> {
        let pending = self.take_pending();
        if let Pending::Bare(expected) = pending {
            if len != Some(expected) {
                return Err(Error::Unsupported(format!(
                    "object: {expected} field names but {len:?} values"
                )));
            }
            self.enter("object")?;
            return Ok(Compound::new(self, Kind::Bare, len));
        }
        self.enter("list")?;
        let list_type = match pending {
            Pending::ListType(t) => Some(t),
            _ => None,
        };
        match (len, list_type) {
            (Some(n), None) if n <= 7 => self.put(&[0x78 + n as u8])?,
            (Some(n), None) => {
                self.put(&[0x58])?;
                self.write_int(list_len(n)?)?;
            }
            (Some(n), Some(t)) if n <= 7 => {
                self.put(&[0x70 + n as u8])?;
                self.write_type(&t)?;
            }
            (Some(n), Some(t)) => {
                self.put(b"V")?;
                self.write_type(&t)?;
                self.write_int(list_len(n)?)?;
            }
            (None, None) => self.put(&[0x57])?,
            (None, Some(t)) => {
                self.put(&[0x55])?;
                self.write_type(&t)?;
            }
        }
        let kind = if len.is_some() { Kind::FixedList } else { Kind::OpenList };
        Ok(Compound::new(self, kind, len))
    }
}

fn list_len(n: usize) -> Result<i32, Error> {
    i32::try_from(n).map_err(|_| Error::Unsupported(format!("a list of {n} elements (Java's limit is 2^31-1)")))
}

/// Writes `value` as one Hessian 2.0 message of its own (no default Java package).
pub fn to_vec<T: ?Sized + Serialize>(value: &T) -> Result<Vec<u8>, Error> {
    let mut encoder = Encoder::new(Vec::new());
    encoder.write(value)?;
    Ok(encoder.into_inner())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    FixedList,
    OpenList,
    Map,
    Object,
    /// Object field values written after a header written elsewhere.
    Bare,
}

/// The state of a list, map or object being written.
#[derive(Debug)]
pub struct Compound<'a, W: io::Write> {
    enc: &'a mut Encoder<W>,
    kind: Kind,
    expected: Option<usize>,
    count: usize,
    /// For objects: the field names the probe found, checked against the real pass.
    fields: Vec<&'static str>,
    name: &'static str,
}

impl<'a, W: io::Write> Compound<'a, W> {
    fn new(enc: &'a mut Encoder<W>, kind: Kind, expected: Option<usize>) -> Self {
        Compound {
            enc,
            kind,
            expected,
            count: 0,
            fields: Vec::new(),
            name: "",
        }
    }

    fn element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Error> {
        self.count += 1;
        if let Some(expected) = self.expected {
            if self.count > expected {
                return Err(Error::Unsupported(format!(
                    "a sequence that announced {expected} elements but yielded more"
                )));
            }
        }
        self.enc.encode(value)
    }

    fn finish(self) -> Result<(), Error> {
        match self.kind {
            Kind::OpenList | Kind::Map => self.enc.put(b"Z")?,
            Kind::Bare | Kind::FixedList | Kind::Object => {
                if let Some(expected) = self.expected {
                    if self.count != expected {
                        return Err(Error::Unsupported(format!(
                            "{}: announced {expected} elements but yielded {}",
                            if self.kind == Kind::Object {
                                self.name
                            } else {
                                "a sequence"
                            },
                            self.count
                        )));
                    }
                }
            }
        }
        self.enc.leave();
        Ok(())
    }
}

impl<W: io::Write> ser::SerializeSeq for Compound<'_, W> {
    type Ok = ();
    type Error = Error;
    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }
    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

impl<W: io::Write> ser::SerializeTuple for Compound<'_, W> {
    type Ok = ();
    type Error = Error;
    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }
    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

impl<W: io::Write> ser::SerializeTupleStruct for Compound<'_, W> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }
    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

impl<W: io::Write> ser::SerializeMap for Compound<'_, W> {
    type Ok = ();
    type Error = Error;
    fn serialize_key<T: ?Sized + Serialize>(&mut self, key: &T) -> Result<(), Error> {
        self.enc.encode(key)
    }
    fn serialize_value<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Error> {
        self.enc.encode(value)
    }
    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

impl<W: io::Write> ser::SerializeStruct for Compound<'_, W> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: ?Sized + Serialize>(&mut self, key: &'static str, value: &T) -> Result<(), Error> {
        if self.fields.get(self.count) != Some(&key) {
            return Err(Error::Unsupported(format!(
                "struct {}: field `{key}` was not announced in this position (a Serialize \
                 implementation that writes different fields on two passes)",
                self.name
            )));
        }
        self.count += 1;
        self.enc.encode(value)
    }
    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

/// Data-carrying enum variants are refused before anything is written.
#[derive(Debug)]
pub enum Refused {}

impl ser::SerializeTupleVariant for Refused {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: ?Sized + Serialize>(&mut self, _: &T) -> Result<(), Error> {
        match *self {}
    }
    fn end(self) -> Result<(), Error> {
        match self {}
    }
}

impl ser::SerializeStructVariant for Refused {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: ?Sized + Serialize>(&mut self, _: &'static str, _: &T) -> Result<(), Error> {
        match *self {}
    }
    fn end(self) -> Result<(), Error> {
        match self {}
    }
}

fn refuse_variant(name: &str, variant: &str) -> Error {
    Error::Unsupported(format!(
        "enum {name}: variant {variant} carries data; only unit variants map to Java enums"
    ))
}

impl<'a, W: io::Write> ser::Serializer for &'a mut Encoder<W> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Compound<'a, W>;
    type SerializeTuple = Compound<'a, W>;
    type SerializeTupleStruct = Compound<'a, W>;
    type SerializeTupleVariant = Refused;
    type SerializeMap = Compound<'a, W>;
    type SerializeStruct = Compound<'a, W>;
    type SerializeStructVariant = Refused;

    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.put(if v { b"T" } else { b"F" })
    }
    fn serialize_i8(self, v: i8) -> Result<(), Error> {
        self.write_int(v.into())
    }
    fn serialize_i16(self, v: i16) -> Result<(), Error> {
        self.write_int(v.into())
    }
    fn serialize_i32(self, v: i32) -> Result<(), Error> {
        self.write_int(v)
    }
    fn serialize_i64(self, v: i64) -> Result<(), Error> {
        self.write_long(v)
    }
    fn serialize_u8(self, v: u8) -> Result<(), Error> {
        self.write_int(v.into())
    }
    fn serialize_u16(self, v: u16) -> Result<(), Error> {
        self.write_int(v.into())
    }
    fn serialize_u32(self, v: u32) -> Result<(), Error> {
        match i32::try_from(v) {
            Ok(int) => self.write_int(int),
            Err(_) => self.write_long(v.into()),
        }
    }
    fn serialize_u64(self, v: u64) -> Result<(), Error> {
        match i64::try_from(v) {
            Ok(long) => self.write_long(long),
            Err(_) => Err(Error::Unsupported(format!(
                "u64 {v}: above i64::MAX, Java's long cannot hold it"
            ))),
        }
    }
    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        self.write_double(v.into())
    }
    fn serialize_f64(self, v: f64) -> Result<(), Error> {
        self.write_double(v)
    }
    fn serialize_char(self, v: char) -> Result<(), Error> {
        let mut buf = [0u8; 4];
        self.write_string(v.encode_utf8(&mut buf))
    }
    fn serialize_str(self, v: &str) -> Result<(), Error> {
        self.write_string(v)
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Error> {
        self.write_binary(v)
    }
    fn serialize_none(self) -> Result<(), Error> {
        self.put(b"N")
    }
    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result<(), Error> {
        self.encode(value)
    }
    fn serialize_unit(self) -> Result<(), Error> {
        self.put(b"N")
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Error> {
        self.put(b"N")
    }
    fn serialize_unit_variant(self, name: &'static str, _index: u32, variant: &'static str) -> Result<(), Error> {
        // A Java enum: an object of the enum's class with the one field `name`.
        let class = self.java_name(name);
        self.write_object_header(&class, &["name"])?;
        self.write_string(variant)
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(self, name: &'static str, value: &T) -> Result<(), Error> {
        match name {
            magic::DATE => match value.serialize(magic::CAPTURE)? {
                magic::Captured::Long(millis) => self.write_date(millis),
                _ => Err(Error::Unsupported("a date that is not an i64".into())),
            },
            magic::LIST | magic::MAP | magic::OBJECT => value.serialize(magic::HeaderCapture { kind: name, enc: self }),
            _ => self.encode(value),
        }
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        name: &'static str,
        _index: u32,
        variant: &'static str,
        _value: &T,
    ) -> Result<(), Error> {
        Err(refuse_variant(name, variant))
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Compound<'a, W>, Error> {
        self.begin_list(len)
    }
    fn serialize_tuple(self, len: usize) -> Result<Compound<'a, W>, Error> {
        self.begin_list(Some(len))
    }
    fn serialize_tuple_struct(self, _name: &'static str, len: usize) -> Result<Compound<'a, W>, Error> {
        self.begin_list(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Refused, Error> {
        Err(refuse_variant(name, variant))
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Compound<'a, W>, Error> {
        let pending = self.take_pending();
        self.enter("map")?;
        match pending {
            Pending::MapType(t) => {
                self.put(b"M")?;
                self.write_type(&t)?;
            }
            _ => self.put(b"H")?,
        }
        Ok(Compound::new(self, Kind::Map, None))
    }
    fn serialize_struct(self, name: &'static str, _len: usize) -> Result<Compound<'a, W>, Error> {
        self.take_pending();
        let fields = self.next_fields.take().ok_or_else(|| {
            Error::Unsupported(format!("struct {name}: its fields could not be listed before writing"))
        })?;
        self.enter(name)?;
        let class = self.java_name(name);
        self.write_object_header(&class, &fields)?;
        let expected = Some(fields.len());
        let mut compound = Compound::new(self, Kind::Object, expected);
        compound.fields = fields;
        compound.name = name;
        Ok(compound)
    }
    fn serialize_struct_variant(
        self,
        name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Refused, Error> {
        Err(refuse_variant(name, variant))
    }
}

impl<W: io::Write> Encoder<W> {
    /// Called by [`magic::HeaderCapture`] once it knows the type (and field names) of a
    /// typed list, typed map or object of a [`Value`](crate::Value): the next sequence
    /// or map serialized uses them.
    pub(crate) fn expect_typed(&mut self, kind: &'static str, name: String, fields: &[String]) -> Result<(), Error> {
        match kind {
            magic::LIST => self.pending = Pending::ListType(name),
            magic::MAP => self.pending = Pending::MapType(name),
            _ => {
                self.write_object_header(&name, fields)?;
                self.pending = Pending::Bare(fields.len());
            }
        }
        Ok(())
    }

    pub(crate) fn encode_value<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Error> {
        self.encode(value)?;
        if !matches!(self.pending, Pending::None) {
            self.pending = Pending::None;
            return Err(Error::Unsupported(
                "a typed list, map or object without its items".into(),
            ));
        }
        Ok(())
    }
}

/// Finds the field names of `value` if it serializes as a struct, without serializing
/// the fields: the class definition must be written before the field values (which may
/// hold class definitions of their own, numbered in order of appearance).
fn probe_struct<T: ?Sized + Serialize>(value: &T) -> Option<Vec<&'static str>> {
    magic::Probe::fields(value)
}

//! Reading Hessian 2.0: the [`Decoder`] (a serde `Deserializer`).

use std::sync::Arc;

use serde::de::value::{I64Deserializer, SeqDeserializer, StrDeserializer, StringDeserializer, UnitDeserializer};
use serde::de::{self, Deserialize, DeserializeSeed, IgnoredAny, Visitor};

use crate::error::Error;
use crate::magic;
use crate::ser::MAX_DEPTH;

/// Replays of back-references may read at most this many times the input's length
/// (plus [`MIN_EXPANSION`]) in total: a few bytes of references to references must
/// not expand into gigabytes of values.
pub const MAX_EXPANSION_FACTOR: usize = 8;
/// The replay budget of small inputs, in bytes.
pub const MIN_EXPANSION: usize = 256 * 1024;

#[derive(Debug)]
struct ClassDef {
    name: Arc<str>,
    fields: Arc<[String]>,
}

/// A list, map or object that a back-reference (`0x51`) may point to.
#[derive(Debug, Clone, Copy)]
struct Slot {
    /// Where the value starts in the input.
    offset: usize,
    /// Being read (or replayed) now: a reference to it is a cycle.
    active: bool,
}

/// Reads Hessian 2.0 values, one after another, from one message.
///
/// Class definitions, type names and back-reference targets are shared by all values
/// read through one `Decoder`, as the Java writer's `Hessian2Output` shares them
/// between the consecutive values of one message.
///
/// A back-reference to a list, map or object is resolved by reading the referenced
/// value again from where it starts in the input (so it may be read as another Rust
/// type than the first time). A reference to a value that is still being read (a
/// cycle) reads as `None`/null. Limits: nesting depth [`MAX_DEPTH`]; lengths are
/// checked against the remaining input before anything is allocated; replays of
/// references read at most [`MAX_EXPANSION_FACTOR`] times the input (at least
/// [`MIN_EXPANSION`] bytes) in total. Every violation is an [`Error`] naming the byte
/// offset. After an error the decoder's position is unspecified: discard it.
#[derive(Debug)]
pub struct Decoder<'de> {
    input: &'de [u8],
    pos: usize,
    classes: Vec<ClassDef>,
    types: Vec<String>,
    refs: Vec<Slot>,
    /// Inside the replay of a back-reference: the tables are complete, nothing is added.
    replaying: usize,
    depth: usize,
    expanded: usize,
    expansion_limit: usize,
}

/// Reads the one value that `input` holds (trailing bytes are an error).
pub fn from_slice<'de, T: Deserialize<'de>>(input: &'de [u8]) -> Result<T, Error> {
    let mut decoder = Decoder::new(input);
    let value = decoder.read()?;
    if decoder.pos < input.len() {
        return Err(Error::invalid(
            decoder.pos,
            format!("{} bytes after the value", input.len() - decoder.pos),
        ));
    }
    Ok(value)
}

impl<'de> Decoder<'de> {
    /// A decoder reading `input` from its start.
    pub fn new(input: &'de [u8]) -> Self {
        Decoder {
            input,
            pos: 0,
            classes: Vec::new(),
            types: Vec::new(),
            refs: Vec::new(),
            replaying: 0,
            depth: 0,
            expanded: 0,
            expansion_limit: input
                .len()
                .saturating_mul(MAX_EXPANSION_FACTOR)
                .saturating_add(MIN_EXPANSION),
        }
    }

    /// Reads the next value as a `T`.
    pub fn read<T: Deserialize<'de>>(&mut self) -> Result<T, Error> {
        let start = self.pos;
        T::deserialize(&mut *self).map_err(|e| e.at(start))
    }

    /// The offset of the next byte to read.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Whether every byte of the input has been read.
    pub fn is_at_end(&self) -> bool {
        self.pos >= self.input.len()
    }

    fn remaining(&self) -> usize {
        self.input.len().saturating_sub(self.pos)
    }

    fn peek(&self, expected: &'static str) -> Result<u8, Error> {
        self.input.get(self.pos).copied().ok_or(Error::Truncated {
            offset: self.pos,
            expected,
        })
    }

    fn byte(&mut self, expected: &'static str) -> Result<u8, Error> {
        let b = self.peek(expected)?;
        self.pos += 1;
        Ok(b)
    }

    fn take(&mut self, n: usize, expected: &'static str) -> Result<&'de [u8], Error> {
        if n > self.remaining() {
            return Err(Error::Truncated {
                offset: self.input.len(),
                expected,
            });
        }
        let bytes = &self.input[self.pos..self.pos + n];
        self.pos += n;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self, expected: &'static str) -> Result<[u8; N], Error> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, expected)?);
        Ok(out)
    }

    fn u16(&mut self, expected: &'static str) -> Result<usize, Error> {
        Ok(u16::from_be_bytes(self.array(expected)?).into())
    }

    fn enter(&mut self) -> Result<(), Error> {
        if self.depth >= MAX_DEPTH {
            return Err(Error::invalid(
                self.pos,
                format!("values nested deeper than {MAX_DEPTH} levels"),
            ));
        }
        self.depth += 1;
        Ok(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    /// Reads the class definitions (`C`) before a value and returns the value's tag
    /// (not consumed) and offset.
    fn begin_value(&mut self) -> Result<(u8, usize), Error> {
        loop {
            let tag = self.peek("a value")?;
            if tag != b'C' {
                return Ok((tag, self.pos));
            }
            self.read_class_def()?;
        }
    }

    fn read_class_def(&mut self) -> Result<(), Error> {
        let start = self.pos;
        self.pos += 1;
        let name = self.read_string_value("a class name")?;
        let count = self.read_len("the field count of a class definition")?;
        let mut fields = Vec::with_capacity(count);
        for _ in 0..count {
            fields.push(self.read_string_value("a field name")?);
        }
        if self.replaying == 0 {
            self.classes.push(ClassDef {
                name: name.into(),
                fields: fields.into(),
            });
        } else if !self.classes.iter().any(|c| *c.name == *name) {
            return Err(Error::invalid(start, "class definition unknown on replay"));
        }
        Ok(())
    }

    fn read_string_value(&mut self, expected: &'static str) -> Result<String, Error> {
        match self.peek(expected)? {
            0x00..=0x1f | 0x30..=0x33 | b'S' | b'R' => self.read_string(),
            tag => Err(Error::invalid(
                self.pos,
                format!("expected {expected} (a string), found tag 0x{tag:02x}"),
            )),
        }
    }

    /// Reads an int (any of its forms).
    fn read_int(&mut self, expected: &'static str) -> Result<i32, Error> {
        let start = self.pos;
        let tag = self.byte(expected)?;
        Ok(match tag {
            0x80..=0xbf => i32::from(tag) - 0x90,
            0xc0..=0xcf => ((i32::from(tag) - 0xc8) << 8) | i32::from(self.byte(expected)?),
            0xd0..=0xd7 => {
                let [b1, b2] = self.array(expected)?;
                ((i32::from(tag) - 0xd4) << 16) | (i32::from(b1) << 8) | i32::from(b2)
            }
            b'I' => i32::from_be_bytes(self.array(expected)?),
            _ => {
                return Err(Error::invalid(
                    start,
                    format!("expected {expected} (an int), found tag 0x{tag:02x}"),
                ));
            }
        })
    }

    /// Reads an int used as a count of items that each take at least one byte: it must
    /// not be negative nor exceed the remaining input.
    fn read_len(&mut self, what: &'static str) -> Result<usize, Error> {
        let start = self.pos;
        let n = self.read_int(what)?;
        let len = usize::try_from(n).map_err(|_| Error::invalid(start, format!("{what} is negative ({n})")))?;
        self.check_len(start, len, what)?;
        Ok(len)
    }

    fn check_len(&self, start: usize, len: usize, what: &str) -> Result<(), Error> {
        if len > self.remaining() {
            return Err(Error::invalid(
                start,
                format!("{what} claims {len} items but only {} bytes remain", self.remaining()),
            ));
        }
        Ok(())
    }

    /// Reads a string (all chunks). Lengths count UTF-16 units; a surrogate pair may be
    /// written as two 3-byte sequences (as Java does) or one 4-byte sequence.
    fn read_string(&mut self) -> Result<String, Error> {
        let mut out = String::new();
        let mut high: Option<(u32, usize)> = None;
        loop {
            let start = self.pos;
            let tag = self.byte("a string")?;
            let (len, last) = match tag {
                0x00..=0x1f => (usize::from(tag), true),
                0x30..=0x33 => (
                    (usize::from(tag - 0x30) << 8) | usize::from(self.byte("a string length")?),
                    true,
                ),
                b'S' => (self.u16("a string length")?, true),
                b'R' => (self.u16("a string length")?, false),
                _ => {
                    return Err(Error::invalid(
                        start,
                        format!("expected the next chunk of a string, found tag 0x{tag:02x}"),
                    ));
                }
            };
            self.check_len(start, len, "a string")?;
            out.reserve(len);
            let mut units = 0;
            while units < len {
                let at = self.pos;
                let b0 = u32::from(self.byte("a string character")?);
                let (code, n) = match b0 {
                    0x00..=0x7f => (b0, 1),
                    0xc0..=0xdf => (((b0 & 0x1f) << 6) | self.continuation(at)?, 1),
                    0xe0..=0xef => {
                        let c1 = self.continuation(at)?;
                        (((b0 & 0x0f) << 12) | (c1 << 6) | self.continuation(at)?, 1)
                    }
                    0xf0..=0xf4 => {
                        let c1 = self.continuation(at)?;
                        let c2 = self.continuation(at)?;
                        (((b0 & 0x07) << 18) | (c1 << 12) | (c2 << 6) | self.continuation(at)?, 2)
                    }
                    _ => {
                        return Err(Error::invalid(
                            at,
                            format!("invalid UTF-8 lead byte 0x{b0:02x} in a string"),
                        ));
                    }
                };
                units += n;
                match (code, high.take()) {
                    (0xd800..=0xdbff, None) => high = Some((code, at)),
                    (0xdc00..=0xdfff, Some((h, _))) => {
                        let c = 0x10000 + ((h - 0xd800) << 10) + (code - 0xdc00);
                        out.push(char::from_u32(c).ok_or_else(|| Error::invalid(at, "invalid surrogate pair"))?);
                    }
                    (_, Some((h, hat))) => {
                        return Err(Error::invalid(hat, format!("unpaired surrogate U+{h:04X} in a string")));
                    }
                    (0xdc00..=0xdfff, None) => {
                        return Err(Error::invalid(
                            at,
                            format!("unpaired surrogate U+{code:04X} in a string"),
                        ));
                    }
                    (_, None) => out.push(
                        char::from_u32(code)
                            .ok_or_else(|| Error::invalid(at, format!("invalid character U+{code:X} in a string")))?,
                    ),
                }
            }
            if last {
                if let Some((h, hat)) = high {
                    return Err(Error::invalid(hat, format!("unpaired surrogate U+{h:04X} in a string")));
                }
                return Ok(out);
            }
        }
    }

    /// A one-chunk string that is standard UTF-8 as it stands (no surrogates written
    /// as two 3-byte sequences, no overlong forms): borrowed from the input, for
    /// `&str` fields and to skip decoding character by character. `None` (position
    /// unchanged) sends everything else, errors included, to [`read_string`](Self::read_string).
    fn borrow_str(&mut self) -> Option<&'de str> {
        let input = self.input;
        let tag = *input.get(self.pos)?;
        let (len, data) = match tag {
            0x00..=0x1f => (usize::from(tag), self.pos + 1),
            0x30..=0x33 => (
                (usize::from(tag - 0x30) << 8) | usize::from(*input.get(self.pos + 1)?),
                self.pos + 2,
            ),
            b'S' => (
                usize::from(u16::from_be_bytes([
                    *input.get(self.pos + 1)?,
                    *input.get(self.pos + 2)?,
                ])),
                self.pos + 3,
            ),
            _ => return None,
        };
        let mut end = data;
        for _ in 0..len {
            end += match *input.get(end)? {
                0x00..=0x7f => 1,
                0xc2..=0xdf => 2,
                0xe0..=0xef => 3,
                _ => return None,
            };
        }
        let s = std::str::from_utf8(input.get(data..end)?).ok()?;
        self.pos = end;
        Some(s)
    }

    /// Binary data in one chunk, borrowed from the input (`None`: chunked or truncated).
    fn borrow_binary(&mut self) -> Option<&'de [u8]> {
        let input = self.input;
        let tag = *input.get(self.pos)?;
        let (len, data) = match tag {
            0x20..=0x2f => (usize::from(tag - 0x20), self.pos + 1),
            0x34..=0x37 => (
                (usize::from(tag - 0x34) << 8) | usize::from(*input.get(self.pos + 1)?),
                self.pos + 2,
            ),
            b'B' => (
                usize::from(u16::from_be_bytes([
                    *input.get(self.pos + 1)?,
                    *input.get(self.pos + 2)?,
                ])),
                self.pos + 3,
            ),
            _ => return None,
        };
        let bytes = input.get(data..data.checked_add(len)?)?;
        self.pos = data + len;
        Some(bytes)
    }

    fn continuation(&mut self, at: usize) -> Result<u32, Error> {
        let b = self.byte("a string character")?;
        if b & 0xc0 != 0x80 {
            return Err(Error::invalid(at, "invalid UTF-8 sequence in a string"));
        }
        Ok(u32::from(b & 0x3f))
    }

    fn read_binary(&mut self) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        loop {
            let start = self.pos;
            let tag = self.byte("binary data")?;
            let (len, last) = match tag {
                0x20..=0x2f => (usize::from(tag - 0x20), true),
                0x34..=0x37 => (
                    (usize::from(tag - 0x34) << 8) | usize::from(self.byte("a binary length")?),
                    true,
                ),
                b'B' => (self.u16("a binary length")?, true),
                b'A' => (self.u16("a binary length")?, false),
                _ => {
                    return Err(Error::invalid(
                        start,
                        format!("expected the next chunk of binary data, found tag 0x{tag:02x}"),
                    ));
                }
            };
            self.check_len(start, len, "binary data")?;
            out.extend_from_slice(self.take(len, "binary data")?);
            if last {
                return Ok(out);
            }
        }
    }

    /// The type of a typed list or map: a string (remembered) or the index of one.
    fn read_type(&mut self) -> Result<String, Error> {
        let start = self.pos;
        match self.peek("a type")? {
            0x00..=0x1f | 0x30..=0x33 | b'S' | b'R' => {
                let name = self.read_string()?;
                if self.replaying == 0 {
                    self.types.push(name.clone());
                }
                Ok(name)
            }
            _ => {
                let index = self.read_int("a type reference")?;
                usize::try_from(index)
                    .ok()
                    .and_then(|i| self.types.get(i))
                    .cloned()
                    .ok_or_else(|| {
                        Error::invalid(
                            start,
                            format!(
                                "type reference #{index}, but only {} types are defined",
                                self.types.len()
                            ),
                        )
                    })
            }
        }
    }

    /// Starts a list, map or object at `start`: it becomes a back-reference target.
    fn open(&mut self, start: usize) -> Result<Option<usize>, Error> {
        self.enter()?;
        if self.replaying == 0 {
            self.refs.push(Slot {
                offset: start,
                active: true,
            });
            return Ok(Some(self.refs.len() - 1));
        }
        let found = self.refs.binary_search_by_key(&start, |s| s.offset).ok();
        if let Some(i) = found {
            self.refs[i].active = true;
        }
        Ok(found)
    }

    fn close(&mut self, slot: Option<usize>) {
        if let Some(slot) = slot.and_then(|i| self.refs.get_mut(i)) {
            slot.active = false;
        }
        self.leave();
    }

    /// Reads the index of a back-reference (after its tag) and says whether it is a
    /// cycle (`None`) or where it points.
    fn read_ref(&mut self) -> Result<Option<usize>, Error> {
        let start = self.pos;
        self.pos += 1;
        let index = self.read_int("a reference index")?;
        let slot = usize::try_from(index)
            .ok()
            .and_then(|i| self.refs.get(i))
            .ok_or_else(|| {
                Error::invalid(
                    start,
                    format!(
                        "reference #{index}, but only {} values can be referred to so far",
                        self.refs.len()
                    ),
                )
            })?;
        Ok((!slot.active).then_some(index as usize))
    }

    fn replay<R>(&mut self, slot: usize, f: impl FnOnce(&mut Self) -> Result<R, Error>) -> Result<R, Error> {
        let resume = self.pos;
        let target = self.refs[slot].offset;
        self.enter()?;
        self.pos = target;
        self.replaying += 1;
        let result = f(self);
        self.replaying -= 1;
        self.expanded = self.expanded.saturating_add(self.pos.saturating_sub(target));
        self.pos = resume;
        self.leave();
        if self.expanded > self.expansion_limit {
            return Err(Error::invalid(
                resume,
                format!(
                    "back-references expand the input beyond {} bytes (limit {}x the input)",
                    self.expansion_limit, MAX_EXPANSION_FACTOR
                ),
            ));
        }
        result
    }

    fn skip(&mut self) -> Result<(), Error> {
        IgnoredAny::deserialize(&mut *self).map(|_| ())
    }

    fn object_header(&mut self, tag: u8, start: usize) -> Result<(Arc<str>, Arc<[String]>), Error> {
        self.pos += 1;
        let index = match tag {
            b'O' => {
                let i = self.read_int("a class definition index")?;
                usize::try_from(i).unwrap_or(usize::MAX)
            }
            _ => usize::from(tag - 0x60),
        };
        let def = self.classes.get(index).ok_or_else(|| {
            Error::invalid(
                start,
                format!(
                    "object of class definition #{index}, but only {} class definitions are known",
                    self.classes.len()
                ),
            )
        })?;
        Ok((def.name.clone(), def.fields.clone()))
    }

    /// The header of a list: its Java type and length (`None`: ends with `Z`).
    fn list_header(&mut self, tag: u8) -> Result<(Option<String>, Option<usize>), Error> {
        self.pos += 1;
        Ok(match tag {
            0x55 => (Some(self.read_type()?), None),
            b'V' => {
                let t = self.read_type()?;
                (Some(t), Some(self.read_len("a list")?))
            }
            0x57 => (None, None),
            0x58 => (None, Some(self.read_len("a list")?)),
            0x70..=0x77 => {
                let t = self.read_type()?;
                (Some(t), Some(usize::from(tag - 0x70)))
            }
            _ => (None, Some(usize::from(tag - 0x78))),
        })
    }

    /// Reads any value; `rich` asks for the marked-up form [`Value`](crate::Value) reads.
    fn any<V: Visitor<'de>>(&mut self, visitor: V, rich: bool) -> Result<V::Value, Error> {
        let (tag, start) = self.begin_value()?;
        self.any_at(tag, start, visitor, rich).map_err(|e| e.at(start))
    }

    fn any_at<V: Visitor<'de>>(&mut self, tag: u8, start: usize, visitor: V, rich: bool) -> Result<V::Value, Error> {
        match tag {
            0x55..=0x58 | 0x70..=0x7f => self.list(tag, start, visitor, rich),
            b'H' | b'M' => self.map(tag, start, visitor, rich),
            b'O' | 0x60..=0x6f => self.object(tag, start, visitor, rich),
            b'Q' => match self.read_ref()? {
                None => visitor.visit_unit(),
                Some(slot) => self.replay(slot, |d| {
                    let (tag, start) = d.begin_value()?;
                    d.any_at(tag, start, visitor, rich)
                }),
            },
            _ => self.scalar(tag, start, visitor, rich),
        }
    }

    // The compound readers are apart from `any_at` (and not inlined into it) so that
    // the frames on the recursive path stay small: nesting depth costs stack.
    #[inline(never)]
    fn list<V: Visitor<'de>>(&mut self, tag: u8, start: usize, visitor: V, rich: bool) -> Result<V::Value, Error> {
        let slot = self.open(start)?;
        let (list_type, len) = self.list_header(tag)?;
        let marker = rich.then(|| match &list_type {
            Some(t) => format!("{}:{t}", magic::LIST),
            None => magic::LIST.to_owned(),
        });
        let mut access = ListAccess {
            de: self,
            remaining: len,
            marker,
            done: false,
        };
        let value = visitor.visit_seq(&mut access)?;
        access.finish()?;
        self.close(slot);
        Ok(value)
    }

    #[inline(never)]
    fn map<V: Visitor<'de>>(&mut self, tag: u8, start: usize, visitor: V, rich: bool) -> Result<V::Value, Error> {
        let slot = self.open(start)?;
        self.pos += 1;
        let map_type = if tag == b'M' { Some(self.read_type()?) } else { None };
        let mut access = MapAccess {
            de: self,
            marker: if rich { Marker::Key(map_type) } else { Marker::Done },
            value_pending: false,
            done: false,
        };
        let value = visitor.visit_map(&mut access)?;
        access.finish()?;
        self.close(slot);
        Ok(value)
    }

    #[inline(never)]
    fn object<V: Visitor<'de>>(&mut self, tag: u8, start: usize, visitor: V, rich: bool) -> Result<V::Value, Error> {
        let slot = self.open(start)?;
        let (class, fields) = self.object_header(tag, start)?;
        let mut access = ObjectAccess {
            de: self,
            marker: if rich {
                Marker::Key(Some(class.to_string()))
            } else {
                Marker::Done
            },
            fields,
            index: 0,
            value_pending: false,
        };
        let value = visitor.visit_map(&mut access)?;
        access.finish()?;
        self.close(slot);
        Ok(value)
    }

    /// Reads a scalar (anything but a list, map, object or reference).
    #[inline(never)]
    fn scalar<V: Visitor<'de>>(&mut self, tag: u8, start: usize, visitor: V, rich: bool) -> Result<V::Value, Error> {
        match tag {
            b'N' => {
                self.pos += 1;
                visitor.visit_unit()
            }
            b'T' | b'F' => {
                self.pos += 1;
                visitor.visit_bool(tag == b'T')
            }
            0x80..=0xd7 | b'I' => visitor.visit_i32(self.read_int("an int")?),
            0xd8..=0xff | 0x38..=0x3f | 0x59 | b'L' => {
                self.pos += 1;
                let v = match tag {
                    0xd8..=0xef => i64::from(tag) - 0xe0,
                    0xf0..=0xff => ((i64::from(tag) - 0xf8) << 8) | i64::from(self.byte("a long")?),
                    0x38..=0x3f => {
                        let [b1, b2] = self.array("a long")?;
                        ((i64::from(tag) - 0x3c) << 16) | (i64::from(b1) << 8) | i64::from(b2)
                    }
                    0x59 => i32::from_be_bytes(self.array("a long")?).into(),
                    _ => i64::from_be_bytes(self.array("a long")?),
                };
                visitor.visit_i64(v)
            }
            0x5b..=0x5f | b'D' => {
                self.pos += 1;
                let v = match tag {
                    0x5b => 0.0,
                    0x5c => 1.0,
                    0x5d => f64::from(i8::from_be_bytes(self.array("a double")?)),
                    0x5e => f64::from(i16::from_be_bytes(self.array("a double")?)),
                    0x5f => 0.001 * f64::from(i32::from_be_bytes(self.array("a double")?)),
                    _ => f64::from_bits(u64::from_be_bytes(self.array("a double")?)),
                };
                visitor.visit_f64(v)
            }
            0x4a | 0x4b => {
                self.pos += 1;
                let millis = if tag == 0x4a {
                    i64::from_be_bytes(self.array("a date")?)
                } else {
                    i64::from(i32::from_be_bytes(self.array("a date")?)) * 60_000
                };
                if rich {
                    visitor.visit_map(DateAccess(Some(millis)))
                } else {
                    visitor.visit_i64(millis)
                }
            }
            0x00..=0x1f | 0x30..=0x33 | b'S' | b'R' => match self.borrow_str() {
                Some(s) => visitor.visit_borrowed_str(s),
                None => visitor.visit_string(self.read_string()?),
            },
            0x20..=0x2f | 0x34..=0x37 | b'B' | b'A' => match self.borrow_binary() {
                Some(b) => visitor.visit_borrowed_bytes(b),
                None => visitor.visit_byte_buf(self.read_binary()?),
            },
            b'Z' => Err(Error::invalid(
                start,
                "unexpected end marker 'Z' where a value should start",
            )),
            _ => Err(Error::invalid(start, format!("unknown tag 0x{tag:02x}"))),
        }
    }

    fn enum_value<V: Visitor<'de>>(&mut self, name: &'static str, visitor: V) -> Result<V::Value, Error> {
        let (tag, start) = self.begin_value()?;
        match tag {
            0x00..=0x1f | 0x30..=0x33 | b'S' | b'R' => {
                let variant = self.read_string()?;
                visitor.visit_enum(JavaEnum { name, variant })
            }
            b'O' | 0x60..=0x6f => {
                let slot = self.open(start)?;
                let (class, fields) = self.object_header(tag, start)?;
                let mut variant = None;
                for field in fields.iter() {
                    if field == "name" && variant.is_none() {
                        variant = Some(self.read_string_value("an enum constant name")?);
                    } else {
                        self.skip()?;
                    }
                }
                self.close(slot);
                let variant = variant.ok_or_else(|| {
                    Error::invalid(
                        start,
                        format!("enum {name}: object of class {class} has no `name` field"),
                    )
                })?;
                visitor.visit_enum(JavaEnum { name, variant })
            }
            b'Q' => match self.read_ref()? {
                None => Err(Error::invalid(start, format!("enum {name}: a cyclic reference"))),
                Some(slot) => self.replay(slot, |d| d.enum_value(name, visitor)),
            },
            _ => Err(Error::invalid(
                start,
                format!(
                    "enum {name}: expected a Java enum (an object with a `name` field) or a string, found tag 0x{tag:02x}"
                ),
            )),
        }
    }
}

/// What a list, map or object says first in the form [`Value`](crate::Value) reads.
#[derive(Debug)]
enum Marker {
    Key(Option<String>),
    Value(Option<String>),
    Done,
}

struct ListAccess<'a, 'de> {
    de: &'a mut Decoder<'de>,
    remaining: Option<usize>,
    marker: Option<String>,
    done: bool,
}

impl<'de> de::SeqAccess<'de> for ListAccess<'_, 'de> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, Error> {
        if let Some(marker) = self.marker.take() {
            return seed.deserialize(StringDeserializer::new(marker)).map(Some);
        }
        match self.remaining {
            Some(0) => return Ok(None),
            Some(ref mut n) => *n -= 1,
            None => {
                if self.done {
                    return Ok(None);
                }
                if self.de.peek("a list element or 'Z'")? == b'Z' {
                    self.de.pos += 1;
                    self.done = true;
                    return Ok(None);
                }
            }
        }
        seed.deserialize(&mut *self.de).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        self.remaining.map(|n| n.min(self.de.remaining()))
    }
}

impl ListAccess<'_, '_> {
    /// Reads what the visitor left: the elements must still be read (they may define
    /// classes, types and reference targets used later).
    fn finish(&mut self) -> Result<(), Error> {
        match self.remaining {
            Some(n) => {
                for _ in 0..n {
                    self.de.skip()?;
                }
            }
            None => {
                while !self.done {
                    if self.de.peek("a list element or 'Z'")? == b'Z' {
                        self.de.pos += 1;
                        self.done = true;
                    } else {
                        self.de.skip()?;
                    }
                }
            }
        }
        Ok(())
    }
}

struct MapAccess<'a, 'de> {
    de: &'a mut Decoder<'de>,
    marker: Marker,
    value_pending: bool,
    done: bool,
}

impl<'de> de::MapAccess<'de> for MapAccess<'_, 'de> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Error> {
        if let Marker::Key(t) = std::mem::replace(&mut self.marker, Marker::Done) {
            self.marker = Marker::Value(t);
            return seed.deserialize(StrDeserializer::new(magic::MAP)).map(Some);
        }
        if self.done {
            return Ok(None);
        }
        if self.de.peek("a map key or 'Z'")? == b'Z' {
            self.de.pos += 1;
            self.done = true;
            return Ok(None);
        }
        self.value_pending = true;
        seed.deserialize(&mut *self.de).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        match std::mem::replace(&mut self.marker, Marker::Done) {
            Marker::Value(Some(t)) => return seed.deserialize(StringDeserializer::new(t)),
            Marker::Value(None) => return seed.deserialize(UnitDeserializer::new()),
            _ => {}
        }
        self.value_pending = false;
        seed.deserialize(&mut *self.de)
    }
}

impl MapAccess<'_, '_> {
    fn finish(&mut self) -> Result<(), Error> {
        if self.value_pending {
            self.de.skip()?;
        }
        while !self.done {
            if self.de.peek("a map key or 'Z'")? == b'Z' {
                self.de.pos += 1;
                self.done = true;
            } else {
                self.de.skip()?;
                self.de.skip()?;
            }
        }
        Ok(())
    }
}

struct ObjectAccess<'a, 'de> {
    de: &'a mut Decoder<'de>,
    marker: Marker,
    fields: Arc<[String]>,
    index: usize,
    value_pending: bool,
}

impl<'de> de::MapAccess<'de> for ObjectAccess<'_, 'de> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Error> {
        if let Marker::Key(class) = std::mem::replace(&mut self.marker, Marker::Done) {
            self.marker = Marker::Value(class);
            return seed.deserialize(StrDeserializer::new(magic::OBJECT)).map(Some);
        }
        let Some(field) = self.fields.get(self.index) else {
            return Ok(None);
        };
        self.index += 1;
        self.value_pending = true;
        seed.deserialize(StrDeserializer::<Error>::new(field)).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        if let Marker::Value(class) = std::mem::replace(&mut self.marker, Marker::Done) {
            return seed.deserialize(StringDeserializer::new(class.unwrap_or_default()));
        }
        self.value_pending = false;
        seed.deserialize(&mut *self.de)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.fields.len() - self.index)
    }
}

impl ObjectAccess<'_, '_> {
    fn finish(&mut self) -> Result<(), Error> {
        if self.value_pending {
            self.de.skip()?;
        }
        while self.index < self.fields.len() {
            self.index += 1;
            self.de.skip()?;
        }
        Ok(())
    }
}

/// A date in the form [`Value`](crate::Value) reads: `{DATE: millis}`.
struct DateAccess(Option<i64>);

impl<'de> de::MapAccess<'de> for DateAccess {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Error> {
        match self.0 {
            Some(_) => seed.deserialize(StrDeserializer::new(magic::DATE)).map(Some),
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        seed.deserialize(I64Deserializer::new(self.0.take().unwrap_or_default()))
    }
}

/// A Java enum constant read as a unit variant of a Rust enum.
struct JavaEnum {
    name: &'static str,
    variant: String,
}

impl<'de> de::EnumAccess<'de> for JavaEnum {
    type Error = Error;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), Error> {
        let value = seed.deserialize(StrDeserializer::<Error>::new(&self.variant))?;
        Ok((value, self))
    }
}

impl JavaEnum {
    fn refuse(&self) -> Error {
        Error::Message(format!(
            "enum {}: variant {} carries data, but a Java enum constant carries none",
            self.name, self.variant
        ))
    }
}

impl<'de> de::VariantAccess<'de> for JavaEnum {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        Ok(())
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, _: T) -> Result<T::Value, Error> {
        Err(self.refuse())
    }
    fn tuple_variant<V: Visitor<'de>>(self, _: usize, _: V) -> Result<V::Value, Error> {
        Err(self.refuse())
    }
    fn struct_variant<V: Visitor<'de>>(self, _: &'static [&'static str], _: V) -> Result<V::Value, Error> {
        Err(self.refuse())
    }
}

/// The decoder asked for the marked-up form of the next value.
struct Rich<'a, 'de>(&'a mut Decoder<'de>);

impl<'de> de::Deserializer<'de> for Rich<'_, 'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.0.any(visitor, true)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum
        identifier ignored_any
    }
}

impl<'de> de::Deserializer<'de> for &mut Decoder<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.any(visitor, false)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let (tag, start) = self.begin_value()?;
        match tag {
            b'N' => {
                self.pos += 1;
                visitor.visit_none()
            }
            b'Q' => {
                let resume = self.pos;
                match self.read_ref()? {
                    None => visitor.visit_none(),
                    Some(_) => {
                        self.pos = resume;
                        visitor.visit_some(self).map_err(|e| e.at(start))
                    }
                }
            }
            _ => visitor.visit_some(self).map_err(|e| e.at(start)),
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let (tag, start) = self.begin_value()?;
        match tag {
            // `Vec<u8>` and other sequences of numbers accept Java's byte[].
            0x20..=0x2f | 0x34..=0x37 | b'B' | b'A' => {
                let bytes = self.read_binary()?;
                visitor
                    .visit_seq(SeqDeserializer::<_, Error>::new(bytes.into_iter()))
                    .map_err(|e| e.at(start))
            }
            _ => self.any(visitor, false),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, name: &'static str, visitor: V) -> Result<V::Value, Error> {
        if name == magic::VALUE {
            visitor.visit_newtype_struct(Rich(self))
        } else {
            visitor.visit_newtype_struct(self)
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let start = self.pos;
        self.enum_value(name, visitor).map_err(|e| e.at(start))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct tuple tuple_struct map struct identifier ignored_any
    }
}

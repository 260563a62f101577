//! Triple's Java form: how Java Dubbo 3 calls an interface-based service (one
//! without a protobuf IDL) over `tri`.
//!
//! The gRPC message of such a call is not the arguments themselves but a
//! protobuf `TripleRequestWrapper { string serializeType = 1; repeated bytes
//! args = 2; repeated string argTypes = 3; }`, each argument serialized on its
//! own (own Hessian class definitions and references), and the answer a
//! `TripleResponseWrapper { string serializeType = 1; bytes data = 2; string
//! type = 3; }`. With Hessian2 the serialize type on the wire is `hessian4`
//! (Dubbo's name for its Hessian2 inside the wrapper), `argTypes` are Java
//! class names (`java.lang.String`, `long`, `[Ljava.lang.String;`), and
//! `type` the Java class of the declared return type (Java's consumer reads
//! the answer as its own declared type, not by this name).
//!
//! A business exception travels as a response wrapper whose `data` is the
//! exception object, with the response *header* `tri-exception-code: 3`
//! (Dubbo's `RpcException.BIZ_EXCEPTION`) and `grpc-status: 0`: Java's
//! consumer then throws that exception to its caller.
//!
//! The two messages are encoded here by hand (four field kinds, no `prost`):
//! fields in Java's order, unknown fields of a known wire type skipped, a
//! length or varint that runs past the message an error.

use bytes::{BufMut, Bytes, BytesMut};
use rpc_hessian::{Decoder, Encoder, Value};

use crate::hessian2::{COMPACT_INT_ZERO, FLAG_EXCEPTION, FLAG_NULL, FLAG_VALUE, WITH_ATTACHMENTS};

/// The wrapper's name of Hessian2 (what Java's `hessian2` serialization writes
/// into `serializeType`).
pub const HESSIAN4: &str = "hessian4";

/// Value of the `tri-exception-code` header on a business exception: Dubbo's
/// `RpcException.BIZ_EXCEPTION`. Java's consumer takes any value but 0 to mean
/// "the message is an exception".
pub const BIZ_EXCEPTION: u32 = 3;

/// Header a Java provider sets on an answer whose message is an exception.
pub const EXCEPTION_CODE: &str = "tri-exception-code";

/// The protobuf `TripleRequestWrapper`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestWrapper {
    /// The serialization of `args`: `hessian4` for Hessian2.
    pub serialize_type: String,
    /// Each argument, serialized on its own.
    pub args: Vec<Bytes>,
    /// Each argument's Java class name (`Class.getName()`).
    pub arg_types: Vec<String>,
}

/// The protobuf `TripleResponseWrapper`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResponseWrapper {
    /// The serialization of `data`.
    pub serialize_type: String,
    /// The return value (or, with `tri-exception-code`, the exception).
    pub data: Bytes,
    /// The Java class name of the declared return type.
    pub r#type: String,
}

/// Why bytes are not a wrapper message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a Triple wrapper message: {0}")]
pub struct WrapperError(String);

impl RequestWrapper {
    /// The protobuf encoding, fields in the order Java writes them.
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::new();
        put_field(&mut out, 1, self.serialize_type.as_bytes());
        for arg in &self.args {
            put_field(&mut out, 2, arg);
        }
        for class in &self.arg_types {
            put_field(&mut out, 3, class.as_bytes());
        }
        out.freeze()
    }

    /// Reads a request wrapper (its `args` share `message`'s buffer).
    pub fn decode(message: &Bytes) -> Result<Self, WrapperError> {
        let mut wrapper = RequestWrapper::default();
        for field in Fields::new(message) {
            let (number, value) = field?;
            match number {
                1 => wrapper.serialize_type = utf8(&value, "serializeType")?,
                2 => wrapper.args.push(value),
                3 => wrapper.arg_types.push(utf8(&value, "argTypes")?),
                _ => {}
            }
        }
        Ok(wrapper)
    }
}

impl ResponseWrapper {
    /// The protobuf encoding, fields in the order Java writes them.
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::new();
        put_field(&mut out, 1, self.serialize_type.as_bytes());
        put_field(&mut out, 2, &self.data);
        put_field(&mut out, 3, self.r#type.as_bytes());
        out.freeze()
    }

    /// Reads a response wrapper (its `data` shares `message`'s buffer).
    pub fn decode(message: &Bytes) -> Result<Self, WrapperError> {
        let mut wrapper = ResponseWrapper::default();
        for field in Fields::new(message) {
            let (number, value) = field?;
            match number {
                1 => wrapper.serialize_type = utf8(&value, "serializeType")?,
                2 => wrapper.data = value,
                3 => wrapper.r#type = utf8(&value, "type")?,
                _ => {}
            }
        }
        Ok(wrapper)
    }
}

/// Whether a gRPC message looks like a request wrapper rather than one of the
/// serializations our `tri` reads bare: a JSON text never starts with
/// protobuf's tag of field 1 as bytes (`0x0a`, a line feed, only after
/// something else), and Java writes `serializeType` first.
pub(crate) fn looks_wrapped(message: &[u8]) -> bool {
    message.first() == Some(&0x0a)
}

/// Whether `serialize_type` names Hessian2 (`hessian4`, or Dubbo's SPI name `hessian2`).
pub(crate) fn is_hessian(serialize_type: &str) -> bool {
    serialize_type == HESSIAN4 || serialize_type == "hessian2"
}

fn utf8(value: &[u8], field: &str) -> Result<String, WrapperError> {
    std::str::from_utf8(value)
        .map(str::to_owned)
        .map_err(|_| WrapperError(format!("field {field} is not UTF-8")))
}

fn put_varint(out: &mut BytesMut, mut value: u64) {
    while value >= 0x80 {
        out.put_u8((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.put_u8(value as u8);
}

fn put_field(out: &mut BytesMut, number: u64, value: &[u8]) {
    put_varint(out, number << 3 | 2);
    put_varint(out, value.len() as u64);
    out.put_slice(value);
}

/// The length-delimited fields of a message, as (number, value); fields of
/// other wire types are skipped.
struct Fields<'a> {
    message: &'a Bytes,
    pos: usize,
}

impl<'a> Fields<'a> {
    fn new(message: &'a Bytes) -> Self {
        Fields { message, pos: 0 }
    }

    fn varint(&mut self) -> Result<u64, WrapperError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let Some(&byte) = self.message.get(self.pos) else {
                return Err(WrapperError(format!("varint truncated at byte {}", self.pos)));
            };
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(WrapperError(format!(
            "varint longer than 10 bytes before byte {}",
            self.pos
        )))
    }

    fn skip(&mut self, len: u64, what: &str) -> Result<usize, WrapperError> {
        let start = self.pos;
        let left = (self.message.len() - start) as u64;
        if len > left {
            return Err(WrapperError(format!(
                "{what} of {len} bytes at byte {start} runs past the end ({left} bytes left)"
            )));
        }
        self.pos += len as usize;
        Ok(start)
    }

    fn next_field(&mut self) -> Result<Option<(u64, Bytes)>, WrapperError> {
        while self.pos < self.message.len() {
            let at = self.pos;
            let tag = self.varint()?;
            let number = tag >> 3;
            if number == 0 {
                return Err(WrapperError(format!("field number 0 at byte {at}")));
            }
            match tag & 7 {
                0 => {
                    self.varint()?;
                }
                1 => {
                    self.skip(8, "a fixed64 field")?;
                }
                5 => {
                    self.skip(4, "a fixed32 field")?;
                }
                2 => {
                    let len = self.varint()?;
                    let start = self.skip(len, "a field")?;
                    return Ok(Some((number, self.message.slice(start..self.pos))));
                }
                other => {
                    return Err(WrapperError(format!(
                        "wire type {other} of field {number} at byte {at}"
                    )));
                }
            }
        }
        Ok(None)
    }
}

impl Iterator for Fields<'_> {
    type Item = Result<(u64, Bytes), WrapperError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.next_field() {
            Ok(Some(field)) => Some(Ok(field)),
            Ok(None) => None,
            Err(e) => {
                // One error ends the iteration.
                self.pos = self.message.len();
                Some(Err(e))
            }
        }
    }
}

/// The Java class names (`Class.getName()`) of a JVM descriptor list such as
/// `Ljava/lang/String;J[I`: `java.lang.String`, `long`, `[I`.
pub fn java_class_names(descriptors: &str) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    let mut rest = descriptors;
    while !rest.is_empty() {
        let dims = rest.bytes().take_while(|&b| b == b'[').count();
        let element = &rest[dims..];
        let (len, primitive) = match element.as_bytes().first() {
            Some(b'L') => match element.find(';') {
                Some(end) => (end + 1, None),
                None => return Err(format!("parameter types `{descriptors}`: `L` without its `;`")),
            },
            Some(&b) => {
                let name = match b {
                    b'Z' => "boolean",
                    b'B' => "byte",
                    b'S' => "short",
                    b'I' => "int",
                    b'J' => "long",
                    b'F' => "float",
                    b'D' => "double",
                    b'C' => "char",
                    other => {
                        return Err(format!(
                            "parameter types `{descriptors}`: unexpected `{}`",
                            char::from(other)
                        ));
                    }
                };
                (1, Some(name))
            }
            None => return Err(format!("parameter types `{descriptors}` end with `[`")),
        };
        let one = &rest[..dims + len];
        names.push(match (dims, primitive) {
            // An array's name is its descriptor with dots: `[Ljava.lang.String;`, `[I`.
            (0, Some(name)) => name.to_owned(),
            (0, None) => one[1..one.len() - 1].replace('/', "."),
            _ => one.replace('/', "."),
        });
        rest = &rest[dims + len..];
    }
    Ok(names)
}

/// The arguments of a wrapper, each its own Hessian message, as one stream of
/// consecutive values (what a handler reads with Hessian2). One argument is
/// already that; several are read and written again through one encoder, so
/// that their class definitions and references do not collide.
pub(crate) fn join_args(args: &[Bytes]) -> Result<Bytes, String> {
    match args {
        [] => Ok(Bytes::new()),
        [one] => Ok(one.clone()),
        many => {
            let mut encoder = Encoder::new(BytesMut::new().writer());
            for (index, arg) in many.iter().enumerate() {
                let value: Value =
                    rpc_hessian::from_slice(arg).map_err(|e| format!("cannot read argument {index}: {e}"))?;
                encoder
                    .write(&value)
                    .map_err(|e| format!("cannot carry argument {index} over: {e}"))?;
            }
            Ok(encoder.into_inner().into_inner().freeze())
        }
    }
}

/// The reverse of [`join_args`]: a request wrapper of the consecutive values
/// of `args`, each as a Hessian message of its own, named by the JVM
/// descriptors `java_types` (the method's, see
/// [`MethodDescriptor::java_types`](crate::MethodDescriptor::java_types)).
/// Without descriptors every value of `args` is an argument, named after
/// what it holds (Java's provider reads `argTypes` only to tell overloads apart).
pub(crate) fn wrap_request(args: &Bytes, java_types: &str) -> Result<RequestWrapper, String> {
    let declared = if java_types.is_empty() {
        None
    } else {
        Some(java_class_names(java_types)?)
    };
    let mut wrapper = RequestWrapper {
        serialize_type: HESSIAN4.to_owned(),
        ..RequestWrapper::default()
    };
    match &declared {
        Some(names) if names.len() == 1 && !args.is_empty() => {
            // One argument is a message of its own already.
            wrapper.args.push(args.clone());
            wrapper.arg_types.clone_from(names);
            return Ok(wrapper);
        }
        _ => {}
    }
    let mut decoder = Decoder::new(args);
    let mut index = 0;
    while !decoder.is_at_end() {
        if declared.as_ref().is_some_and(|names| index >= names.len()) {
            return Err(format!(
                "{} bytes after the {index} arguments the method declares",
                args.len() - decoder.position()
            ));
        }
        let value: Value = decoder
            .read()
            .map_err(|e| format!("cannot read argument {index}: {e}"))?;
        let bytes = rpc_hessian::to_vec(&value).map_err(|e| format!("cannot write argument {index}: {e}"))?;
        wrapper.args.push(Bytes::from(bytes));
        if declared.is_none() {
            wrapper.arg_types.push(java_type_of(&value));
        }
        index += 1;
    }
    if let Some(names) = declared {
        if names.len() != index {
            return Err(format!(
                "{index} arguments for the {} parameter types `{java_types}`",
                names.len()
            ));
        }
        wrapper.arg_types = names;
    }
    Ok(wrapper)
}

/// A Java class name for a value, for the response wrapper's `type` (Java's
/// consumer does not read it: it reads the answer as its declared type).
fn java_type_of(value: &Value) -> String {
    match value {
        Value::Null => "java.lang.Object",
        Value::Bool(_) => "java.lang.Boolean",
        Value::Int(_) => "java.lang.Integer",
        Value::Long(_) => "java.lang.Long",
        Value::Double(_) => "java.lang.Double",
        Value::Date(_) => "java.util.Date",
        Value::String(_) => "java.lang.String",
        Value::Binary(_) => "[B",
        Value::List { .. } => "java.util.List",
        Value::Map { .. } => "java.util.Map",
        Value::Object { class, .. } => return class.clone(),
    }
    .to_owned()
}

/// A handler's Hessian2 reply body (Dubbo's flag, then the value or
/// exception, perhaps attachments) as a response wrapper, and whether it
/// holds an exception.
pub(crate) fn wrap_reply(reply: &Bytes) -> Result<(ResponseWrapper, bool), String> {
    let (flag, start) = crate::hessian2::reply_flag(reply)?;
    let (data, value) = match flag % WITH_ATTACHMENTS {
        FLAG_NULL => (Bytes::from_static(b"N"), Value::Null),
        _ => {
            let mut decoder = Decoder::new(&reply[start..]);
            let value: Value = decoder
                .read()
                .map_err(|e| format!("cannot read the reply value: {e}"))?;
            (reply.slice(start..start + decoder.position()), value)
        }
    };
    let exception = flag % WITH_ATTACHMENTS == FLAG_EXCEPTION;
    let wrapper = ResponseWrapper {
        serialize_type: HESSIAN4.to_owned(),
        data,
        r#type: java_type_of(&value),
    };
    Ok((wrapper, exception))
}

/// A response wrapper as the Hessian2 reply body a stub reads: an exception
/// (`tri-exception-code` set) with Dubbo's exception flag, `null` with the
/// null flag, anything else as a value.
pub(crate) fn unwrap_reply(wrapper: &ResponseWrapper, exception: bool) -> Result<Bytes, String> {
    if !is_hessian(&wrapper.serialize_type) {
        return Err(format!(
            "the answer's serialization `{}` is not Hessian2 (`{HESSIAN4}`)",
            wrapper.serialize_type
        ));
    }
    let flag = if exception {
        FLAG_EXCEPTION
    } else if wrapper.data.is_empty() || wrapper.data[..] == *b"N" {
        FLAG_NULL
    } else {
        FLAG_VALUE
    };
    let mut body = BytesMut::with_capacity(1 + wrapper.data.len());
    body.put_u8(COMPACT_INT_ZERO + flag);
    if flag != FLAG_NULL {
        body.put_slice(&wrapper.data);
    }
    Ok(body.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The gRPC message inside a captured DATA payload.
    fn captured(name: &str) -> Bytes {
        let path = format!("{}/../../tests/java/captures/{name}", env!("CARGO_MANIFEST_DIR"));
        let framed = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        crate::protocol::tri::codec::unframe(Bytes::from(framed), 1 << 20).unwrap()
    }

    #[test]
    fn javas_request_wrapper_decodes_and_encodes_back_byte_for_byte() {
        let message = captured("tri-sayHello-request-data.bin");
        let wrapper = RequestWrapper::decode(&message).unwrap();
        assert_eq!(wrapper.serialize_type, "hessian4");
        assert_eq!(wrapper.arg_types, ["java.lang.String"]);
        assert_eq!(wrapper.args.len(), 1);
        let name: String = rpc_hessian::from_slice(&wrapper.args[0]).unwrap();
        assert_eq!(name, "world");
        assert_eq!(wrapper.encode(), message);
        assert!(looks_wrapped(&message));
    }

    #[test]
    fn javas_response_wrapper_decodes_and_encodes_back_byte_for_byte() {
        let message = captured("tri-sayHello-response-data.bin");
        let wrapper = ResponseWrapper::decode(&message).unwrap();
        assert_eq!(wrapper.serialize_type, "hessian4");
        assert_eq!(wrapper.r#type, "java.lang.String");
        let greeting: String = rpc_hessian::from_slice(&wrapper.data).unwrap();
        assert_eq!(greeting, "Hello, world from java");
        assert_eq!(wrapper.encode(), message);
        // As the stub reads it: a value reply.
        let reply = unwrap_reply(&wrapper, false).unwrap();
        let back: String = crate::hessian2::decode_reply(&reply).unwrap();
        assert_eq!(back, "Hello, world from java");
    }

    #[test]
    fn bad_wrappers_are_errors_not_panics() {
        let message = captured("tri-sayHello-request-data.bin");
        for cut in 1..message.len() {
            // Every cut inside a field is an error; a cut between fields is a shorter message.
            if let Ok(short) = RequestWrapper::decode(&message.slice(..cut)) {
                assert!(short.args.len() + short.arg_types.len() < 2, "cut {cut}: {short:?}");
            }
        }
        let cases: [&[u8]; 5] = [
            &[0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f], // length 2^32-1
            &[0x0a, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80], // endless varint
            &[0x0b],                               // wire type 3
            &[0x02, 0x00],                         // field 0
            &[0x0a, 0x02, 0xff, 0xfe],             // not UTF-8
        ];
        for bad in cases {
            assert!(RequestWrapper::decode(&Bytes::from_static(bad)).is_err(), "{bad:?}");
        }
        // Unknown fields are skipped, of every known wire type.
        let mut odd = BytesMut::new();
        odd.put_slice(&[0x20, 0x96, 0x01, 0x29, 0, 0, 0, 0, 0, 0, 0, 0, 0x35, 0, 0, 0, 0]);
        put_field(&mut odd, 9, b"ignored");
        put_field(&mut odd, 1, b"hessian4");
        let wrapper = RequestWrapper::decode(&odd.freeze()).unwrap();
        assert_eq!(wrapper.serialize_type, "hessian4");
        // JSON texts are never taken for wrappers.
        for json in [&b"\"world\""[..], b"[1]", b"{}", b"null", b" \n[1]", b"42"] {
            assert!(!looks_wrapped(json), "{json:?}");
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn wrappers_round_trip(
                serialize_type in "[a-z0-9]{0,12}",
                args in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..5),
                arg_types in proptest::collection::vec("[a-zA-Z.;\\[]{0,30}", 0..5),
                data in proptest::collection::vec(any::<u8>(), 0..200),
            ) {
                let request = RequestWrapper {
                    serialize_type: serialize_type.clone(),
                    args: args.into_iter().map(Bytes::from).collect(),
                    arg_types,
                };
                prop_assert_eq!(RequestWrapper::decode(&request.encode()).unwrap(), request);
                let response = ResponseWrapper {
                    serialize_type,
                    data: Bytes::from(data),
                    r#type: "org.example.OrderId".into(),
                };
                prop_assert_eq!(ResponseWrapper::decode(&response.encode()).unwrap(), response);
            }

            #[test]
            fn any_bytes_are_a_wrapper_or_an_error_never_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
                let bytes = Bytes::from(bytes);
                let _ = RequestWrapper::decode(&bytes);
                let _ = ResponseWrapper::decode(&bytes);
                let _ = wrap_request(&bytes, "");
                let _ = wrap_reply(&bytes);
            }
        }
    }

    #[test]
    fn descriptors_become_java_class_names() {
        assert_eq!(
            java_class_names("Ljava/lang/String;JI[I[Ljava/lang/String;Z[[D").unwrap(),
            [
                "java.lang.String",
                "long",
                "int",
                "[I",
                "[Ljava.lang.String;",
                "boolean",
                "[[D"
            ]
        );
        assert_eq!(java_class_names("").unwrap(), Vec::<String>::new());
        assert!(java_class_names("Ljava/lang/String").is_err());
        assert!(java_class_names("I[").is_err());
        assert!(java_class_names("X").is_err());
    }

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Order {
        item: String,
        quantity: i32,
    }

    #[test]
    fn arguments_split_and_join_with_their_own_class_definitions() {
        // Two objects of one class: the stream defines it once.
        let orders = (
            Order {
                item: "a".into(),
                quantity: 1,
            },
            Order {
                item: "b".into(),
                quantity: 2,
            },
            7i64,
        );
        let mut stream = BytesMut::new();
        crate::hessian2::encode_args(&orders, "org.example", &mut stream).unwrap();
        let stream = stream.freeze();
        let wrapped = wrap_request(&stream, "Lorg/example/Order;Lorg/example/Order;J").unwrap();
        assert_eq!(wrapped.arg_types, ["org.example.Order", "org.example.Order", "long"]);
        let split = &wrapped.args;
        // Each piece stands alone: the second order carries its own definition.
        let second: Order = rpc_hessian::from_slice(&split[1]).unwrap();
        assert_eq!(second, orders.1);
        let value: Value = rpc_hessian::from_slice(&split[1]).unwrap();
        assert!(
            matches!(&value, Value::Object { class, .. } if class == "org.example.Order"),
            "{value:?}"
        );
        let joined = join_args(split).unwrap();
        let back: (Order, Order, i64) = crate::hessian2::decode_args(&joined).unwrap();
        assert_eq!(back, orders);
        // Without descriptors: every value, named after what it holds.
        let guessed = wrap_request(&stream, "").unwrap();
        assert_eq!(guessed.args, wrapped.args);
        assert_eq!(
            guessed.arg_types,
            ["org.example.Order", "org.example.Order", "java.lang.Long"]
        );
        assert!(wrap_request(&stream, "Lorg/example/Order;Lorg/example/Order;JJ").is_err());
        assert!(wrap_request(&stream, "Lorg/example/Order;J").is_err());
        assert!(wrap_request(&stream, "Lorg/example/Order").is_err());
        // One argument goes as it is; none is an empty wrapper.
        let one = Bytes::from_static(b"\x05world");
        assert_eq!(wrap_request(&one, "Ljava/lang/String;").unwrap().args, [one]);
        assert!(wrap_request(&Bytes::new(), "").unwrap().args.is_empty());
        assert!(wrap_request(&Bytes::new(), "J").is_err());
        assert_eq!(join_args(&[]).unwrap(), Bytes::new());
        assert!(join_args(&[Bytes::from_static(b"S\x00\x05ab"), Bytes::from_static(b"N")]).is_err());
    }

    #[test]
    fn replies_wrap_and_unwrap() {
        let value = |reply: &[u8]| wrap_reply(&Bytes::copy_from_slice(reply)).unwrap();
        // `1`, then "hi", then attachments (flag 4): the data is only the value.
        let (wrapper, exception) = value(&[0x94, 0x02, b'h', b'i', b'H', b'Z']);
        assert!(!exception);
        assert_eq!(&wrapper.data[..], &[0x02, b'h', b'i']);
        assert_eq!(wrapper.r#type, "java.lang.String");
        assert_eq!(
            unwrap_reply(&wrapper, false).unwrap(),
            Bytes::from_static(&[0x91, 0x02, b'h', b'i'])
        );
        let (wrapper, exception) = value(&[0x92]);
        assert!(!exception);
        assert_eq!(&wrapper.data[..], b"N");
        assert_eq!(unwrap_reply(&wrapper, false).unwrap(), Bytes::from_static(&[0x92]));
        let (wrapper, exception) = value(&[0x90, 0x01, b'x']);
        assert!(exception);
        assert_eq!(
            unwrap_reply(&wrapper, true).unwrap(),
            Bytes::from_static(&[0x90, 0x01, b'x'])
        );
        assert!(wrap_reply(&Bytes::from_static(&[0x97])).is_err());
        assert!(wrap_reply(&Bytes::from_static(&[0x91, 0x05, b'a'])).is_err());
        let json = ResponseWrapper {
            serialize_type: "fastjson2".into(),
            ..ResponseWrapper::default()
        };
        assert!(unwrap_reply(&json, false).unwrap_err().contains("fastjson2"));
    }
}

//! Generic invocation and `$echo`, as Apache Dubbo's `GenericFilter` and
//! `EchoFilter` answer them: every provider, on every protocol it speaks.
//!
//! * **`$invoke(String method, String[] parameterTypes, Object[] args)`** (and
//!   `$invokeAsync`, the same here) calls `method` of the service with `args`
//!   and answers its return value, for a caller that has no stub of the
//!   service (an ops tool, a gateway, a Java `GenericService`). The three
//!   arguments are JSON (`["sayHello", ["java.lang.String"], ["world"]]`) with
//!   our serializations, and Hessian values with `dubbo`'s Hessian2, where
//!   Java sends structs as maps (a `class` key, which is dropped, naming the
//!   Java class). The named method then runs as if called with JSON
//!   arguments, through the provider's layers under its own name, and its
//!   return value comes back as JSON, or over Hessian2 as plain values and
//!   maps (what Java's `GenericFilter` answers for `generic=true`). A method
//!   returning `Result` answers `Ok(v)` as `{"Ok": v}` and `Err(e)` as
//!   `{"Err": e}`: a value, not an exception. `parameterTypes` may be empty
//!   or null (Rust services have no overloads); when given, it must name as
//!   many types as there are arguments.
//! * **`$echo(x)`** answers `x`, without running the service: a health check
//!   of the path to the provider.
//!
//! The `generic` attachment may be absent, `true` or `raw.return` (treated
//! alike); Dubbo's other forms (`bean`, `nativejava`, `gson`,
//! `protobuf-json`) are refused with [`Status::BadRequest`] naming the
//! supported ones. A wrong method, a wrong number of arguments or arguments
//! of the wrong types are each a [`Status::BadRequest`] or
//! [`Status::ServiceNotFound`] naming the service, the method and the
//! problem; the service is not run. A service that declares a method
//! called `$invoke` or `$echo` itself keeps it.

use bytes::Bytes;
use serde_json::Value as Json;

use crate::descriptor::ServiceDescriptor;
use crate::error::{RpcError, Status};
use crate::invocation::Invocation;
use crate::response::Response;
use crate::serialization::Serialization;

/// The method of a generic call.
pub const INVOKE: &str = "$invoke";
/// The asynchronous form of [`INVOKE`] (answered alike).
pub const INVOKE_ASYNC: &str = "$invokeAsync";
/// The method that answers its only argument.
pub const ECHO: &str = "$echo";
/// The attachment that says how a generic call's values are written.
pub const GENERIC_KEY: &str = "generic";
/// The Java parameter descriptors of [`INVOKE`]: what a `dubbo://` request names.
pub const INVOKE_JAVA_TYPES: &str = "Ljava/lang/String;[Ljava/lang/String;[Ljava/lang/Object;";
/// The Java parameter descriptor of [`ECHO`].
pub const ECHO_JAVA_TYPES: &str = "Ljava/lang/Object;";

/// The `generic` attachment values this provider takes.
const SUPPORTED: &str = "true, raw.return";

/// What the dispatcher does with a call.
pub(crate) enum Plan {
    /// Not a generic call: run it as it is.
    Plain(Invocation),
    /// Answered without running the service (`$echo`, or a refused `$invoke`).
    Answer(Invocation, Result<Response, RpcError>),
    /// Run the named method (the invocation, retargeted, with JSON
    /// arguments), then turn its JSON reply into one for the caller.
    Invoke(Invocation, Reply),
}

/// How a generic call's caller reads the reply.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Reply {
    /// JSON, as the method answered it.
    Json,
    /// A `dubbo` reply body of plain Hessian values and maps.
    Hessian2,
}

impl Reply {
    /// The caller's reply from the method's JSON `response`.
    pub(crate) fn convert(self, invocation: &Invocation, response: Response) -> Result<Response, RpcError> {
        match self {
            Reply::Json => Ok(response),
            Reply::Hessian2 => {
                let value: Json = serde_json::from_slice(response.payload())
                    .map_err(|e| bad_response(invocation, format!("the method's JSON reply does not parse: {e}")))?;
                crate::scratch::encode(256, |buf| {
                    crate::hessian2::encode_reply(&value, "", buf)
                        .map_err(|e| crate::CodecError::new(Serialization::Hessian2, e))
                })
                .map(Response::new)
                .map_err(|e| bad_response(invocation, format!("cannot write the reply as Hessian2: {e}")))
            }
        }
    }
}

/// What to do with `invocation`, a call of a service described by `descriptor`.
pub(crate) fn plan(descriptor: &'static ServiceDescriptor, mut invocation: Invocation) -> Plan {
    let method = invocation.method();
    if !method.starts_with('$') || descriptor.method(method).is_some() {
        return Plan::Plain(invocation);
    }
    match method {
        ECHO => {
            let answer = echo(&invocation);
            Plan::Answer(invocation, answer)
        }
        INVOKE | INVOKE_ASYNC => match invoke_target(descriptor, &invocation) {
            Ok((target, args, reply)) => {
                invocation.retarget(target.into(), args, Serialization::Json);
                Plan::Invoke(invocation, reply)
            }
            Err(error) => Plan::Answer(invocation, Err(error)),
        },
        _ => Plan::Plain(invocation),
    }
}

/// `$echo(x)`: `x`, in the call's serialization.
fn echo(invocation: &Invocation) -> Result<Response, RpcError> {
    let args = invocation.args();
    match invocation.serialization() {
        // A one-element tuple is encoded as the element itself.
        Serialization::Bincode => Ok(Response::new(args.clone())),
        Serialization::Json => {
            let value: Json = serde_json::from_slice(args)
                .map_err(|e| bad_request(invocation, format!("the argument is not JSON: {e}")))?;
            // `["x"]` (an argument list) or the bare `"x"` (how a stub sends one argument).
            let value = match value {
                Json::Array(mut items) if items.len() == 1 => items.pop().unwrap_or(Json::Null),
                other => other,
            };
            serde_json::to_vec(&value)
                .map(|bytes| Response::new(Bytes::from(bytes)))
                .map_err(|e| bad_response(invocation, e.to_string()))
        }
        Serialization::Hessian2 => {
            let mut decoder = rpc_hessian::Decoder::new(args);
            let value: rpc_hessian::Value = decoder
                .read()
                .map_err(|e| bad_request(invocation, format!("cannot read the argument: hessian2: {e}")))?;
            if !decoder.is_at_end() {
                return Err(bad_request(invocation, "`$echo` takes exactly 1 argument, got more"));
            }
            crate::scratch::encode(256, |buf| {
                crate::hessian2::encode_reply(&value, "", buf)
                    .map_err(|e| crate::CodecError::new(Serialization::Hessian2, e))
            })
            .map(Response::new)
            .map_err(|e| bad_response(invocation, e.to_string()))
        }
    }
}

/// The three arguments of `$invoke`, whatever they were written in.
struct InvokeArgs {
    method: String,
    types: Vec<String>,
    args: Vec<Json>,
}

/// The method `$invoke` names, its arguments as a JSON array, and how to answer.
fn invoke_target(
    descriptor: &'static ServiceDescriptor,
    invocation: &Invocation,
) -> Result<(&'static str, Bytes, Reply), RpcError> {
    match invocation.attachment(GENERIC_KEY).map(str::trim) {
        None | Some("" | "true" | "raw.return") => {}
        Some(other) => {
            return Err(bad_request(
                invocation,
                format!("generic={other} is not supported by this provider (it takes generic={SUPPORTED})"),
            ));
        }
    }
    let (call, reply) = match invocation.serialization() {
        Serialization::Json => (invoke_args_json(invocation)?, Reply::Json),
        Serialization::Hessian2 => (invoke_args_hessian(invocation)?, Reply::Hessian2),
        other => {
            return Err(bad_request(
                invocation,
                format!("`$invoke` takes its arguments as JSON (serialization json) or Hessian2, not {other}"),
            ));
        }
    };
    let Some(method) = descriptor.method(&call.method) else {
        return Err(RpcError::remote(
            Status::ServiceNotFound,
            format!(
                "generic call of `{}`: no such method in {} (methods: {})",
                call.method,
                descriptor.interface,
                descriptor.method_names()
            ),
        )
        .with_service(invocation.service())
        .with_method(call.method));
    };
    let refuse = |why: String| {
        RpcError::remote(Status::BadRequest, format!("generic call: {why}"))
            .with_service(invocation.service())
            .with_method(method.name)
    };
    if !call.types.is_empty() && call.types.len() != call.args.len() {
        return Err(refuse(format!(
            "{} parameter types ({}) for {} arguments",
            call.types.len(),
            call.types.join(", "),
            call.args.len()
        )));
    }
    let arity = crate::hessian2::count_descriptors(method.java_types).unwrap_or(call.args.len());
    if arity != call.args.len() {
        return Err(refuse(format!(
            "`{}` takes {arity} argument{}, the call passed {}",
            method.name,
            if arity == 1 { "" } else { "s" },
            call.args.len()
        )));
    }
    let args =
        serde_json::to_vec(&call.args).map_err(|e| refuse(format!("cannot write the arguments as JSON: {e}")))?;
    Ok((method.name, Bytes::from(args), reply))
}

fn invoke_args_json(invocation: &Invocation) -> Result<InvokeArgs, RpcError> {
    type Wire = (String, Option<Vec<String>>, Option<Vec<Json>>);
    let (method, types, args): Wire = serde_json::from_slice(invocation.args()).map_err(|e| {
        bad_request(
            invocation,
            format!("the arguments of `$invoke` must be [method, [parameter types], [arguments]]: {e}"),
        )
    })?;
    Ok(InvokeArgs {
        method,
        types: types.unwrap_or_default(),
        args: args.unwrap_or_default(),
    })
}

fn invoke_args_hessian(invocation: &Invocation) -> Result<InvokeArgs, RpcError> {
    let bytes = invocation.args();
    let mut decoder = rpc_hessian::Decoder::new(bytes);
    let read_error = |what: &str, e: rpc_hessian::Error| {
        bad_request(
            invocation,
            format!("cannot read the {what} of `$invoke`: hessian2: {e}"),
        )
    };
    let method: Option<String> = decoder.read().map_err(|e| read_error("method name", e))?;
    let types: Option<Vec<Option<String>>> = decoder.read().map_err(|e| read_error("parameter types", e))?;
    let args: Option<Vec<rpc_hessian::Value>> = decoder.read().map_err(|e| read_error("arguments", e))?;
    if !decoder.is_at_end() {
        return Err(bad_request(
            invocation,
            format!(
                "`$invoke` takes 3 arguments (method, parameter types, arguments); {} bytes follow them",
                bytes.len() - decoder.position()
            ),
        ));
    }
    let Some(method) = method else {
        return Err(bad_request(invocation, "the method name of `$invoke` is null"));
    };
    Ok(InvokeArgs {
        method,
        types: types.unwrap_or_default().into_iter().flatten().collect(),
        args: args.unwrap_or_default().into_iter().map(hessian_to_json).collect(),
    })
}

/// A call's arguments as JSON values, for what reads them without the
/// method's types (condition routing's `arguments[N]`): a JSON call's array
/// (a single value as one argument), a Hessian2 call's consecutive values;
/// `None` for bincode, whose values cannot be read without their types, and
/// for arguments that do not decode.
pub fn arguments_as_json(invocation: &Invocation) -> Option<Vec<Json>> {
    match invocation.serialization() {
        Serialization::Json => match serde_json::from_slice::<Json>(invocation.args()) {
            Ok(Json::Array(items)) => Some(items),
            Ok(single) => Some(vec![single]),
            Err(_) => None,
        },
        Serialization::Hessian2 => {
            let mut decoder = rpc_hessian::Decoder::new(invocation.args());
            let mut args = Vec::new();
            while !decoder.is_at_end() {
                let value: rpc_hessian::Value = decoder.read().ok()?;
                args.push(hessian_to_json(value));
            }
            Some(args)
        }
        _ => None,
    }
}

/// A Hessian value as JSON: objects and maps as JSON objects (a map's
/// `class` entry, which Java's `PojoUtils.generalize` adds, left out), lists
/// and binary as arrays, dates as milliseconds since the epoch, a double
/// that JSON cannot hold (NaN, infinite) as `null`.
pub fn hessian_to_json(value: rpc_hessian::Value) -> Json {
    use rpc_hessian::Value as H;
    match value {
        H::Null => Json::Null,
        H::Bool(b) => Json::Bool(b),
        H::Int(n) => Json::from(n),
        H::Long(n) | H::Date(n) => Json::from(n),
        H::Double(d) => serde_json::Number::from_f64(d).map_or(Json::Null, Json::Number),
        H::String(s) => Json::String(s),
        H::Binary(bytes) => Json::Array(bytes.into_iter().map(Json::from).collect()),
        H::List { items, .. } => Json::Array(items.into_iter().map(hessian_to_json).collect()),
        H::Map { entries, .. } => Json::Object(
            entries
                .into_iter()
                .filter(|(key, value)| !(key.as_str() == Some("class") && matches!(value, H::String(_))))
                .map(|(key, value)| {
                    let key = match key {
                        H::String(s) => s,
                        other => hessian_to_json(other).to_string(),
                    };
                    (key, hessian_to_json(value))
                })
                .collect(),
        ),
        H::Object { fields, .. } => Json::Object(
            fields
                .into_iter()
                .map(|(name, value)| (name, hessian_to_json(value)))
                .collect(),
        ),
    }
}

/// The arguments of a generic call of `method` with `parameter_types` (may
/// be empty) and `args`, encoded with `serialization` (JSON or Hessian2):
/// what a generic consumer sends as the arguments of [`INVOKE`].
pub fn encode_invoke_args(
    serialization: Serialization,
    method: &str,
    parameter_types: &[String],
    args: &[Json],
) -> Result<Bytes, crate::CodecError> {
    let call = (method, parameter_types, args);
    match serialization {
        Serialization::Hessian2 => crate::scratch::encode(256, |buf| {
            crate::hessian2::encode_args(&call, "", buf).map_err(|e| crate::CodecError::new(serialization, e))
        }),
        Serialization::Json => serialization.encode(&call),
        other => Err(crate::CodecError::new(
            other,
            "generic calls are written in json or hessian2".into(),
        )),
    }
}

fn bad_request(invocation: &Invocation, why: impl Into<String>) -> RpcError {
    RpcError::remote(Status::BadRequest, why)
        .with_service(invocation.service())
        .with_method(invocation.method())
}

fn bad_response(invocation: &Invocation, why: impl Into<String>) -> RpcError {
    RpcError::remote(Status::BadResponse, why)
        .with_service(invocation.service())
        .with_method(invocation.method())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use rpc_hessian::Value as H;
    use serde_json::json;

    use super::*;
    use crate::descriptor::MethodDescriptor;
    use crate::dispatch::{Dispatcher, Exported};
    use crate::invocation::ServiceKey;
    use crate::invoker::BoxFuture;
    use crate::service::{ServiceHandler, handler};

    static METHODS: [MethodDescriptor; 2] = [
        MethodDescriptor::new("add", "add").with_java_types("JJ"),
        MethodDescriptor::new("$echo", "own_echo").with_java_types("Ljava/lang/String;"),
    ];
    static DESCRIPTOR: ServiceDescriptor = ServiceDescriptor::new("a.Calc").with_methods(&METHODS);

    /// `add(a, b)`, and a method of its own called `$echo` (answers "mine").
    struct Calc;

    impl ServiceHandler for Calc {
        fn descriptor(&self) -> &'static ServiceDescriptor {
            &DESCRIPTOR
        }

        fn call(&self, invocation: Invocation) -> BoxFuture<Result<Response, RpcError>> {
            Box::pin(async move {
                match invocation.method() {
                    "add" => {
                        let (a, b): (i64, i64) = handler::decode_args(&invocation)?;
                        handler::encode_reply(&invocation, &(a + b))
                    }
                    "$echo" => handler::encode_reply(&invocation, &"mine"),
                    _ => Err(handler::unknown_method(&DESCRIPTOR, &invocation)),
                }
            })
        }
    }

    fn dispatcher() -> Dispatcher {
        Dispatcher::new([(ServiceKey::new("a.Calc", None, None), Exported::new(Calc))])
    }

    fn call(method: &'static str, args: Vec<u8>, serialization: Serialization, generic: Option<&str>) -> Invocation {
        let mut invocation = Invocation::new(
            ServiceKey::new("a.Calc", None, None),
            method,
            Bytes::from(args),
            serialization,
        );
        if let Some(generic) = generic {
            invocation.set_attachment(GENERIC_KEY, generic);
        }
        invocation
    }

    fn json_call(method: &'static str, args: Json, generic: Option<&str>) -> Invocation {
        call(method, serde_json::to_vec(&args).unwrap(), Serialization::Json, generic)
    }

    fn hessian(values: &[H]) -> Vec<u8> {
        let mut bytes = Vec::new();
        let mut encoder = rpc_hessian::Encoder::new(&mut bytes);
        for value in values {
            encoder.write(value).unwrap();
        }
        drop(encoder);
        bytes
    }

    #[tokio::test]
    async fn invoke_with_json_runs_the_named_method() {
        let d = dispatcher();
        for generic in [None, Some("true"), Some("raw.return")] {
            let reply = d
                .dispatch(json_call(INVOKE, json!(["add", ["long", "long"], [40, 2]]), generic))
                .await
                .unwrap();
            assert_eq!(reply.payload().as_ref(), b"42");
        }
        let reply = d
            .dispatch(json_call(INVOKE_ASYNC, json!(["add", null, [1, 2]]), None))
            .await
            .unwrap();
        assert_eq!(reply.payload().as_ref(), b"3");
    }

    #[tokio::test]
    async fn invoke_refusals_name_service_method_and_problem() {
        let d = dispatcher();
        let cases: [(Invocation, Status, &str); 7] = [
            (
                json_call(INVOKE, json!(["sub", [], [1, 2]]), None),
                Status::ServiceNotFound,
                "no such method in a.Calc (methods: add,$echo)",
            ),
            (
                json_call(INVOKE, json!(["add", [], [1]]), None),
                Status::BadRequest,
                "`add` takes 2 arguments, the call passed 1",
            ),
            (
                json_call(INVOKE, json!(["add", ["long"], [1, 2]]), None),
                Status::BadRequest,
                "1 parameter types (long) for 2 arguments",
            ),
            (
                json_call(INVOKE, json!(["add", [], ["one", 2]]), None),
                Status::BadRequest,
                "cannot decode the arguments",
            ),
            (
                json_call(INVOKE, json!({"method": "add"}), None),
                Status::BadRequest,
                "must be [method, [parameter types], [arguments]]",
            ),
            (
                json_call(INVOKE, json!(["add", [], [1, 2]]), Some("bean")),
                Status::BadRequest,
                "generic=bean is not supported by this provider (it takes generic=true, raw.return)",
            ),
            (
                call(INVOKE, vec![1, 2, 3], Serialization::Bincode, None),
                Status::BadRequest,
                "JSON (serialization json) or Hessian2, not bincode",
            ),
        ];
        for (invocation, status, needle) in cases {
            let error = d.dispatch(invocation).await.unwrap_err();
            assert_eq!(error.status(), Some(status), "{error}");
            assert!(error.to_string().contains(needle), "`{needle}` not in: {error}");
            assert_eq!(error.service(), Some("a.Calc"), "{error}");
        }
    }

    #[tokio::test]
    async fn invoke_with_hessian_reads_java_generic_values() {
        // What Java's GenericService writes: String, String[] ("[string"), Object[] ("[object").
        let args = hessian(&[
            H::String("add".into()),
            H::List {
                r#type: Some("[string".into()),
                items: vec![H::String("long".into()), H::String("long".into())],
            },
            H::List {
                r#type: Some("[object".into()),
                items: vec![H::Long(40), H::Int(2)],
            },
        ]);
        let reply = dispatcher()
            .dispatch(call(INVOKE, args, Serialization::Hessian2, Some("true")))
            .await
            .unwrap();
        // Dubbo's reply: flag 1 (value), then the long 42.
        let decoded: i64 = crate::hessian2::decode_reply(reply.payload())
            .map_err(|_| "reply")
            .unwrap();
        assert_eq!(decoded, 42);

        let garbage = call(INVOKE, vec![0x43, 0xff, 0x00], Serialization::Hessian2, None);
        let error = dispatcher().dispatch(garbage).await.unwrap_err();
        assert_eq!(error.status(), Some(Status::BadRequest), "{error}");
    }

    #[test]
    fn java_maps_become_json_objects_without_their_class() {
        let order = H::Map {
            r#type: None,
            entries: vec![
                (H::String("class".into()), H::String("org.example.Order".into())),
                (H::String("item".into()), H::String("tea".into())),
                (H::String("quantity".into()), H::Int(2)),
                (H::Int(7), H::Double(f64::NAN)),
            ],
        };
        assert_eq!(hessian_to_json(order), json!({"item": "tea", "quantity": 2, "7": null}));
        let object = H::Object {
            class: "org.example.OrderId".into(),
            fields: vec![("id".into(), H::Long(3)), ("at".into(), H::Date(1_000))],
        };
        assert_eq!(hessian_to_json(object), json!({"id": 3, "at": 1000}));
        assert_eq!(hessian_to_json(H::Binary(vec![1, 2])), json!([1, 2]));
    }

    #[tokio::test]
    async fn echo_answers_its_argument_in_every_serialization() {
        let d = dispatcher_without_own_echo();
        let reply = d.dispatch(json_call(ECHO, json!(["x"]), None)).await.unwrap();
        assert_eq!(reply.payload().as_ref(), br#""x""#);
        let reply = d.dispatch(json_call(ECHO, json!({"a": [1]}), None)).await.unwrap();
        assert_eq!(reply.payload().as_ref(), br#"{"a":[1]}"#);
        let bincode = Serialization::Bincode.encode(&("ping",)).unwrap();
        let reply = d
            .dispatch(call(ECHO, bincode.to_vec(), Serialization::Bincode, None))
            .await
            .unwrap();
        assert_eq!(
            Serialization::Bincode.decode::<String>(reply.payload()).unwrap(),
            "ping"
        );
        let args = hessian(&[H::String("ping".into())]);
        let reply = d
            .dispatch(call(ECHO, args, Serialization::Hessian2, None))
            .await
            .unwrap();
        let decoded: String = crate::hessian2::decode_reply(reply.payload())
            .map_err(|_| "reply")
            .unwrap();
        assert_eq!(decoded, "ping");
        let two = hessian(&[H::Int(1), H::Int(2)]);
        let error = d
            .dispatch(call(ECHO, two, Serialization::Hessian2, None))
            .await
            .unwrap_err();
        assert_eq!(error.status(), Some(Status::BadRequest), "{error}");
    }

    #[tokio::test]
    async fn a_method_of_the_service_named_like_a_generic_one_is_its_own() {
        let reply = dispatcher()
            .dispatch(json_call(ECHO, json!(["x"]), None))
            .await
            .unwrap();
        assert_eq!(reply.payload().as_ref(), br#""mine""#);
    }

    /// `Calc` without its own `$echo`.
    fn dispatcher_without_own_echo() -> Dispatcher {
        static ADD_ONLY: ServiceDescriptor =
            ServiceDescriptor::new("a.Calc").with_methods(&[MethodDescriptor::new("add", "add")]);
        struct AddOnly;
        impl ServiceHandler for AddOnly {
            fn descriptor(&self) -> &'static ServiceDescriptor {
                &ADD_ONLY
            }
            fn call(&self, invocation: Invocation) -> BoxFuture<Result<Response, RpcError>> {
                Calc.call(invocation)
            }
        }
        Dispatcher::new([(ServiceKey::new("a.Calc", None, None), Exported::new(AddOnly))])
    }
}

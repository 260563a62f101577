//! The codec against the bytes Java Dubbo 3.3.6 wrote (tests/java/captures).

#![allow(clippy::unwrap_used)]

use super::*;
use crate::hessian2;
use crate::protocol::rpc::frame::{Decoded, FrameCodec, MAGIC};
use serde::{Deserialize, Serialize};
use tokio_util::codec::Decoder as _;

macro_rules! capture {
    ($name:literal) => {
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/java/captures/",
            $name
        ))
    };
}

fn frame_of(bytes: &[u8]) -> (Header, Bytes) {
    let mut buf = BytesMut::from(bytes);
    match FrameCodec::new(1 << 20).decode(&mut buf).unwrap() {
        Some(Decoded::Frame(header, body)) => {
            assert!(buf.is_empty());
            (header, body)
        }
        other => panic!("not one whole frame: {other:?}"),
    }
}

fn encode(frame: &OutFrame) -> Vec<u8> {
    let mut out = frame.header.to_vec();
    out.extend_from_slice(&frame.meta);
    out.extend_from_slice(&frame.tail);
    out
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Order {
    item: String,
    quantity: i32,
    tags: Vec<String>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct OrderId {
    id: i64,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct OrderRejected {
    #[serde(rename = "detailMessage")]
    message: String,
}

#[test]
fn javas_requests_decode() {
    let (header, body) = frame_of(capture!("dubbo-sayHello-request.bin"));
    assert_eq!(header.serialization_id(), HESSIAN2_ID);
    assert!(header.is_request() && header.is_two_way() && !header.is_event());
    let request = DubboRequest::decode(&body).unwrap();
    assert_eq!(request.dubbo_version, "2.0.2");
    assert_eq!(request.path, "org.example.Greeter");
    assert_eq!(request.service_version(), Some("1.0.0"));
    assert_eq!(request.method, "sayHello");
    assert_eq!(request.parameter_types, "Ljava/lang/String;");
    assert_eq!(hessian2::decode_args::<(String,)>(&request.args).unwrap().0, "world");
    assert_eq!(request.attachment("interface"), Some("org.example.Greeter"));
    assert_eq!(request.timeout(), Some(Duration::from_secs(3)));
    assert_eq!(request.group(), None);
    assert!(request.wants_response_attachments());

    let (_, body) = frame_of(capture!("dubbo-placeOrder-ok-request.bin"));
    let request = DubboRequest::decode(&body).unwrap();
    assert_eq!(request.parameter_types, "Lorg/example/Order;");
    let (order,) = hessian2::decode_args::<(Order,)>(&request.args).unwrap();
    assert_eq!(
        order,
        Order {
            item: "apple".into(),
            quantity: 3,
            tags: vec!["red".into(), "big".into()]
        }
    );

    let (_, body) = frame_of(capture!("dubbo-sleep-void-request.bin"));
    let request = DubboRequest::decode(&body).unwrap();
    assert_eq!(hessian2::decode_args::<(i64,)>(&request.args).unwrap().0, 10);

    let (_, body) = frame_of(capture!("dubbo-echoNullable-null-request.bin"));
    let request = DubboRequest::decode(&body).unwrap();
    assert_eq!(
        hessian2::decode_args::<(Option<String>,)>(&request.args).unwrap().0,
        None
    );

    let (_, body) = frame_of(capture!("dubbo-echoMap-request.bin"));
    let request = DubboRequest::decode(&body).unwrap();
    let (map,) = hessian2::decode_args::<(std::collections::BTreeMap<String, i32>,)>(&request.args).unwrap();
    assert_eq!(
        map.into_iter().collect::<Vec<_>>(),
        [("j".to_string(), 2), ("k".to_string(), 1)]
    );

    let (_, body) = frame_of(capture!("dubbo-echoList-empty-request.bin"));
    let request = DubboRequest::decode(&body).unwrap();
    assert!(
        hessian2::decode_args::<(Vec<String>,)>(&request.args)
            .unwrap()
            .0
            .is_empty()
    );
}

#[test]
fn our_request_is_javas_byte_for_byte() {
    let (header, body) = frame_of(capture!("dubbo-sayHello-request.bin"));
    let java = DubboRequest::decode(&body).unwrap();
    let mut args = BytesMut::new();
    hessian2::encode_args(&("world".to_string(),), "org.example", &mut args).unwrap();
    let attachments: Vec<(&str, &str)> = java.attachments.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let ours = request_body(
        "org.example.Greeter",
        Some("1.0.0"),
        "sayHello",
        "Ljava/lang/String;",
        &args,
        &attachments,
    )
    .unwrap();
    let frame = request_frame(header.id, true, ours.freeze());
    assert_eq!(encode(&frame), capture!("dubbo-sayHello-request.bin"));

    // A struct argument: same class definition (fields in our order), same values.
    let (_, body) = frame_of(capture!("dubbo-placeOrder-ok-request.bin"));
    let java = DubboRequest::decode(&body).unwrap();
    let mut args = BytesMut::new();
    let order = Order {
        item: "apple".into(),
        quantity: 3,
        tags: vec!["red".into(), "big".into()],
    };
    hessian2::encode_args(&(order,), "org.example", &mut args).unwrap();
    let theirs: Value = Decoder::new(&java.args).read().unwrap();
    let ours: Value = Decoder::new(&args).read().unwrap();
    let sorted = |value: Value| match value {
        Value::Object { class, mut fields } => {
            fields.sort_by(|a, b| a.0.cmp(&b.0));
            (class, fields)
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(sorted(ours), sorted(theirs));
}

#[test]
fn our_responses_are_javas_byte_for_byte() {
    let cases: [(&[u8], Bytes); 4] = [
        (
            capture!("dubbo-sayHello-response.bin"),
            reply(&"Hello, world from java"),
        ),
        (capture!("dubbo-sleep-void-response.bin"), reply(&())),
        (capture!("dubbo-echoNullable-null-response.bin"), reply(&None::<String>)),
        (
            capture!("dubbo-placeOrder-ok-response.bin"),
            reply(&Ok::<_, OrderRejected>(OrderId { id: 3002 })),
        ),
    ];
    for (java, payload) in cases {
        let (header, _) = frame_of(java);
        assert_eq!(encode(&ok_response(header.id, payload, true)), java);
    }
}

fn reply<R: Serialize>(value: &R) -> Bytes {
    let mut buf = BytesMut::new();
    hessian2::encode_reply(value, "org.example", &mut buf).unwrap();
    buf.freeze()
}

#[test]
fn javas_responses_decode() {
    let body = |bytes: &[u8]| match DubboResponse::decode(frame_of(bytes).0.status, frame_of(bytes).1) {
        DubboResponse::Ok(body) => body,
        other => panic!("{other:?}"),
    };
    let hello: String = hessian2::decode_reply(&body(capture!("dubbo-sayHello-response.bin"))).unwrap();
    assert_eq!(hello, "Hello, world from java");
    let id: Result<OrderId, OrderRejected> =
        hessian2::decode_reply(&body(capture!("dubbo-placeOrder-ok-response.bin"))).unwrap();
    assert_eq!(id, Ok(OrderId { id: 3002 }));
    let rejected: Result<OrderId, OrderRejected> =
        hessian2::decode_reply(&body(capture!("dubbo-placeOrder-rejected-response.bin"))).unwrap();
    assert_eq!(
        rejected,
        Err(OrderRejected {
            message: "quantity must be positive, got 0 for apple".into()
        })
    );
    match hessian2::decode_reply::<OrderId>(&body(capture!("dubbo-placeOrder-rejected-response.bin"))) {
        Err(hessian2::ReplyError::Exception(e)) => {
            assert_eq!(
                e.to_string(),
                "org.example.OrderRejected: quantity must be positive, got 0 for apple"
            )
        }
        other => panic!("{other:?}"),
    }
    let list: Vec<String> = hessian2::decode_reply(&body(capture!("dubbo-echoList-response.bin"))).unwrap();
    assert_eq!(list, ["a", "b"]);
    let map: std::collections::HashMap<String, i32> =
        hessian2::decode_reply(&body(capture!("dubbo-echoMap-response.bin"))).unwrap();
    assert_eq!(map.len(), 2);
    let void: () = hessian2::decode_reply(&body(capture!("dubbo-sleep-void-response.bin"))).unwrap();
    assert_eq!(void, ());
    let null: Option<String> = hessian2::decode_reply(&body(capture!("dubbo-echoNullable-null-response.bin"))).unwrap();
    assert_eq!(null, None);
}

#[test]
fn errors_and_events_have_dubbos_form() {
    let frame = error_response(7, Status::ServiceNotFound, "no method `x`");
    let bytes = encode(&frame);
    assert_eq!(&bytes[..4], &[0xda, 0xbb, HESSIAN2_ID, 60]);
    let (header, body) = frame_of(&bytes);
    assert_eq!(
        DubboResponse::decode(header.status, body),
        DubboResponse::Failed(Status::ServiceNotFound, "no method `x`".into())
    );
    let heartbeat = encode(&event_frame(9, true, true, NULL_BODY));
    assert_eq!(MAGIC.to_be_bytes(), [heartbeat[0], heartbeat[1]]);
    assert_eq!(heartbeat[2], 0xe2);
    assert_eq!(&heartbeat[16..], b"N");
    let answer = encode(&event_frame(9, false, false, NULL_BODY));
    assert_eq!((answer[2], answer[3]), (0x22, 20));
}

#[test]
fn bad_request_bodies_are_errors_not_panics() {
    let (_, body) = frame_of(capture!("dubbo-placeOrder-ok-request.bin"));
    // Every truncation of a real body fails cleanly (or, cut right after the
    // arguments, reads with no attachments).
    for cut in 0..body.len() {
        let _ = DubboRequest::decode(&body.slice(..cut));
    }
    assert!(
        DubboRequest::decode(&body.slice(..20))
            .unwrap_err()
            .contains("cannot read")
    );
    // More parameter types than arguments.
    let lying = request_body("a.B", None, "m", "JJJ", b"\xea", &[]).unwrap().freeze();
    assert!(DubboRequest::decode(&lying).unwrap_err().contains("argument"));
    let malformed = request_body("a.B", None, "m", "Lfoo", b"", &[]).unwrap().freeze();
    assert!(
        DubboRequest::decode(&malformed)
            .unwrap_err()
            .contains("without its `;`")
    );
    // A list claiming 2^31 elements.
    let huge = request_body("a.B", None, "m", "Ljava/util/List;", b"\x58\xd4\x7f\xff\xff", &[])
        .unwrap()
        .freeze();
    assert!(DubboRequest::decode(&huge).is_err());
    // Attachments that are not a map.
    let mut odd = request_body("a.B", None, "m", "", b"", &[]).unwrap();
    odd.truncate(odd.len() - 2);
    odd.put_u8(b'T');
    assert!(DubboRequest::decode(&odd.freeze()).unwrap_err().contains("not a map"));
    assert!(DubboRequest::decode(&Bytes::new()).is_err());
}

#[test]
fn a_zero_or_malformed_timeout_is_none() {
    for (value, expected) in [("0", None), ("x", None), ("250", Some(Duration::from_millis(250)))] {
        let body = request_body("a.B", None, "m", "", b"", &[("timeout", value)])
            .unwrap()
            .freeze();
        assert_eq!(DubboRequest::decode(&body).unwrap().timeout(), expected, "{value}");
    }
}

#[test]
fn response_attachments_follow_the_callers_protocol_version() {
    assert!(supports_response_attachments("2.0.2"));
    assert!(supports_response_attachments("2.0.10"));
    assert!(!supports_response_attachments("2.0.1"));
    assert!(!supports_response_attachments("3.3.6"));
    assert!(!supports_response_attachments("junk"));
}

/// A `DubboChannel` calling our own server over TCP: the reply, an unknown
/// method's status and message, and a call encoded with the wrong serialization.
#[tokio::test]
async fn a_dubbo_channel_calls_our_server_over_tcp() {
    use crate::dispatch::{Dispatcher, Exported};
    use crate::invocation::{Invocation, ServiceKey};
    use crate::protocol::rpc::RpcChannelConfig;
    use crate::protocol::server::testing::{SERVICE, TestService, VERSION};
    use crate::protocol::server::{Server, ServerConfig};
    use crate::{ErrorKind, Outcome};
    use tower::Service as _;

    let key = ServiceKey::new(SERVICE, Some(VERSION), None);
    let dispatcher = Dispatcher::new([(key.clone(), Exported::new(TestService::default()))]);
    let server = Server::new(dispatcher, ServerConfig::default())
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let mut channel = client::DubboChannel::new(server.local_addr().to_string(), RpcChannelConfig::default());
    let call = |method: &str, serialization| {
        let mut invocation = Invocation::new(key.clone(), method.to_string(), Bytes::new(), serialization);
        invocation.set_deadline(crate::invocation::deadline_after(Duration::from_secs(5)));
        invocation
    };
    let response = channel
        .call(call("peer", crate::Serialization::Hessian2))
        .await
        .unwrap();
    let peer: Option<String> = hessian2::decode_reply(response.payload()).unwrap();
    assert!(peer.unwrap().starts_with("127.0.0.1:"));

    let error = channel
        .call(call("nope", crate::Serialization::Hessian2))
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(Status::ServiceNotFound), "{error}");
    assert!(error.message().contains("nope"), "{error}");
    assert_eq!(error.outcome(), Outcome::Remote);

    let error = channel
        .call(call("peer", crate::Serialization::Bincode))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Encode, "{error}");
    assert!(error.message().contains("hessian2"), "{error}");
    assert!(channel.ping(Duration::from_secs(5)).await);
    server.shutdown(Duration::from_secs(1)).await;
}

proptest::proptest! {
    /// Any bytes, and any corruption of a real Java request: an error or a
    /// request, never a panic.
    #[test]
    fn any_body_decodes_or_is_an_error(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
        let _ = DubboRequest::decode(&Bytes::from(bytes.clone()));
        let _ = hessian2::decode_reply::<Option<String>>(&bytes);
        let _ = DubboResponse::decode(20, Bytes::from(bytes));
    }

    #[test]
    fn corrupted_java_requests_decode_or_are_errors(at in 0usize..260, byte in proptest::num::u8::ANY) {
        let mut bytes = capture!("dubbo-placeOrder-ok-request.bin")[16..].to_vec();
        let at = at.min(bytes.len() - 1);
        bytes[at] = byte;
        if let Ok(request) = DubboRequest::decode(&Bytes::from(bytes)) {
            let _ = hessian2::decode_args::<(Order,)>(&request.args);
        }
    }
}

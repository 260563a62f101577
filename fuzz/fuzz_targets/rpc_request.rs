//! How a provider reads a native request body: `split_request` (what the
//! server calls), then the generated handler's `decode_args` into
//! representative argument tuples.
//!
//! Input: `[selector, body...]`; bit 0 of `selector` picks the serialization
//! (bincode or JSON).
//!
//! Checked: no panic; a meta that decodes re-encodes to a request that
//! decodes to the same meta and arguments (what a channel would send); arguments
//! that decode re-encode to the same value; undecodable arguments are a
//! provider `BadRequest` naming the service and method.

#![no_main]

use std::collections::BTreeMap;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use rpc_core::protocol::rpc::frame::{HEADER_LEN, OutFrame, split_request};
use rpc_core::service::handler::decode_args;
use rpc_core::{Invocation, Outcome, ServiceKey, Status};
use rpc_fuzz::Order;

/// Decodes the arguments as the generated handler of a method taking `A` does.
fn args<A>(invocation: &Invocation)
where
    A: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    match decode_args::<A>(invocation) {
        Ok(value) => {
            // The bare-value form of JSON is accepted too, so check the value
            // itself survives a round trip rather than the input bytes.
            let serialization = invocation.serialization();
            let encoded = serialization.encode(&value).expect("decoded arguments encode");
            let back: A = serialization.decode(&encoded).expect("re-encoded arguments decode");
            assert_eq!(back, value);
        }
        Err(e) => {
            assert_eq!(e.status(), Some(Status::BadRequest), "{e}");
            assert_eq!(e.outcome(), Outcome::Remote, "{e}");
            assert_eq!(e.service(), Some(invocation.service().to_string().as_str()), "{e}");
            assert_eq!(e.method(), Some(invocation.method()), "{e}");
            let _ = e.to_string();
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let [selector, body @ ..] = data else { return };
    let serialization = rpc_fuzz::serialization(*selector);
    let body = Bytes::copy_from_slice(body);
    let Ok((meta, args_bytes)) = split_request(serialization, &body) else {
        return;
    };
    // Sent again as a channel sends it, it reads back the same.
    let frame = OutFrame::request(1, true, serialization, &meta, args_bytes.clone()).expect("a decoded meta encodes");
    let mut again = bytes::BytesMut::new();
    frame.write_to(&mut again);
    let again = again.freeze().slice(HEADER_LEN..);
    let (meta_again, args_again) = split_request(serialization, &again).expect("a re-encoded request decodes");
    assert_eq!(meta_again, meta);
    assert_eq!(args_again, args_bytes);
    // What the server builds from the meta (its `on_frame`).
    let key = ServiceKey::new(&meta.service, meta.version.as_deref(), meta.group.as_deref());
    let mut invocation = Invocation::new(key, meta.method.clone().into_owned(), args_bytes, serialization);
    invocation.set_attachments(meta.attachments.into_owned());
    args::<()>(&invocation);
    args::<(String,)>(&invocation);
    args::<(String, u32)>(&invocation);
    args::<(Order,)>(&invocation);
    args::<(Vec<u8>, Option<i64>, BTreeMap<String, Vec<bool>>)>(&invocation);
});

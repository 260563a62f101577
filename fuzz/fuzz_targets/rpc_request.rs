//! How a provider reads a native request body: `split_request_view` (what
//! the server calls) and `split_request`, then the generated handler's
//! `decode_args` into representative argument tuples.
//!
//! Input: `[selector, body...]`; bit 0 of `selector` picks the serialization
//! (bincode or JSON).
//!
//! Checked: no panic; the borrowing and the owning split agree; arguments
//! that decode re-encode to the same value; undecodable arguments are a
//! provider `BadRequest` naming the service and method.

#![no_main]

use std::collections::BTreeMap;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use rpc_core::protocol::rpc::frame::{split_request, split_request_view};
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
    let view = split_request_view(serialization, &body);
    let owned = split_request(serialization, &body);
    let (meta, args_bytes) = match (view, owned) {
        (Ok((view, view_args)), Ok((owned, owned_args))) => {
            assert_eq!(view.service, owned.service.as_str());
            assert_eq!(view.version.as_deref(), owned.version.as_deref());
            assert_eq!(view.group.as_deref(), owned.group.as_deref());
            assert_eq!(view.method, owned.method.as_str());
            assert_eq!(view.timeout_ms, owned.timeout_ms);
            assert_eq!(view.attachments, owned.attachments);
            assert_eq!(view_args, owned_args);
            (view, view_args)
        }
        // Both refuse (their messages name their own meta types).
        (Err(_), Err(_)) => return,
        (view, owned) => panic!(
            "the borrowing and the owning split disagree: {:?} vs {:?}",
            view.map(|_| ()),
            owned.map(|_| ())
        ),
    };
    // What the server builds from the meta (its `on_frame`).
    let key = ServiceKey::new(&meta.service, meta.version.as_deref(), meta.group.as_deref());
    let mut invocation = Invocation::new(key, meta.method.clone().into_owned(), args_bytes, serialization);
    invocation.set_attachments(meta.attachments);
    args::<()>(&invocation);
    args::<(String,)>(&invocation);
    args::<(String, u32)>(&invocation);
    args::<(Order,)>(&invocation);
    args::<(Vec<u8>, Option<i64>, BTreeMap<String, Vec<bool>>)>(&invocation);
});

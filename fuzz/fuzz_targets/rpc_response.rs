//! What a consumer does with a native reply frame: the status byte decides
//! between a payload and an error; a payload is decoded as the method's
//! return type (`Response::decode`), an error body is read as UTF-8.
//!
//! Input: `[status, selector, body...]`; bit 0 of `selector` picks the
//! serialization (bincode or JSON).
//!
//! Checked: no panic; an OK reply keeps its body untouched; decoded values
//! survive a round trip; a mock's JSON literal (`Response::json`) decodes
//! like a JSON reply; any other status is a provider error carrying that
//! status and the body as (lossy) UTF-8.

#![no_main]

use std::collections::BTreeMap;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use rpc_core::fuzzing::rpc_reply;
use rpc_core::{ErrorKind, Response, Serialization, Status};
use rpc_fuzz::{Order, decode_round_trip};

/// Decodes the reply as a method returning `R` does.
fn reply<R>(response: &Response, serialization: Serialization)
where
    R: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let decoded = response.decode::<R>(serialization).ok();
    assert_eq!(decoded, decode_round_trip::<R>(serialization, response.payload()));
    // A mock's literal is JSON whatever the call's serialization.
    let json = Response::json(response.payload().clone())
        .decode::<R>(serialization)
        .ok();
    assert_eq!(json, Serialization::Json.decode::<R>(response.payload()).ok());
}

fuzz_target!(|data: &[u8]| {
    let [status, selector, body @ ..] = data else { return };
    let serialization = rpc_fuzz::serialization(*selector);
    let body = Bytes::copy_from_slice(body);
    match rpc_reply(*status, body.clone()) {
        Ok(response) => {
            assert_eq!(Status::from_code(*status), Status::Ok);
            assert_eq!(response.payload(), &body);
            assert!(!response.is_zero());
            reply::<()>(&response, serialization);
            reply::<String>(&response, serialization);
            reply::<u64>(&response, serialization);
            reply::<Option<Vec<String>>>(&response, serialization);
            reply::<Result<Order, String>>(&response, serialization);
            reply::<(BTreeMap<String, i64>, bool)>(&response, serialization);
        }
        Err(error) => {
            assert_ne!(Status::from_code(*status), Status::Ok);
            // A provider's refusal, with the status it sent (whose meaning
            // for retries, `Outcome`, the status decides).
            assert_eq!(error.kind(), ErrorKind::Remote(Status::from_code(*status)));
            assert_eq!(error.message(), String::from_utf8_lossy(&body));
            let _ = error.to_string();
        }
    }
});

//! [`Response`]: what a call answers, and how the stub reads it.

use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::error::RpcError;
use crate::serialization::Serialization;

/// A successful response: the encoded return value of the method.
///
/// For a method returning `Result<T, E>`, a business error is *inside* the
/// payload: it is a successful call.
///
/// Consumer layers that answer on behalf of a provider say how their answer
/// is to be read: [`Response::json`] (a mock's literal, decoded from JSON
/// whatever the call's serialization) or [`Response::zero_instead_of`] (the return
/// type's zero value, for the failsafe and failback policies).
#[derive(Clone, Debug, Default)]
pub struct Response {
    payload: Bytes,
    form: Form,
    /// Given by the consumer in place of a provider's answer.
    degraded: bool,
    /// The serialization of the payload when it is not the call's (an
    /// attempt sent with the call's alternate arguments).
    serialization: Option<Serialization>,
}

#[derive(Clone, Debug, Default)]
enum Form {
    /// Encoded with the call's serialization.
    #[default]
    Native,
    /// JSON, whatever the call's serialization.
    Json,
    /// No payload: the zero value of the return type, standing in for `error`.
    Zero(Box<RpcError>),
}

impl Response {
    /// A response carrying `payload`, encoded with the call's serialization.
    pub fn new(payload: Bytes) -> Self {
        Response {
            payload,
            form: Form::Native,
            degraded: false,
            serialization: None,
        }
    }

    /// Says that the payload is encoded with `serialization`, whatever the
    /// call's (the attempt went with the call's alternate arguments).
    pub fn with_serialization(mut self, serialization: Serialization) -> Self {
        self.serialization = Some(serialization);
        self
    }

    /// A response carrying `json`, to be decoded as JSON whatever the call's
    /// serialization (a mock's literal value).
    pub fn json(json: Bytes) -> Self {
        Response {
            payload: json,
            form: Form::Json,
            degraded: true,
            serialization: None,
        }
    }

    /// The zero value of the method's return type (built by the stub, which
    /// knows the type), answered instead of the failure `error` (failsafe,
    /// failback, an empty `return` mock): a success to the caller, marked
    /// degraded. The stub returns `error` after all when the return type has
    /// no zero value, so the failure travels with it.
    pub fn zero_instead_of(error: RpcError) -> Self {
        Response {
            payload: Bytes::new(),
            form: Form::Zero(Box::new(error)),
            degraded: true,
            serialization: None,
        }
    }

    /// This response, marked as given by the consumer in place of a
    /// provider's answer (a fallback implementation's).
    pub fn into_degraded(mut self) -> Self {
        self.degraded = true;
        self
    }

    /// Whether the consumer gave this response in place of a provider's
    /// answer: a mock's value, a fallback's, or a failsafe or failback zero.
    pub fn is_degraded(&self) -> bool {
        self.degraded
    }

    /// The encoded return value.
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// The encoded return value, owned.
    pub fn into_payload(self) -> Bytes {
        self.payload
    }

    /// Whether this response stands for the zero value instead of a reply.
    pub fn is_zero(&self) -> bool {
        matches!(self.form, Form::Zero(_))
    }

    /// Decodes the return value: from the payload with `serialization`, from
    /// JSON for a [`Response::json`], or the zero value for a [`Response::zero_instead_of`].
    pub fn decode<R: DeserializeOwned>(&self, serialization: Serialization) -> Result<R, DecodeFailure> {
        let serialization = self.serialization.unwrap_or(serialization);
        match &self.form {
            Form::Native if serialization == Serialization::Hessian2 => crate::hessian2::decode_reply(&self.payload)
                .map_err(|e| match e {
                    crate::hessian2::ReplyError::Exception(e) => {
                        DecodeFailure::Exception(format!("the provider threw {e}"))
                    }
                    crate::hessian2::ReplyError::Codec(e) => DecodeFailure::Reply(format!("hessian2: {e}")),
                }),
            Form::Native => serialization
                .decode(&self.payload)
                .map_err(|e| DecodeFailure::Reply(e.to_string())),
            Form::Json => Serialization::Json
                .decode(&self.payload)
                .map_err(|e| DecodeFailure::Json(e.to_string())),
            Form::Zero(error) => crate::stub::zero::zero_value().map_err(|zero| DecodeFailure::NoZero {
                error: (**error).clone(),
                reason: zero.to_string(),
            }),
        }
    }
}

/// Why [`Response::decode`] failed.
#[derive(Debug)]
pub enum DecodeFailure {
    /// The reply does not decode as the return type.
    Reply(String),
    /// The provider answered with an exception (Java's, over `dubbo`) that the
    /// return type has no place for: its class and message.
    Exception(String),
    /// A JSON literal (a mock's) does not decode as the return type.
    Json(String),
    /// The return type has no zero value; `error` is what the zero stood for.
    NoZero {
        /// The failure the zero value would have replaced.
        error: RpcError,
        /// Why the type has no zero value.
        reason: String,
    },
}

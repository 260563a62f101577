//! Greeter API.

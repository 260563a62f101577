//! Misuse of `#[service]` fails to compile, with a message at the user's own
//! code that says what to do. The messages are pinned in
//! `tests/compile_fail/*.stderr` (regenerate with `TRYBUILD=overwrite`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

#[test]
fn misuse_is_reported_at_the_offending_code() {
    trybuild::TestCases::new().compile_fail("tests/compile_fail/*.rs");
}

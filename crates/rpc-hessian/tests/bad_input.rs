//! Hostile and broken input: every case is a clear error with a byte offset, never a
//! panic, and never an allocation sized by a length the input cannot back (one sized
//! by a claimed 2^31 elements would abort this test process).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use rpc_hessian::{Decoder, Encoder, Error, Value, from_slice, to_vec};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

/// Decodes `input` as a `Value`, which must fail.
fn decode_err(input: &[u8]) -> Error {
    match from_slice::<Value>(input) {
        Ok(v) => panic!("{input:02x?} decoded as {v:?}"),
        Err(e) => e,
    }
}

fn invalid(input: &[u8], offset: usize, needle: &str) {
    let e = decode_err(input);
    match &e {
        Error::Invalid { offset: at, message } => {
            assert_eq!(*at, offset, "{e}");
            assert!(message.contains(needle), "{e} does not say {needle:?}");
        }
        other => panic!("{input:02x?}: expected Invalid at {offset}, got {other:?}"),
    }
}

#[test]
fn truncated_input_says_what_was_missing_and_where() {
    let e = decode_err(&[b'I', 0, 0]);
    assert!(
        matches!(
            e,
            Error::Truncated {
                offset: 3,
                expected: "an int"
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("byte 3"), "{e}");

    // Every proper prefix of a message with every kind of value fails cleanly.
    #[derive(Serialize)]
    struct Order {
        item: String,
        tags: Vec<String>,
        price: i64,
        rate: f64,
    }
    let mut message = Vec::new();
    let mut e = Encoder::with_package(&mut message, "org.example");
    e.write(&Order {
        item: "tea 😀".into(),
        tags: vec!["a".into(); 9],
        price: i64::MAX,
        rate: 0.1,
    })
    .unwrap();
    e.write(&std::collections::BTreeMap::from([(1, "x".repeat(40))]))
        .unwrap();
    e.write(&Value::Date(1)).unwrap();
    e.write(&Value::Binary(vec![7; 2000])).unwrap();
    e.write(&"s".repeat(40_000)).unwrap();
    let values = |input: &[u8]| -> Result<usize, Error> {
        let mut d = Decoder::new(input);
        for _ in 0..5 {
            d.read::<Value>()?;
        }
        Ok(d.position())
    };
    assert_eq!(values(&message).unwrap(), message.len());
    for len in (0..message.len()).filter(|n| *n < 3000 || n % 97 == 0) {
        match values(&message[..len]) {
            Err(Error::Truncated { offset, .. }) => assert!(offset <= len, "{len}: {offset}"),
            // A length that the rest of the input cannot hold is refused up front.
            Err(Error::Invalid { offset, message }) if message.contains("bytes remain") => {
                assert!(offset < len, "{len}: {offset}")
            }
            other => panic!("prefix of {len} bytes: {other:?}"),
        }
    }
}

#[test]
fn unknown_class_definition_type_and_reference_indices_are_errors() {
    invalid(&[0x60], 0, "class definition #0, but only 0");
    invalid(&[b'O', 0x95], 0, "class definition #5");
    // A class with one field, then an object of class #1.
    invalid(
        &[b'C', 1, b'A', 0x91, 1, b'x', 0x61, b'N'],
        6,
        "class definition #1, but only 1",
    );
    invalid(&[b'Q', 0x90], 0, "reference #0, but only 0");
    invalid(&[0x79, b'Q', 0x91], 1, "reference #1, but only 1");
    invalid(&[0x71, 0x95, b'N'], 1, "type reference #5");
    invalid(&[0x40], 0, "unknown tag 0x40");
    invalid(b"Z", 0, "unexpected end marker");
    invalid(b"NN", 1, "1 bytes after the value");
}

#[test]
fn huge_lengths_are_refused_before_allocating() {
    let i32_max = [b'I', 0x7f, 0xff, 0xff, 0xff];
    let cases: Vec<(Vec<u8>, usize, &str)> = vec![
        (
            [&[0x58][..], &i32_max].concat(),
            1,
            "claims 2147483647 items but only 0 bytes remain",
        ),
        (
            [&[b'V', 0x04, b'[', b'i', b'n', b't'][..], &i32_max].concat(),
            6,
            "claims 2147483647",
        ),
        ([&[0x58][..], &[b'I', 0x80, 0, 0, 0]].concat(), 1, "negative"),
        (vec![b'B', 0xff, 0xff, 1, 2], 0, "binary data claims 65535"),
        (vec![b'S', 0xff, 0xff, b'a'], 0, "a string claims 65535"),
        (
            vec![b'R', 0x00, 0x01, b'a', b'S', 0xff, 0xff],
            4,
            "a string claims 65535",
        ),
        ([&[b'C', 1, b'A'][..], &i32_max].concat(), 3, "field count"),
    ];
    for (input, offset, needle) in cases {
        invalid(&input, offset, needle);
    }
}

fn nested(open: &[u8], depth: usize, close: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    for _ in 0..depth {
        v.extend_from_slice(open);
    }
    v.push(b'N');
    for _ in 0..depth {
        v.extend_from_slice(close);
    }
    v
}

#[test]
fn deep_nesting_is_refused_not_a_stack_overflow() {
    // On a thread with half the stack of a tokio worker (2 MiB), in a debug build: the
    // limit leaves room for the caller's own frames.
    std::thread::Builder::new()
        .stack_size(1024 * 1024)
        .spawn(deep_nesting)
        .unwrap()
        .join()
        .unwrap();
}

fn deep_nesting() {
    let depth = rpc_hessian::MAX_DEPTH;
    // Lists of one element, maps of one entry, objects of one field: at the limit they
    // read; one level deeper (or a million) is an error.
    let object_prefix = [b'C', 1, b'A', 0x91, 1, b'x'];
    for (open, close) in [
        (&[0x79u8][..], &[][..]),
        (&[b'H', b'N'][..], &[b'Z'][..]),
        (&[0x60][..], &[][..]),
    ] {
        let prefix: &[u8] = if open == [0x60] { &object_prefix } else { &[] };
        let ok = [prefix, &nested(open, depth, close)].concat();
        from_slice::<Value>(&ok).unwrap();
        from_slice::<IgnoredAny>(&ok).unwrap();
        for too_deep in [depth + 1, 1_000_000] {
            let bad = [prefix, &nested(open, too_deep, close)].concat();
            let e = decode_err(&bad);
            assert!(e.to_string().contains("nested deeper than"), "{e}");
            let e = from_slice::<IgnoredAny>(&bad).unwrap_err();
            assert!(e.to_string().contains("nested deeper than"), "{e}");
        }
    }
    // Writing refuses too deep a value instead of overflowing the stack.
    let mut v = Value::Null;
    for _ in 0..depth / 2 {
        // Two levels each: an object holding a typed list.
        v = Value::Object {
            class: "A".into(),
            fields: vec![(
                "x".into(),
                Value::List {
                    r#type: Some("[object".into()),
                    items: vec![v],
                },
            )],
        };
    }
    assert_eq!(from_slice::<Value>(&to_vec(&v).unwrap()).unwrap(), v);
    let v = Value::List {
        r#type: None,
        items: vec![v],
    };
    assert!(matches!(to_vec(&v), Err(Error::Unsupported(m)) if m.contains("nesting deeper")));
}

#[test]
fn invalid_utf8_and_unpaired_surrogates_are_errors() {
    invalid(&[0x01, 0xff], 1, "invalid UTF-8 lead byte 0xff");
    invalid(&[0x01, 0x80], 1, "invalid UTF-8 lead byte 0x80");
    invalid(&[0x01, 0xc3, 0x28], 1, "invalid UTF-8 sequence");
    invalid(&[0x01, 0xed, 0xa0, 0xbd], 1, "unpaired surrogate U+D83D");
    invalid(&[0x01, 0xed, 0xb8, 0x80], 1, "unpaired surrogate U+DE00");
    invalid(&[0x02, 0xed, 0xa0, 0xbd, b'a'], 1, "unpaired surrogate U+D83D");
    // A pair split across two chunks is fine, as Java may write it.
    assert_eq!(
        from_slice::<String>(&[b'R', 0, 1, 0xed, 0xa0, 0xbd, 0x01, 0xed, 0xb8, 0x80]).unwrap(),
        "😀"
    );
    // So is the 4-byte UTF-8 form (two UTF-16 units).
    assert_eq!(from_slice::<String>(&[0x02, 0xf0, 0x9f, 0x98, 0x80]).unwrap(), "😀");
}

#[test]
fn references_cannot_expand_without_bound() {
    // List k holds 7 references to list k-1: reading list 30 would produce 7^30 values.
    let mut input = vec![b'X', 0x9f]; // the outer list of 31 lists, reference #0
    input.extend_from_slice(&[0x7f, b'N', b'N', b'N', b'N', b'N', b'N', b'N']); // list 0 = #1
    for k in 1..31u8 {
        input.push(0x7f);
        for _ in 0..7 {
            input.extend_from_slice(&[b'Q', 0x90 + k]); // #k = list k-1
        }
    }
    let e = decode_err(&input);
    assert!(e.to_string().contains("back-references expand the input"), "{e}");
}

#[test]
fn a_cycle_reads_as_null() {
    // An object of class A whose field `me` refers to the object itself.
    let input = [b'C', 1, b'A', 0x91, 2, b'm', b'e', 0x60, b'Q', 0x90];
    let v = from_slice::<Value>(&input).unwrap();
    assert_eq!(
        v,
        Value::Object {
            class: "A".into(),
            fields: vec![("me".into(), Value::Null)]
        }
    );
    #[derive(Deserialize, Debug)]
    struct A {
        me: Option<Box<A>>,
    }
    assert!(from_slice::<A>(&input).unwrap().me.is_none());
    from_slice::<IgnoredAny>(&input).unwrap();
}

#[test]
fn values_that_do_not_fit_the_rust_type_say_where() {
    #[derive(Deserialize, Debug)]
    #[allow(dead_code)]
    struct Order {
        item: String,
        quantity: i32,
    }
    // [int 1, object Order{item: "x"}] read as (i32, Order): `quantity` is missing.
    let input = [
        0x7a, 0x91, b'C', 5, b'O', b'r', b'd', b'e', b'r', 0x91, 4, b'i', b't', b'e', b'm', 0x60, 1, b'x',
    ];
    let e = from_slice::<(i32, Order)>(&input).unwrap_err();
    assert!(
        matches!(&e, Error::Mismatch { offset: 15, message } if message.contains("missing field `quantity`")),
        "{e:?}"
    );
    let e = from_slice::<i32>(&[0x01, b'a']).unwrap_err();
    assert!(matches!(&e, Error::Mismatch { offset: 0, .. }), "{e:?}");
    let e = from_slice::<i32>(&[b'L', 0, 0, 0, 1, 0, 0, 0, 0]).unwrap_err();
    assert!(e.to_string().contains("4294967296"), "{e}");
}

#[test]
fn what_has_no_java_form_is_refused_on_write() {
    #[derive(Serialize)]
    enum Shape {
        Circle(f64),
        Square { side: f64 },
        Pair(i32, i32),
    }
    for (shape, variant) in [
        (Shape::Circle(1.0), "Circle"),
        (Shape::Square { side: 1.0 }, "Square"),
        (Shape::Pair(1, 2), "Pair"),
    ] {
        match to_vec(&shape) {
            Err(Error::Unsupported(m)) => assert!(m.contains("enum Shape") && m.contains(variant), "{m}"),
            other => panic!("{other:?}"),
        }
    }
    assert!(matches!(to_vec(&u64::MAX), Err(Error::Unsupported(m)) if m.contains("above i64::MAX")));
    assert_eq!(
        from_slice::<i64>(&to_vec(&(i64::MAX as u64)).unwrap()).unwrap(),
        i64::MAX
    );

    // A Java enum constant cannot fill a data-carrying variant.
    #[derive(Deserialize, Debug)]
    #[allow(dead_code)]
    enum Data {
        Circle(f64),
    }
    let e = from_slice::<Data>(&[0x06, b'C', b'i', b'r', b'c', b'l', b'e']).unwrap_err();
    assert!(e.to_string().contains("enum Data: variant Circle carries data"), "{e}");
}

mod random_input {
    use proptest::prelude::*;
    use rpc_hessian::{Decoder, Encoder, Error, Value};
    use serde::de::IgnoredAny;
    use std::collections::BTreeMap;

    /// Reads up to 4 values of several Rust types; any outcome but a panic is fine,
    /// and every error names an offset inside the input (or its end).
    fn read_all(input: &[u8]) {
        for which in 0..4 {
            let mut d = Decoder::new(input);
            for _ in 0..4 {
                let result = match which {
                    0 => d.read::<Value>().map(drop),
                    1 => d.read::<IgnoredAny>().map(drop),
                    2 => d.read::<Vec<Option<String>>>().map(drop),
                    _ => d.read::<BTreeMap<String, (i64, f64, Vec<u8>)>>().map(drop),
                };
                match result {
                    Ok(()) => {}
                    Err(
                        Error::Truncated { offset, .. }
                        | Error::Invalid { offset, .. }
                        | Error::Mismatch { offset, .. },
                    ) => {
                        assert!(offset <= input.len(), "offset {offset} beyond {}", input.len());
                        break;
                    }
                    Err(other) => panic!("unexpected error kind: {other:?}"),
                }
            }
        }
    }

    fn sample() -> Vec<u8> {
        let mut message = Vec::new();
        let mut e = Encoder::with_package(&mut message, "org.example");
        let order = Value::Object {
            class: "org.example.Order".into(),
            fields: vec![
                ("item".into(), Value::String("tea 😀".into())),
                (
                    "tags".into(),
                    Value::List {
                        r#type: Some("java.util.List".into()),
                        items: vec![Value::Int(1), Value::Long(1 << 40), Value::Double(1.5)],
                    },
                ),
                (
                    "attrs".into(),
                    Value::Map {
                        r#type: None,
                        entries: vec![(Value::String("k".into()), Value::Date(60_000))],
                    },
                ),
            ],
        };
        e.write(&order).unwrap();
        e.write(&order).unwrap();
        e.write(&Value::Binary(vec![1; 40])).unwrap();
        // Back-references: Java writes them, we do not; add one by hand (to object #0).
        message.extend_from_slice(&[b'Q', 0x90]);
        message
    }

    #[test]
    fn the_sample_to_mutate_is_valid() {
        let input = sample();
        let mut d = Decoder::new(&input);
        let values: Vec<Value> = (0..4).map(|_| d.read().unwrap()).collect();
        assert!(d.is_at_end());
        assert_eq!(values[3], values[0], "the back-reference reads the first object again");
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        #[test]
        fn random_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..200)) {
            read_all(&input);
        }

        #[test]
        fn mutated_messages_never_panic(
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut input = sample();
            for (at, byte) in edits {
                let i = at.index(input.len());
                input[i] = byte;
            }
            read_all(&input);
            read_all(&input[..cut.index(input.len())]);
        }
    }
}

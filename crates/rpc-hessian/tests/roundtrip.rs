//! Property tests: whatever we write, we read back the same (values, derived structs,
//! enums, options, sequences, maps, strings with non-BMP characters, extreme numbers),
//! including several values sharing one message.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::collections::BTreeMap;

use proptest::prelude::*;
use rpc_hessian::{Date, Decoder, Encoder, Value, from_slice, to_vec};
use serde::{Deserialize, Serialize};

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(Value::Int),
        prop_oneof![any::<i64>(), Just(i64::MIN), Just(i64::MAX), -300_000i64..300_000].prop_map(Value::Long),
        prop_oneof![
            any::<f64>(),
            Just(-0.0),
            Just(f64::NAN),
            Just(f64::MAX),
            Just(f64::MIN_POSITIVE),
            (-40_000i32..40_000).prop_map(|m| f64::from(m) * 0.001)
        ]
        .prop_map(Value::Double),
        any::<i64>().prop_map(Value::Date),
        any::<String>().prop_map(Value::String),
        "[a😀𝄞é中\u{ffff}\u{10000}]{0,40}".prop_map(Value::String),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(Value::Binary),
    ]
}

fn java_name() -> impl Strategy<Value = String> {
    "[a-z]{1,6}(\\.[A-Za-z$\\[]{1,8}){0,3}"
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(5, 64, 10, |inner| {
        prop_oneof![
            (
                proptest::option::of(java_name()),
                proptest::collection::vec(inner.clone(), 0..10)
            )
                .prop_map(|(r#type, items)| Value::List { r#type, items }),
            (
                proptest::option::of(java_name()),
                proptest::collection::vec((inner.clone(), inner.clone()), 0..6)
            )
                .prop_map(|(r#type, entries)| Value::Map { r#type, entries }),
            (java_name(), proptest::collection::vec(("[a-zA-Z_]{1,8}", inner), 0..6))
                .prop_map(|(class, fields)| Value::Object { class, fields }),
        ]
    })
}

/// Equality that tells NaN from NaN-free values and -0.0 from 0.0 (f64's Debug does).
fn same<T: std::fmt::Debug>(a: &T, b: &T) -> bool {
    format!("{a:?}") == format!("{b:?}")
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "UPPERCASE")]
enum Color {
    Red,
    Green,
    Blue,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename = "org.example.Item")]
struct Item {
    name: String,
    count: i32,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    note: Option<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Everything {
    small: (i8, i16, u8, u16),
    int: i32,
    long: i64,
    unsigned: (u32, u64),
    float: f32,
    double: f64,
    flag: bool,
    letter: char,
    text: String,
    maybe: Option<String>,
    ints: Vec<i32>,
    longs: BTreeMap<String, i64>,
    items: Vec<Item>,
    color: Color,
    colors: Vec<Color>,
    nested: Option<Box<Item>>,
    pair: (i32, String),
    when: Date,
    unit: (),
}

fn item() -> impl Strategy<Value = Item> {
    (any::<String>(), any::<i32>(), proptest::option::of("[😀a-z]{0,5}")).prop_map(|(name, count, note)| Item {
        name,
        count,
        note,
    })
}

fn color() -> impl Strategy<Value = Color> {
    prop_oneof![Just(Color::Red), Just(Color::Green), Just(Color::Blue)]
}

fn everything() -> impl Strategy<Value = Everything> {
    (
        (
            any::<(i8, i16, u8, u16)>(),
            any::<i32>(),
            any::<i64>(),
            any::<u32>(),
            0..=i64::MAX as u64,
        ),
        (
            any::<f32>(),
            any::<f64>(),
            any::<bool>(),
            any::<char>(),
            any::<String>(),
        ),
        (
            proptest::option::of(any::<String>()),
            proptest::collection::vec(any::<i32>(), 0..20),
            proptest::collection::btree_map(any::<String>(), any::<i64>(), 0..5),
            proptest::collection::vec(item(), 0..5),
        ),
        (
            color(),
            proptest::collection::vec(color(), 0..5),
            proptest::option::of(item().prop_map(Box::new)),
            any::<(i32, String)>(),
            any::<i64>(),
        ),
    )
        .prop_map(
            |(
                (small, int, long, u32_, u64_),
                (float, double, flag, letter, text),
                (maybe, ints, longs, items),
                (color, colors, nested, pair, when),
            )| Everything {
                small,
                int,
                long,
                unsigned: (u32_, u64_),
                float,
                double,
                flag,
                letter,
                text,
                maybe,
                ints,
                longs,
                items,
                color,
                colors,
                nested,
                pair,
                when: Date(when),
                unit: (),
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn a_value_reads_back_the_same(v in value()) {
        let bytes = to_vec(&v).unwrap();
        let back: Value = from_slice(&bytes).unwrap();
        prop_assert!(same(&v, &back), "{v:?}\n{back:?}");
    }

    #[test]
    fn values_sharing_one_message_read_back_the_same(values in proptest::collection::vec(value(), 1..6)) {
        let mut message = Vec::new();
        let mut encoder = Encoder::with_package(&mut message, "org.example");
        for v in &values {
            encoder.write(v).unwrap();
        }
        let mut decoder = Decoder::new(&message);
        for v in &values {
            let back: Value = decoder.read().unwrap();
            prop_assert!(same(v, &back), "{v:?}\n{back:?}");
        }
        prop_assert!(decoder.is_at_end());
    }

    #[test]
    fn derived_types_read_back_the_same(values in proptest::collection::vec(everything(), 1..4)) {
        let mut message = Vec::new();
        let mut encoder = Encoder::with_package(&mut message, "org.example");
        for v in &values {
            encoder.write(v).unwrap();
        }
        let mut decoder = Decoder::new(&message);
        for v in &values {
            let back: Everything = decoder.read().unwrap();
            prop_assert!(same(v, &back), "{v:?}\n{back:?}");
        }
        // The same bytes also read as Values, with the Java class names of the structs.
        let mut decoder = Decoder::new(&message);
        let first: Value = decoder.read().unwrap();
        let is_everything = matches!(&first, Value::Object { class, .. } if class == "org.example.Everything");
        prop_assert!(is_everything, "{:?}", first);
        let is_color = matches!(
            first.field("color"),
            Some(Value::Object { class, .. }) if class == "org.example.Color"
        );
        prop_assert!(is_color, "{:?}", first);
    }

    #[test]
    fn strings_count_utf16_units(s in any::<String>()) {
        let bytes = to_vec(&s).unwrap();
        prop_assert_eq!(from_slice::<String>(&bytes).unwrap(), s.clone());
        // Java writes a non-BMP character as two 3-byte surrogates: so do we.
        prop_assert!(!bytes.iter().any(|b| *b >= 0xf0 && *b <= 0xf4) || s.chars().all(|c| (c as u32) < 0x10000));
    }
}

#[test]
fn long_strings_and_binary_are_chunked_and_read_back() {
    for units in [0x7fff, 0x8000, 0x8001, 0x10000, 100_000] {
        let mut s = "é".repeat(units - 2);
        s.push('😀');
        assert_eq!(s.chars().map(char::len_utf16).sum::<usize>(), units);
        let bytes = to_vec(&s).unwrap();
        assert_eq!(from_slice::<String>(&bytes).unwrap(), s);
        let blob = Value::Binary((0..units).map(|i| i as u8).collect());
        assert_eq!(from_slice::<Value>(&to_vec(&blob).unwrap()).unwrap(), blob);
    }
}

#[test]
fn a_class_definition_is_written_once_per_message_and_per_field_list() {
    let with_note = Item {
        name: "a".into(),
        count: 1,
        note: Some("n".into()),
    };
    let without = Item {
        note: None,
        ..with_note.clone()
    };
    let mut message = Vec::new();
    let mut encoder = Encoder::new(&mut message);
    for item in [&with_note, &without, &with_note, &without] {
        encoder.write(item).unwrap();
    }
    let definitions = message.windows(17).filter(|w| *w == b"\x10org.example.Item").count();
    // Two field lists (with and without `note`), each defined once.
    assert_eq!(definitions, 2, "{message:02x?}");
    let mut decoder = Decoder::new(&message);
    for item in [&with_note, &without, &with_note, &without] {
        assert_eq!(&decoder.read::<Item>().unwrap(), item);
    }
}

#[test]
fn struct_names_take_the_default_package_unless_dotted() {
    #[derive(Serialize)]
    struct Plain {
        x: i32,
    }
    let class = |bytes: Vec<u8>| match from_slice::<Value>(&bytes).unwrap() {
        Value::Object { class, .. } => class,
        other => panic!("{other:?}"),
    };
    let mut out = Vec::new();
    Encoder::with_package(&mut out, "org.example")
        .write(&Plain { x: 1 })
        .unwrap();
    assert_eq!(class(out), "org.example.Plain");
    assert_eq!(class(to_vec(&Plain { x: 1 }).unwrap()), "Plain");
    let item = Item {
        name: String::new(),
        count: 0,
        note: None,
    };
    let mut out = Vec::new();
    Encoder::with_package(&mut out, "com.other").write(&item).unwrap();
    assert_eq!(class(out), "org.example.Item");
}

#[test]
fn more_than_sixteen_classes_use_the_long_object_form() {
    let objects: Vec<Value> = (0..40)
        .map(|i| Value::Object {
            class: format!("org.example.C{i}"),
            fields: vec![("n".into(), Value::Int(i))],
        })
        .collect();
    let mut message = Vec::new();
    let mut encoder = Encoder::new(&mut message);
    for o in objects.iter().chain(&objects) {
        encoder.write(o).unwrap();
    }
    // The second round refers to the definitions: `O` + index from the 17th class on.
    assert!(message.windows(2).any(|w| w == [b'O', 0x90 + 16]), "{message:02x?}");
    let mut decoder = Decoder::new(&message);
    for o in objects.iter().chain(&objects) {
        assert_eq!(&decoder.read::<Value>().unwrap(), o);
    }
}

#[test]
fn a_replayed_reference_defines_no_class_or_type_twice() {
    // [list ["[int" list [1]]], a reference to that list, a typed list defining type #1
    // ("x"), and a typed list naming type #1: it must be "x".
    let mut types = vec![0x79, 0x71, 0x04, b'[', b'i', b'n', b't', 0x91];
    types.extend_from_slice(&[b'Q', 0x90, 0x70, 0x01, b'x', 0x70, 0x91]);
    let mut d = Decoder::new(&types);
    let first: Value = d.read().unwrap();
    assert_eq!(d.read::<Value>().unwrap(), first);
    d.read::<Value>().unwrap();
    let last: Value = d.read().unwrap();
    assert_eq!(
        last,
        Value::List {
            r#type: Some("x".into()),
            items: vec![]
        }
    );
    // The same for class definitions: [list [A{f: null}]], a reference to it, class B
    // (definition #1) and an object of class #1.
    let classes = [
        0x79, b'C', 0x01, b'A', 0x91, 0x01, b'f', 0x60, b'N', b'Q', 0x90, b'C', 0x01, b'B', 0x90, 0x61,
    ];
    let mut d = Decoder::new(&classes);
    let first: Value = d.read().unwrap();
    assert_eq!(d.read::<Value>().unwrap(), first);
    assert_eq!(
        d.read::<Value>().unwrap(),
        Value::Object {
            class: "B".into(),
            fields: vec![]
        }
    );
    assert!(d.is_at_end());
}

#[test]
fn finding_a_struct_s_fields_does_not_walk_sequences() {
    // Before writing a value the encoder asks it (one level deep) whether it is a
    // struct, for its field names; a sequence's elements must not be visited for that.
    struct Counted<'a>(&'a std::cell::Cell<usize>);
    impl Serialize for Counted<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            self.0.set(self.0.get() + 1);
            s.serialize_str("x")
        }
    }
    let calls = std::cell::Cell::new(0);
    let items: Vec<Counted<'_>> = (0..100).map(|_| Counted(&calls)).collect();
    let bytes = to_vec(&items).unwrap();
    assert_eq!(from_slice::<Vec<String>>(&bytes).unwrap(), vec!["x"; 100]);
    // Each element: once asked whether it is a struct, once written.
    assert_eq!(calls.get(), 200);
}

#[test]
fn strings_and_binary_in_one_chunk_can_be_borrowed() {
    #[derive(Deserialize, Debug, PartialEq)]
    struct Borrowed<'a> {
        name: &'a str,
        data: &'a [u8],
    }
    let message = to_vec(&Value::Object {
        class: "B".into(),
        fields: vec![
            ("name".into(), Value::String("héllo 中".into())),
            ("data".into(), Value::Binary(vec![1, 2, 3])),
        ],
    })
    .unwrap();
    let b: Borrowed<'_> = from_slice(&message).unwrap();
    assert_eq!(
        b,
        Borrowed {
            name: "héllo 中",
            data: &[1, 2, 3]
        }
    );
    // A non-BMP character is two 3-byte surrogates on the wire: not borrowable, but a
    // String reads it.
    let message = to_vec("😀").unwrap();
    assert!(from_slice::<&str>(&message).is_err());
    assert_eq!(from_slice::<String>(&message).unwrap(), "😀");
}

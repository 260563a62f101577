//! Golden bytes: Caucho's Hessian (Debian's libhessian-java 4.0.38) wrote
//! `tests/golden/*.hessian` with `tests/java/Golden.java`; we must read each file into
//! the values Java wrote, and Caucho must read back what we write for the same values.
//! The Java side of the second test needs `java`, `javac` and the jar: it fails (never
//! skips) with the install command when they are missing.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use rpc_hessian::{Date, Decoder, Encoder, Error, Value};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
#[serde(rename = "org.example.Order")]
struct Order {
    item: String,
    quantity: i32,
    price: i64,
    tags: Vec<String>,
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone, Copy)]
#[serde(rename = "Color", rename_all = "UPPERCASE")]
enum Color {
    Red,
    Green,
    Blue,
}

/// What a Java exception looks like to a typed reader.
#[derive(Deserialize, Debug)]
struct JavaThrowable {
    #[serde(rename = "detailMessage")]
    detail_message: Option<String>,
    cause: Option<Box<JavaThrowable>>,
    #[serde(rename = "stackTrace")]
    stack_trace: Vec<Value>,
}

/// Writes its bytes as Hessian binary (what `serde_bytes` does).
struct Bytes(Vec<u8>);

impl Serialize for Bytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

const INTS: [i32; 16] = [
    0,
    1,
    -16,
    47,
    48,
    -17,
    -2048,
    2047,
    2048,
    -2049,
    -262_144,
    262_143,
    262_144,
    -262_145,
    i32::MIN,
    i32::MAX,
];

const LONGS: [i64; 19] = [
    0,
    -8,
    15,
    16,
    -9,
    -2048,
    2047,
    2048,
    -2049,
    -262_144,
    262_143,
    262_144,
    -262_145,
    i32::MIN as i64,
    i32::MAX as i64,
    i32::MAX as i64 + 1,
    i32::MIN as i64 - 1,
    i64::MIN,
    i64::MAX,
];

const DOUBLES: [f64; 18] = [
    0.0,
    1.0,
    -1.0,
    127.0,
    -128.0,
    128.0,
    32767.0,
    -32768.0,
    32768.0,
    1.5,
    12.25,
    0.001,
    1e300,
    -0.0,
    f64::NAN,
    f64::INFINITY,
    f64::NEG_INFINITY,
    std::f64::consts::PI,
];

fn strings() -> Vec<String> {
    vec![
        String::new(),
        "hello".into(),
        "a".repeat(31),
        "a".repeat(32),
        "b".repeat(1023),
        "b".repeat(1024),
        "héllo wörld ☃ 中文".into(),
        "😀 𝄞 non-BMP".into(),
    ]
}

/// The same 70000-unit string as `Golden.longString()`.
fn long_string() -> String {
    let mut s = "x".repeat(0x7fff);
    s.push('😀');
    let units = |s: &str| s.chars().map(char::len_utf16).sum::<usize>();
    while units(&s) < 69_990 {
        s.push_str("abcé中");
    }
    s.push_str("𝄞 end");
    s
}

fn bytes(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7) as u8).collect()
}

fn tea() -> Order {
    Order {
        item: "tea".into(),
        quantity: 2,
        price: 350,
        tags: vec!["hot".into(), "green".into()],
    }
}

fn cake() -> Order {
    Order {
        item: "cake".into(),
        quantity: 1,
        price: 1_200_000_000_000,
        tags: vec![],
    }
}

fn ten() -> Vec<String> {
    (0..10).map(|i| format!("s{i}")).collect()
}

fn three() -> BTreeMap<String, i32> {
    [("one", 1), ("two", 2), ("three", 3)]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
}

const CASES: [&str; 16] = [
    "null",
    "bool",
    "int",
    "long",
    "double",
    "string",
    "string_long",
    "binary",
    "binary_large",
    "list_string",
    "int_array",
    "map",
    "order",
    "order_list",
    "color",
    "date",
];

/// Our encoding of each case, with typed Rust values (the Java program's values).
fn encode(case: &str) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    let mut e = Encoder::with_package(&mut out, "org.example");
    match case {
        "null" => e.write(&None::<String>)?,
        "bool" => {
            e.write(&true)?;
            e.write(&false)?;
        }
        "int" => INTS.iter().try_for_each(|v| e.write(v))?,
        "long" => LONGS.iter().try_for_each(|v| e.write(v))?,
        "double" => DOUBLES.iter().try_for_each(|v| e.write(v))?,
        "string" => strings().iter().try_for_each(|v| e.write(v))?,
        "string_long" => e.write(&long_string())?,
        "binary" => [0, 15, 16, 1023, 1024]
            .iter()
            .try_for_each(|n| e.write(&Bytes(bytes(*n))))?,
        "binary_large" => e.write(&Bytes(bytes(100_000)))?,
        "list_string" => {
            e.write(&["a", "b", "c"])?;
            e.write(&Vec::<String>::new())?;
            e.write(&ten())?;
        }
        "int_array" => {
            e.write(&vec![1, 2, 3])?;
            e.write(&(0..10).collect::<Vec<i32>>())?;
            e.write(&Vec::<i32>::new())?;
        }
        "map" => e.write(&three())?,
        "order" => [tea(), cake(), tea()].iter().try_for_each(|v| e.write(v))?,
        "order_list" => e.write(&vec![tea(), tea()])?,
        "color" => [Color::Red, Color::Green, Color::Red]
            .iter()
            .try_for_each(|v| e.write(v))?,
        "date" => {
            e.write(&Date(1_700_000_000_123))?;
            e.write(&Date(1_700_000_040_000))?;
        }
        other => panic!("no case {other}"),
    }
    Ok(out)
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn golden(case: &str) -> Vec<u8> {
    let path = golden_dir().join(format!("{case}.hessian"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Reads every value of a golden file as the Rust type the case names, checks it, and
/// checks that the whole file was read.
fn check_golden(case: &str) {
    let input = golden(case);
    let mut d = Decoder::new(&input);
    match case {
        "null" => assert_eq!(d.read::<Option<String>>().unwrap(), None),
        "bool" => {
            assert!(d.read::<bool>().unwrap());
            assert!(!d.read::<bool>().unwrap());
        }
        "int" => {
            for v in INTS {
                assert_eq!(d.read::<i32>().unwrap(), v);
            }
        }
        "long" => {
            for v in LONGS {
                assert_eq!(d.read::<i64>().unwrap(), v);
            }
        }
        "double" => {
            for v in DOUBLES {
                let got = d.read::<f64>().unwrap();
                if v.is_nan() {
                    assert!(got.is_nan());
                } else if v == 0.0 {
                    // Caucho writes -0.0 as its 0.0 byte: the sign is lost on the Java side.
                    assert_eq!(got.to_bits(), 0.0f64.to_bits());
                } else {
                    assert_eq!(got.to_bits(), v.to_bits(), "{v}");
                }
            }
        }
        "string" => {
            for v in strings() {
                assert_eq!(d.read::<String>().unwrap(), v);
            }
        }
        "string_long" => assert!(d.read::<String>().unwrap() == long_string()),
        "binary" => {
            for n in [0, 15, 16, 1023, 1024] {
                assert_eq!(d.read::<Vec<u8>>().unwrap(), bytes(n));
            }
        }
        "binary_large" => assert!(d.read::<Vec<u8>>().unwrap() == bytes(100_000)),
        "list_string" => {
            assert_eq!(d.read::<Vec<String>>().unwrap(), ["a", "b", "c"]);
            assert!(d.read::<Vec<String>>().unwrap().is_empty());
            assert_eq!(d.read::<Vec<String>>().unwrap(), ten());
        }
        "int_array" => {
            assert_eq!(d.read::<Vec<i32>>().unwrap(), [1, 2, 3]);
            assert_eq!(d.read::<Vec<i32>>().unwrap(), (0..10).collect::<Vec<_>>());
            assert!(d.read::<Vec<i32>>().unwrap().is_empty());
        }
        "map" => assert_eq!(d.read::<BTreeMap<String, i32>>().unwrap(), three()),
        "order" => {
            assert_eq!(d.read::<Order>().unwrap(), tea());
            assert_eq!(d.read::<Order>().unwrap(), cake());
            // A back-reference to the first order.
            assert_eq!(d.read::<Order>().unwrap(), tea());
        }
        "order_list" => assert_eq!(d.read::<Vec<Order>>().unwrap(), [tea(), tea()]),
        "color" => {
            assert_eq!(d.read::<Color>().unwrap(), Color::Red);
            assert_eq!(d.read::<Color>().unwrap(), Color::Green);
            assert_eq!(d.read::<Color>().unwrap(), Color::Red);
        }
        "date" => {
            assert_eq!(d.read::<Date>().unwrap(), Date(1_700_000_000_123));
            assert_eq!(d.read::<Date>().unwrap(), Date(1_700_000_040_000));
        }
        "exception" => {
            let e = d.read::<JavaThrowable>().unwrap();
            assert_eq!(e.detail_message.as_deref(), Some("boom"));
            let cause = e.cause.expect("the cause");
            assert_eq!(cause.detail_message.as_deref(), Some("inner"));
            // Its cause is itself (Throwable's "no cause"): a cycle, read as None.
            assert!(cause.cause.is_none());
            assert_eq!(e.stack_trace.len(), 2);
        }
        other => panic!("no case {other}"),
    }
    assert!(d.is_at_end(), "{case}: bytes left after the expected values");
}

fn read_values(bytes: &[u8]) -> Vec<Value> {
    let mut d = Decoder::new(bytes);
    let mut values = Vec::new();
    while !d.is_at_end() {
        values.push(d.read::<Value>().unwrap());
    }
    values
}

#[test]
fn reads_every_golden_file_into_the_values_java_wrote() {
    for case in CASES.iter().chain(&["exception"]) {
        check_golden(case);
    }
}

#[test]
fn reads_every_golden_file_as_values_keeping_java_types() {
    let values = read_values(&golden("int_array"));
    assert_eq!(
        values[0],
        Value::List {
            r#type: Some("[int".into()),
            items: vec![Value::Int(1), Value::Int(2), Value::Int(3)]
        }
    );
    // The second and third lists name the type by reference: the type table is shared.
    assert!(matches!(&values[2], Value::List { r#type: Some(t), items } if t == "[int" && items.is_empty()));

    let orders = read_values(&golden("order"));
    assert_eq!(orders.len(), 3);
    assert_eq!(orders[0], orders[2], "the back-reference reads the first order again");
    let Value::Object { class, fields } = &orders[1] else {
        panic!("not an object: {:?}", orders[1])
    };
    assert_eq!(class, "org.example.Order");
    let names: Vec<_> = fields.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["item", "quantity", "price", "tags"]);
    assert_eq!(orders[1].field("price"), Some(&Value::Long(1_200_000_000_000)));

    let colors = read_values(&golden("color"));
    assert_eq!(colors[2].field("name"), Some(&Value::String("RED".into())));

    let dates = read_values(&golden("date"));
    assert_eq!(dates, [Value::Date(1_700_000_000_123), Value::Date(1_700_000_040_000)]);

    let exception = read_values(&golden("exception"));
    let [e] = &exception[..] else { panic!("{exception:?}") };
    assert!(matches!(e, Value::Object { class, .. } if class == "java.lang.RuntimeException"));
    assert_eq!(e.field("detailMessage"), Some(&Value::String("boom".into())));
    let cause = e.field("cause").unwrap();
    assert!(matches!(cause, Value::Object { class, .. } if class == "java.lang.IllegalStateException"));
    assert_eq!(cause.field("cause"), Some(&Value::Null), "a cycle reads as null");
    assert!(matches!(
        e.field("stackTrace"),
        Some(Value::List { r#type: Some(t), items }) if t == "[java.lang.StackTraceElement" && items.len() == 2
    ));

    // Every file reads as values, and the values survive our own round trip.
    for case in CASES.iter().chain(&["exception"]) {
        let values = read_values(&golden(case));
        let mut out = Vec::new();
        let mut e = Encoder::new(&mut out);
        for v in &values {
            e.write(v).unwrap();
        }
        let again = read_values(&out);
        if *case == "double" {
            assert_eq!(format!("{values:?}"), format!("{again:?}"), "{case}");
        } else {
            assert_eq!(values, again, "{case}");
        }
    }
}

#[test]
fn writes_the_same_bytes_as_java_where_the_encoding_is_canonical() {
    // Refs (Java writes a repeated object as a back-reference, we write it again), typed
    // arrays (we write untyped lists), map order, chunking of large binary and -0.0 (Java
    // writes 0.0) differ by design; everything else is byte for byte what Caucho writes.
    for case in [
        "null",
        "bool",
        "int",
        "long",
        "string",
        "string_long",
        "binary",
        "list_string",
        "date",
    ] {
        assert!(
            encode(case).unwrap() == golden(case),
            "{case}: our bytes differ from Caucho's"
        );
    }
    let mut doubles = Vec::new();
    let mut e = Encoder::new(&mut doubles);
    for v in DOUBLES {
        e.write(&if v == 0.0 { 0.0 } else { v }).unwrap();
    }
    assert_eq!(doubles, golden("double"));
}

fn run(what: &str, command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {command:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{what} failed ({}):\n{text}", output.status);
    text
}

const JAR: &str = "/usr/share/java/hessian.jar";
const INSTALL: &str = "install Java and Caucho's Hessian: apt-get install -y libhessian-java default-jdk-headless \
     (scripts/test.sh does it)";

/// `timeout 120 java ...`: every Java run is bounded.
fn java(classes: &Path) -> Command {
    let mut command = Command::new("timeout");
    command.args(["120", "java", "--add-opens", "java.base/java.lang=ALL-UNNAMED", "-cp"]);
    command.arg(format!("{}:{JAR}", classes.display()));
    command.arg("org.example.Golden");
    command
}

#[test]
fn caucho_hessian_reads_what_we_write_and_still_writes_the_golden_bytes() {
    assert!(Path::new(JAR).exists(), "{JAR} is missing: {INSTALL}");
    for tool in ["java", "javac"] {
        let found = Command::new(tool)
            .arg("-version")
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(found, "`{tool}` is missing: {INSTALL}");
    }
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR")).join("hessian-golden");
    let _ = std::fs::remove_dir_all(&tmp);
    let classes = tmp.join("classes");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/java/Golden.java");
    run(
        "javac",
        Command::new("timeout")
            .args(["120", "javac", "-cp", JAR, "-d"])
            .arg(&classes)
            .arg(&source),
    );

    // The checked-in files are what Caucho writes today (the exception's stack trace
    // depends on the JDK, so only that file is not compared).
    let regenerated = tmp.join("java-written");
    run("Golden write", java(&classes).arg("write").arg(&regenerated));
    for case in CASES {
        let now = std::fs::read(regenerated.join(format!("{case}.hessian"))).unwrap();
        assert!(
            now == golden(case),
            "{case}: Caucho now writes other bytes than tests/golden"
        );
    }

    // Caucho reads our typed encodings...
    let ours = tmp.join("rust-typed");
    std::fs::create_dir_all(&ours).unwrap();
    for case in CASES {
        std::fs::write(ours.join(format!("{case}.hessian")), encode(case).unwrap()).unwrap();
    }
    let report = run(
        "Golden check (typed Rust values)",
        java(&classes).arg("check").arg(&ours),
    );
    assert!(
        report.contains(&format!("{} files checked, 0 mismatches", CASES.len())),
        "{report}"
    );

    // ... and the Values we read from its files, written back (typed lists, enums,
    // dates and the exception included). Not `double`: Caucho wrote -0.0 as 0.0, so the
    // echo cannot hold the -0.0 the check expects (the typed pass above checks it).
    let echo = tmp.join("rust-values");
    std::fs::create_dir_all(&echo).unwrap();
    for case in CASES.iter().chain(&["exception"]).filter(|c| **c != "double") {
        let mut out = Vec::new();
        let mut e = Encoder::new(&mut out);
        for v in read_values(&golden(case)) {
            e.write(&v).unwrap();
        }
        std::fs::write(echo.join(format!("{case}.hessian")), out).unwrap();
    }
    let report = run(
        "Golden check (Values read from Java)",
        java(&classes).arg("check").arg(&echo),
    );
    assert!(
        report.contains(&format!("{} files checked, 0 mismatches", CASES.len())),
        "{report}"
    );
}

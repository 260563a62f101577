//! Writes the seed inputs of every fuzz target to `fuzz/seeds/<target>/`:
//! small, valid examples of each input (frames, bodies, headers, URLs, node
//! names, cache files), from which libFuzzer starts mutating.
//!
//! `cargo run --manifest-path fuzz/Cargo.toml --example seeds` (the seeds are
//! committed; run this after changing an input format).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;

use bytes::{BufMut, Bytes, BytesMut};
use rpc_core::protocol::rpc::frame::{OutFrame, READONLY_EVENT, RequestMeta};
use rpc_core::protocol::tri::codec;
use rpc_core::{Serialization, Status, Url};
use rpc_fuzz::{Order, State};

fn order() -> Order {
    Order {
        id: 7,
        items: vec!["book".into(), "pen".into()],
        tags: [("gift".to_string(), 1)].into_iter().collect(),
        note: Some("leave at the door".into()),
        state: State::Shipped { carrier: "post".into() },
    }
}

fn meta() -> RequestMeta<'static> {
    RequestMeta {
        service: "org.example.Greeter".into(),
        version: Some("1.0.0".into()),
        group: None,
        method: "sayHello".into(),
        timeout_ms: Some(300),
        attachments: Cow::Owned([("trace".to_string(), "abc".to_string())].into_iter().collect()),
    }
}

fn wire(frame: &OutFrame) -> Vec<u8> {
    let mut buf = BytesMut::new();
    frame.write_to(&mut buf);
    buf.to_vec()
}

/// Frames and bodies of requests carrying each argument tuple, in `serialization`.
fn requests(serialization: Serialization) -> Vec<(Vec<u8>, Vec<u8>)> {
    let args = [
        serialization.encode(&("world",)).unwrap(),
        serialization.encode(&("world", 3u32)).unwrap(),
        serialization.encode(&(order(),)).unwrap(),
        serialization.encode(&()).unwrap(),
    ];
    args.into_iter()
        .map(|args| {
            let frame = OutFrame::request(1, true, serialization, &meta(), args).unwrap();
            let body = [&frame.meta[..], &frame.tail[..]].concat();
            (wire(&frame), body)
        })
        .collect()
}

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds").join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

fn with(prefix: &[u8], rest: &[u8]) -> Vec<u8> {
    [prefix, rest].concat()
}

fn main() {
    // rpc_frame: [limit, seed, stream]; rpc_request: [selector, body].
    for (s, serialization) in Serialization::ALL.into_iter().enumerate() {
        for (i, (frame, body)) in requests(serialization).into_iter().enumerate() {
            let name = format!("{serialization}-{i}");
            write("rpc_frame", &name, &with(&[0xff, i as u8], &frame));
            write("rpc_request", &name, &with(&[s as u8], &body));
        }
    }
    let ok = wire(&OutFrame::response(
        2,
        Status::Ok,
        30,
        Serialization::Bincode.encode("hi").unwrap(),
    ));
    let refused = wire(&OutFrame::response(
        3,
        Status::BadRequest,
        30,
        Bytes::from_static(b"bad request"),
    ));
    let heartbeat = wire(&OutFrame::event(4, true, true, b""));
    let readonly = wire(&OutFrame::event(5, true, false, READONLY_EVENT));
    let big = wire(&OutFrame::response(6, Status::Ok, 30, Bytes::from(vec![b'x'; 40])));
    let stream = [ok.as_slice(), &refused, &heartbeat, &readonly].concat();
    write("rpc_frame", "mixed", &with(&[0xff, 9], &stream));
    write(
        "rpc_frame",
        "oversized-then-ok",
        &with(&[16, 3], &[big.as_slice(), &ok].concat()),
    );
    write("rpc_frame", "bad-magic", &with(&[0xff, 0], b"GET / HTTP/1.1\r\n\r\n"));

    // rpc_response: [status, selector, body].
    for (s, serialization) in Serialization::ALL.into_iter().enumerate() {
        let sel = s as u8;
        let name = serialization.name();
        write(
            "rpc_response",
            &format!("{name}-string"),
            &with(&[20, sel], &serialization.encode("Hello, world").unwrap()),
        );
        write(
            "rpc_response",
            &format!("{name}-u64"),
            &with(&[20, sel], &serialization.encode(&42u64).unwrap()),
        );
        let reply: Result<Order, String> = Ok(order());
        write(
            "rpc_response",
            &format!("{name}-order"),
            &with(&[20, sel], &serialization.encode(&reply).unwrap()),
        );
        let pair: (BTreeMap<String, i64>, bool) = ([("a".to_string(), -1)].into_iter().collect(), true);
        write(
            "rpc_response",
            &format!("{name}-pair"),
            &with(&[20, sel], &serialization.encode(&pair).unwrap()),
        );
        write(
            "rpc_response",
            &format!("{name}-list"),
            &with(&[20, sel], &serialization.encode(&Some(vec!["a", "b"])).unwrap()),
        );
    }
    write(
        "rpc_response",
        "error",
        &with(&[60, 0], b"no method `x` in org.example.Greeter"),
    );
    write("rpc_response", "error-not-utf8", &with(&[40, 1], b"bad \xff\xfe bytes"));

    // tri_framing: [limit, body].
    let hello = codec::frame(br#"["world"]"#);
    write("tri_framing", "message", &with(&[0xff], &hello));
    write(
        "tri_framing",
        "python-trailer",
        &with(&[0xff], &[&hello[..], &codec::frame(b"")].concat()),
    );
    write("tri_framing", "too-large", &with(&[4], &hello));
    let mut compressed = BytesMut::from(&hello[..]);
    compressed[0] = 1;
    write("tri_framing", "compressed", &with(&[0xff], &compressed));
    let mut two = BytesMut::from(&hello[..]);
    two.put_slice(&hello);
    write("tri_framing", "two-messages", &with(&[0xff], &two));

    // tri_headers: "text\ngrpc-status\ngrpc-message".
    for (name, text) in [
        ("timeout-m", "1500m\n4\ndeadline%20exceeded"),
        ("timeout-h", "99999999H\n0\n"),
        ("grpc-bincode", "application/grpc+bincode\n12\nno%20method%20%60x%60"),
        (
            "json",
            "application/json; charset=utf-8\n14\nprovider%20is%20shutting%20down",
        ),
        (
            "path",
            "/org.example.Greeter/sayHello\n 3 \n100%25%20%C3%BCn%C3%AFc%C3%B8d%C3%A9",
        ),
        ("message", "no method `x` in a.B: 100%25 %E2%9C%93\n16\nwho%3F"),
    ] {
        write("tri_headers", name, text.as_bytes());
    }

    // url: addresses, provider URLs and node names.
    let urls = [
        "tri://10.0.0.5:50051/org.example.Greeter?application=greeter-provider&interface=org.example.Greeter\
         &methods=sayHello,placeOrder&version=1.0.0&side=provider&weight=100&timestamp=1732460000000",
        "zookeeper://h1:2181,h2:2182,[::1]:2183/tenant-a?timeout=3000",
        "tri://127.0.0.1:50051?service=org.example.Greeter",
        "rpc://user:secret@[fe80::1]:20880/a.B?note=x%20y%26z&empty=",
        "memory://",
    ];
    for (i, text) in urls.iter().enumerate() {
        write("url", &format!("text-{i}"), text.as_bytes());
        write(
            "url",
            &format!("node-{i}"),
            Url::parse(text).unwrap().encode().as_bytes(),
        );
    }
    write(
        "url",
        "java-node",
        b"dubbo%3A%2F%2F192.168.1.2%3A20880%2Fcom.foo.Bar%3Fanyhost%3Dtrue%26methods%3Da%2Cb%26note%3Dx+y",
    );

    // zk_children: "interface\nnode\nnode...".
    let ours = Url::parse("rpc://127.0.0.1:20880/org.example.Greeter?version=1.0.0&weight=100").unwrap();
    let other = Url::parse("tri://127.0.0.1:20881/org.example.Greeter?version=2.0.0").unwrap();
    let children = [
        "org.example.Greeter".to_string(),
        ours.encode(),
        other.encode(),
        ours.encode(),
        "tri%3A%2F%2F127.0.0.1%3A50051%3Fservice%3Dorg.example.Greeter".to_string(),
        Url::parse("rpc://127.0.0.1:1/c.D").unwrap().encode(),
        "rpc%3A%2F%2F%3A0%2Forg.example.Greeter".to_string(),
        "not a url".to_string(),
        "%FF%FE".to_string(),
    ];
    write("zk_children", "providers", children.join("\n").as_bytes());

    // zk_cache_file: what the cache writes, and a file cut short.
    let mut entries = BTreeMap::new();
    entries.insert("org.example.Greeter", vec![ours.to_string(), other.to_string()]);
    entries.insert("c.D", vec!["rpc://127.0.0.1:1/c.D".to_string()]);
    entries.insert("e.F", vec![]);
    let json = serde_json::to_vec_pretty(&entries).unwrap();
    write("zk_cache_file", "entries", &json);
    write("zk_cache_file", "cut-short", &json[..json.len() / 2]);
    write(
        "zk_cache_file",
        "escapes",
        br#"{"a\u0042":["rpc://h:1/aB?x=\ud83d\ude00"],"":[]}"#,
    );
}

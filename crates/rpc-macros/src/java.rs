//! Java parameter descriptors (`Ljava/lang/String;J`) derived from Rust types.
//!
//! Java Dubbo's `dubbo://` request names the parameter types of the method it
//! calls in JVM descriptor form, and the provider finds the overload by them, so
//! each method's descriptor is fixed at compile time from its signature. The
//! mapping follows the Hessian2 serialization's Rust ↔ Java table; anything it
//! cannot see through (a type alias, a foreign type with a Java name of its own)
//! is overridden with `#[rpc(java_types = "...")]`.

use syn::{GenericArgument, PathArguments, Type};

/// The JVM field descriptor of a Rust parameter type; `package` is the
/// interface's package in slash form (`org/example`), empty when it has none.
pub(crate) fn descriptor_of(ty: &Type, package: &str) -> String {
    match ty {
        Type::Reference(reference) => descriptor_of(&reference.elem, package),
        Type::Group(group) => descriptor_of(&group.elem, package),
        Type::Paren(paren) => descriptor_of(&paren.elem, package),
        Type::Slice(slice) => slice_descriptor(&slice.elem, package),
        Type::Array(array) => slice_descriptor(&array.elem, package),
        Type::Tuple(tuple) if tuple.elems.is_empty() => "Ljava/lang/Object;".into(),
        Type::Tuple(_) => "Ljava/util/List;".into(),
        Type::Path(path) if path.qself.is_none() => {
            let Some(last) = path.path.segments.last() else {
                return "Ljava/lang/Object;".into();
            };
            let name = last.ident.to_string();
            let first_arg = || match &last.arguments {
                PathArguments::AngleBracketed(args) => args.args.iter().find_map(|arg| match arg {
                    GenericArgument::Type(ty) => Some(ty),
                    _ => None,
                }),
                _ => None,
            };
            match name.as_str() {
                "bool" => "Z".into(),
                "i8" => "B".into(),
                "i16" => "S".into(),
                "i32" | "u8" | "u16" => "I".into(),
                "i64" | "u32" | "u64" | "isize" | "usize" => "J".into(),
                "f32" => "F".into(),
                "f64" => "D".into(),
                "char" => "C".into(),
                "String" | "str" | "Cow" => "Ljava/lang/String;".into(),
                "Option" => first_arg().map_or_else(
                    || "Ljava/lang/Object;".into(),
                    |inner| boxed(&descriptor_of(inner, package)),
                ),
                "Box" | "Arc" | "Rc" => {
                    first_arg().map_or_else(|| "Ljava/lang/Object;".into(), |inner| descriptor_of(inner, package))
                }
                "Vec" | "VecDeque" | "LinkedList" => match first_arg() {
                    Some(inner) => slice_descriptor(inner, package),
                    None => "Ljava/util/List;".into(),
                },
                "HashSet" | "BTreeSet" | "IndexSet" => "Ljava/util/Set;".into(),
                "HashMap" | "BTreeMap" | "IndexMap" => "Ljava/util/Map;".into(),
                "ByteBuf" | "Bytes" => "[B".into(),
                "Value" => "Ljava/lang/Object;".into(),
                "Date" => "Ljava/util/Date;".into(),
                _ if package.is_empty() => format!("L{name};"),
                _ => format!("L{package}/{name};"),
            }
        }
        _ => "Ljava/lang/Object;".into(),
    }
}

/// `Vec<u8>` and `[u8]` are `byte[]` (Hessian binary); other sequences are `List`.
fn slice_descriptor(elem: &Type, package: &str) -> String {
    if descriptor_of(elem, package) == "I" && is_u8(elem) {
        "[B".into()
    } else {
        "Ljava/util/List;".into()
    }
}

fn is_u8(ty: &Type) -> bool {
    matches!(ty, Type::Path(path) if path.path.is_ident("u8"))
}

/// The boxed form of a primitive descriptor (what an `Option` of it is in Java).
fn boxed(descriptor: &str) -> String {
    let class = match descriptor {
        "Z" => "java/lang/Boolean",
        "B" => "java/lang/Byte",
        "S" => "java/lang/Short",
        "I" => "java/lang/Integer",
        "J" => "java/lang/Long",
        "F" => "java/lang/Float",
        "D" => "java/lang/Double",
        "C" => "java/lang/Character",
        other => return other.to_string(),
    };
    format!("L{class};")
}

/// The package of a dotted interface name in slash form: `org.example.Greeter`
/// → `org/example`; empty for an undotted name.
pub(crate) fn package_of(interface: &str) -> String {
    interface
        .rsplit_once('.')
        .map(|(package, _)| package.replace('.', "/"))
        .unwrap_or_default()
}

/// Splits a descriptor list such as `Ljava/lang/String;[JI` into its parameter
/// descriptors, or says what is wrong with it.
pub(crate) fn split_descriptors(list: &str) -> Result<Vec<&str>, String> {
    let bytes = list.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'[' => {
                i += 1;
                continue;
            }
            b'Z' | b'B' | b'S' | b'I' | b'J' | b'F' | b'D' | b'C' => i += 1,
            b'L' => match list[i..].find(';') {
                Some(end) if end > 1 => i += end + 1,
                _ => return Err(format!("`{}` at {i} has no class name ending in `;`", &list[i..])),
            },
            other => {
                return Err(format!(
                    "unexpected `{}` at {i}: a descriptor is one of Z B S I J F D C, `L<class>;` or `[` before one",
                    other as char
                ));
            }
        }
        out.push(&list[start..i]);
        start = i;
    }
    if start != bytes.len() {
        return Err("the list ends with `[` and no element type".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(ty: &str) -> String {
        descriptor_of(&syn::parse_str::<Type>(ty).unwrap(), "org/example")
    }

    #[test]
    fn rust_types_map_to_java_descriptors() {
        let cases = [
            ("String", "Ljava/lang/String;"),
            ("&str", "Ljava/lang/String;"),
            ("i32", "I"),
            ("i64", "J"),
            ("bool", "Z"),
            ("f64", "D"),
            ("Option<i32>", "Ljava/lang/Integer;"),
            ("Option<i64>", "Ljava/lang/Long;"),
            ("Option<String>", "Ljava/lang/String;"),
            ("Vec<String>", "Ljava/util/List;"),
            ("Vec<u8>", "[B"),
            ("std::collections::HashMap<String, i64>", "Ljava/util/Map;"),
            ("BTreeMap<String, i64>", "Ljava/util/Map;"),
            ("Order", "Lorg/example/Order;"),
            ("crate::model::Order", "Lorg/example/Order;"),
            ("Box<Order>", "Lorg/example/Order;"),
            ("Option<Order>", "Lorg/example/Order;"),
        ];
        for (rust, java) in cases {
            assert_eq!(of(rust), java, "{rust}");
        }
        assert_eq!(descriptor_of(&syn::parse_str::<Type>("Order").unwrap(), ""), "LOrder;");
    }

    #[test]
    fn descriptor_lists_split_and_bad_ones_are_explained() {
        assert_eq!(
            split_descriptors("Ljava/lang/String;J[I[Lorg/example/Order;Z").unwrap(),
            ["Ljava/lang/String;", "J", "[I", "[Lorg/example/Order;", "Z"]
        );
        assert_eq!(split_descriptors("").unwrap(), Vec::<&str>::new());
        assert!(split_descriptors("Ljava/lang/String").unwrap_err().contains("`;`"));
        assert!(split_descriptors("X").unwrap_err().contains("unexpected `X`"));
        assert!(split_descriptors("J[").unwrap_err().contains("ends with `[`"));
        assert!(split_descriptors("L;").is_err());
    }

    #[test]
    fn packages_come_from_the_interface() {
        assert_eq!(package_of("org.example.Greeter"), "org/example");
        assert_eq!(package_of("Greeter"), "");
    }
}

//! Names: the wire name of a method, and checks on names that travel in URLs.

/// The lowerCamelCase form of a snake_case Rust name, the Dubbo/Java convention
/// for wire method names: `say_hello` → `sayHello`, `get_http_url` → `getHttpUrl`.
///
/// Underscores are dropped and the letter after each inner underscore is
/// upper-cased; anything else is kept as written.
pub(crate) fn lower_camel_case(rust_name: &str) -> String {
    let mut out = String::with_capacity(rust_name.len());
    let mut upper_next = false;
    for c in rust_name.chars() {
        if c == '_' {
            upper_next = !out.is_empty();
        } else if upper_next {
            out.extend(c.to_uppercase());
            upper_next = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Checks a wire method name: it becomes part of URLs (`methods=a,b`) and HTTP
/// paths (`/{interface}/{method}`), so it must look like a Java identifier.
pub(crate) fn check_method_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return Err("the method name must not be empty".into());
    };
    let valid = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '$';
    if first.is_ascii_digit() || !valid(first) || !chars.all(valid) {
        return Err(format!(
            "`{name}` is not a valid method name: use letters, digits, `_` or `$`, not starting with a digit"
        ));
    }
    Ok(())
}

/// Characters that would break a service key (`group/interface:version`) or a
/// registry URL.
const RESERVED: &[char] = &['/', ':', '?', '&', '=', ',', '#', '%'];

/// Checks the value of `interface`, `version` or `group`.
pub(crate) fn check_service_name(key: &str, value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!(
            "`{key}` must not be empty; remove the `{key}` key to leave it unset"
        ));
    }
    if let Some(c) = value.chars().find(|c| c.is_whitespace() || RESERVED.contains(c)) {
        return Err(format!(
            "`{key}` must not contain {c:?}: it travels in service keys and registry URLs"
        ));
    }
    Ok(())
}

/// The known key closest to `unknown`, if one is close enough to be a typo.
pub(crate) fn suggest<'a>(unknown: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|candidate| (edit_distance(unknown, candidate), *candidate))
        .filter(|(distance, candidate)| *distance <= 2 && *distance < candidate.len())
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// Levenshtein distance between `a` and `b`.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_case_becomes_lower_camel_case() {
        assert_eq!(lower_camel_case("say_hello"), "sayHello");
        assert_eq!(lower_camel_case("get_http_url"), "getHttpUrl");
        assert_eq!(lower_camel_case("ping"), "ping");
        assert_eq!(lower_camel_case("place_order2"), "placeOrder2");
        assert_eq!(lower_camel_case("get_2fa_code"), "get2faCode");
        assert_eq!(lower_camel_case("v2_get"), "v2Get");
    }

    #[test]
    fn stray_underscores_are_dropped() {
        assert_eq!(lower_camel_case("_private"), "private");
        assert_eq!(lower_camel_case("__double__under__"), "doubleUnder");
        assert_eq!(lower_camel_case("trailing_"), "trailing");
        assert_eq!(lower_camel_case("__"), "");
    }

    #[test]
    fn names_already_in_camel_case_are_kept() {
        assert_eq!(lower_camel_case("getHTTP"), "getHTTP");
        assert_eq!(lower_camel_case("sayHello"), "sayHello");
    }

    #[test]
    fn method_names_must_be_identifiers() {
        assert!(check_method_name("placeOrder2").is_ok());
        assert!(check_method_name("$get_x").is_ok());
        assert!(check_method_name("").is_err());
        assert!(check_method_name("2fast").is_err());
        assert!(check_method_name("say hello").is_err());
        assert!(check_method_name("a/b").is_err());
    }

    #[test]
    fn service_names_must_fit_in_urls() {
        assert!(check_service_name("interface", "org.example.Greeter").is_ok());
        assert!(check_service_name("version", "1.0.0-rc.1").is_ok());
        assert!(check_service_name("group", "").is_err());
        assert!(check_service_name("group", "a b").is_err());
        assert!(check_service_name("interface", "org/example").is_err());
        assert!(check_service_name("version", "1.0:0").is_err());
    }

    #[test]
    fn typos_get_a_suggestion() {
        let known = ["timeout", "retries", "idempotent", "name"];
        assert_eq!(suggest("tmeout", &known), Some("timeout"));
        assert_eq!(suggest("retires", &known), Some("retries"));
        assert_eq!(suggest("idempotnet", &known), Some("idempotent"));
        assert_eq!(suggest("nme", &known), Some("name"));
        assert_eq!(suggest("foo", &known), None);
        assert_eq!(suggest("x", &["v"]), None);
    }
}

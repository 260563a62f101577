//! Durations written in attributes: `"300ms"`, `"2s"`, `"1m"`.

/// The units a duration may use, with their length in milliseconds.
const UNITS: &[(&str, u64)] = &[("ms", 1), ("s", 1_000), ("m", 60_000)];

/// What every duration error ends with.
const EXPECTED: &str = "expected a positive whole number followed by `ms`, `s` or `m` \
                        (e.g. \"300ms\", \"2s\", \"1m\"), or an integer number of milliseconds";

/// Parses `text` (`"300ms"`, `"2s"`, `"1m"`) into milliseconds.
pub(crate) fn parse_duration(text: &str) -> Result<u64, String> {
    if text.is_empty() {
        return Err(format!("an empty string is not a duration; {EXPECTED}"));
    }
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    if unit.is_empty() {
        return Err(format!("`{text}` has no unit; {EXPECTED}"));
    }
    let Some((_, scale)) = UNITS.iter().find(|(name, _)| *name == unit) else {
        return Err(format!("`{text}` is not a duration; {EXPECTED}"));
    };
    scaled(text, digits, *scale)
}

/// Parses `digits` (a bare integer, in milliseconds).
pub(crate) fn parse_millis(digits: &str) -> Result<u64, String> {
    scaled(digits, digits, 1)
}

/// `digits × scale` milliseconds, which must be positive and fit in a `u64`.
fn scaled(text: &str, digits: &str, scale: u64) -> Result<u64, String> {
    let value: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a duration; {EXPECTED}"))?;
    match value.checked_mul(scale) {
        Some(0) => Err(format!("a timeout of `{text}` would fail every call; {EXPECTED}")),
        Some(millis) => Ok(millis),
        None => Err(format!("`{text}` is too long a duration")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_scale_to_milliseconds() {
        assert_eq!(parse_duration("300ms"), Ok(300));
        assert_eq!(parse_duration("2s"), Ok(2_000));
        assert_eq!(parse_duration("1m"), Ok(60_000));
        assert_eq!(parse_millis("1500"), Ok(1_500));
    }

    #[test]
    fn malformed_durations_are_rejected() {
        for bad in ["abc", "", "ms", "300", "1.5s", "300 ms", "2h", "-1s", "1sms", " 1s"] {
            let error = parse_duration(bad).expect_err(bad);
            assert!(error.contains("expected"), "{bad}: {error}");
        }
        assert!(parse_millis("12x").is_err());
    }

    #[test]
    fn zero_and_overflow_are_rejected() {
        assert!(parse_duration("0ms").unwrap_err().contains("fail every call"));
        assert!(parse_millis("0").is_err());
        assert!(
            parse_duration("18446744073709551615m")
                .unwrap_err()
                .contains("too long")
        );
        assert!(parse_duration("99999999999999999999999s").is_err());
    }
}

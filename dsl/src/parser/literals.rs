//! Literal text: quoted strings, durations (`30s`, `1h30m`) and sizes
//! (`64MB`).

/// Removes the quotes of a string literal and resolves `\"`, `\\`, `\n`, `\t`.
/// Other escapes are kept as written so regexes like `"\d+"` read naturally.
pub fn unquote(s: &str) -> String {
    let inner = s
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(s);
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('"') => out.push('"'),
                Some('\\') => out.push('\\'),
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Milliseconds in a duration literal such as `500ms`, `30s`, `5m`, `1h`, `2d`, `1w`.
pub fn parse_duration(s: &str) -> u64 {
    let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let n: u64 = s[..digits_end].parse().unwrap_or(u64::MAX);
    let unit = match &s[digits_end..] {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 604_800_000,
        _ => 1,
    };
    n.saturating_mul(unit)
}

/// Bytes in a size literal such as `128MB` or `1GiB`.
pub fn parse_size(s: &str) -> u64 {
    let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let n: u64 = s[..digits_end].parse().unwrap_or(u64::MAX);
    let unit: u64 = match &s[digits_end..] {
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => 1,
    };
    n.saturating_mul(unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_durations_and_sizes() {
        assert_eq!(parse_duration("5m"), 300_000);
        assert_eq!(parse_duration("250ms"), 250);
        assert_eq!(parse_size("128MB"), 128_000_000);
        assert_eq!(unquote(r#""a\"b\d""#), "a\"b\\d");
    }

    #[test]
    fn escapes_and_units() {
        assert_eq!(unquote(r#""tab\there\nnew""#), "tab\there\nnew");
        assert_eq!(parse_duration("90m"), 5_400_000);
        assert_eq!(parse_duration("1w"), 604_800_000);
        assert_eq!(parse_duration("2d"), 172_800_000);
        assert_eq!(parse_size("64KB"), 64_000);
    }
}

//! logfmt: `key=value key2="quoted value" flag` pairs as event fields.

use serde_json::{Map, Value as Json};

/// `key=value key2="quoted value"` pairs.
pub fn parse_logfmt(line: &str) -> Map<String, Json> {
    let mut m = Map::new();
    let mut chars = line.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let mut key_end = line.len();
        let mut has_value = false;
        while let Some(&(i, c)) = chars.peek() {
            if c == '=' {
                key_end = i;
                has_value = true;
                chars.next();
                break;
            }
            if c.is_whitespace() {
                key_end = i;
                break;
            }
            chars.next();
        }
        let key = &line[start..key_end];
        if !has_value {
            if !key.is_empty() {
                m.insert(key.to_string(), Json::Bool(true));
            }
            continue;
        }
        let mut value = String::new();
        if let Some(&(_, '"')) = chars.peek() {
            chars.next();
            while let Some((_, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            value.push(n);
                        }
                    }
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&(_, c)) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        if !key.is_empty() {
            m.insert(key.to_string(), Json::String(value));
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_escaped_and_bare_keys() {
        let m = parse_logfmt(r#"level=warn msg="disk \"full\"" retry"#);
        assert_eq!(m.get("msg"), Some(&Json::String("disk \"full\"".into())));
        assert_eq!(m.get("retry"), Some(&Json::Bool(true)));
        assert_eq!(m.get("level"), Some(&Json::String("warn".into())));
        assert!(parse_logfmt("   ").is_empty());
        assert_eq!(m.len(), 3);
    }
}

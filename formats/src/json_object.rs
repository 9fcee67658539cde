//! The top-level members of a JSON object, in order, with their values left
//! as raw JSON text: for code that needs a line's keys (and to copy some
//! values through) without building a tree of every value.

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;

/// A JSON object's members; keys are borrowed unless they had escapes.
#[derive(Debug)]
pub struct RawObject<'a>(pub Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'a> RawObject<'a> {
    /// Parses `text`; `None` when it is not a JSON object.
    pub fn parse(text: &'a str) -> Option<RawObject<'a>> {
        serde_json::from_str(text).ok()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for RawObject<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> Visitor<'de> for Members {
            type Value = RawObject<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut m: M) -> Result<Self::Value, M::Error> {
                let mut v = Vec::with_capacity(m.size_hint().unwrap_or(12));
                while let Some(kv) = m.next_entry::<Cow<'de, str>, &'de RawValue>()? {
                    v.push(kv);
                }
                Ok(RawObject(v))
            }
        }
        d.deserialize_map(Members)
    }
}

/// Appends `{"k":v,...}` of the members `keep` accepts to `out`; false (and
/// nothing appended) when it accepts none.
pub fn write_members<'a>(
    members: impl IntoIterator<Item = &'a (Cow<'a, str>, &'a RawValue)>,
    mut keep: impl FnMut(&str, &RawValue) -> bool,
    out: &mut String,
) -> bool {
    let start = out.len();
    for (k, v) in members {
        if !keep(k, v) {
            continue;
        }
        out.push(if out.len() == start { '{' } else { ',' });
        push_json_str(out, k);
        out.push(':');
        out.push_str(v.get());
    }
    if out.len() == start {
        return false;
    }
    out.push('}');
    true
}

/// Appends `text` as a JSON string.
pub fn push_json_str(out: &mut String, text: &str) {
    if text.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(text);
        out.push('"');
    } else {
        out.push_str(&serde_json::Value::from(text).to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_keep_order_raw_values_and_unescaped_keys() {
        let o = RawObject::parse(r#"{"a":1,"b\"c":{"x":[1,2]},"d":"t"}"#).unwrap();
        let keys: Vec<&str> = o.0.iter().map(|(k, _)| k.as_ref()).collect();
        assert_eq!(keys, ["a", "b\"c", "d"]);
        assert_eq!(o.0[1].1.get(), r#"{"x":[1,2]}"#);
        let mut out = String::new();
        assert!(write_members(&o.0, |k, _| k != "a", &mut out));
        assert_eq!(out, r#"{"b\"c":{"x":[1,2]},"d":"t"}"#);
        let mut none = String::from("x");
        assert!(!write_members(&o.0, |_, _| false, &mut none));
        assert_eq!(none, "x");
        assert!(RawObject::parse("[1]").is_none());
        assert!(RawObject::parse("plain text").is_none());
    }
}

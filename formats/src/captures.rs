//! A regex match's named captures as the fields of an event (the `regex`
//! format of sources, `parse regex` in rules, and the shipper's `regex` lines).

use crate::timestamp::normalize_timestamp;
use regex::Regex;
use serde_json::{Map, Value as Json};
use weir_dsl::types::TIMESTAMP;

/// Named captures of a regex match as a JSON object of strings.
pub fn captures_to_map(re: Option<&Regex>, caps: &regex::Captures<'_>) -> Map<String, Json> {
    let mut m = Map::new();
    if let Some(re) = re {
        for name in re.capture_names().flatten() {
            if let Some(v) = caps.name(name) {
                let text = if name == TIMESTAMP {
                    normalize_timestamp(v.as_str())
                } else {
                    v.as_str().to_string()
                };
                m.insert(name.to_string(), Json::String(text));
            }
        }
    }
    m
}

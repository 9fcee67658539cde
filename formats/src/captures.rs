//! A regex match's named captures as the fields of an event (the `regex`
//! format of sources, `parse regex` in rules, and the shipper's `regex` lines).
//! Values stay text as written; a `timestamp` capture is parsed by whoever
//! reads the event (with its source's format and zone).

use regex::Regex;
use serde_json::{Map, Value as Json};

/// Named captures of a regex match as a JSON object of strings.
pub fn captures_to_map(re: Option<&Regex>, caps: &regex::Captures<'_>) -> Map<String, Json> {
    let mut m = Map::new();
    if let Some(re) = re {
        for name in re.capture_names().flatten() {
            if let Some(v) = caps.name(name) {
                m.insert(name.to_string(), Json::String(v.as_str().to_string()));
            }
        }
    }
    m
}

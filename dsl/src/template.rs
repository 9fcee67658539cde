//! Annotation templates: `"{{errors}} errors in {{service}}"`. A placeholder
//! names a field of the alert's window row (a group key or an aggregate);
//! the checker verifies the names, the engine fills them in.

/// The field names a template refers to, in order, with their byte offsets.
pub fn placeholders(template: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut rest = template;
    let mut offset = 0;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else { break };
        out.push((offset + open, after[..close].trim()));
        let consumed = open + 2 + close + 2;
        offset += consumed;
        rest = &rest[consumed..];
    }
    out
}

/// Fills each `{{name}}` with `value(name)`; a name without a value stays as written.
pub fn render(template: &str, value: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else { break };
        out.push_str(&rest[..open]);
        let name = after[..close].trim();
        match value(name) {
            Some(v) => out.push_str(&v),
            None => out.push_str(&rest[open..open + 2 + close + 2]),
        }
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_and_fills_placeholders() {
        let t = "{{ errors }} errors in {{service}}; {{nope}} {{unclosed";
        let names: Vec<&str> = placeholders(t).into_iter().map(|(_, n)| n).collect();
        assert_eq!(names, ["errors", "service", "nope"]);
        let out = render(t, |n| match n {
            "errors" => Some("51".into()),
            "service" => Some("checkout".into()),
            _ => None,
        });
        assert_eq!(out, "51 errors in checkout; {{nope}} {{unclosed");
    }
}

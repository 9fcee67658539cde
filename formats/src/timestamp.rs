//! Timestamp spellings of plain-text logs, rewritten into a form the
//! engine's decoder (Arrow's timestamp parser) takes.

/// Rewrites the timestamp spellings of plain-text logs that Arrow's parser does
/// not take (Common Log Format `10/Oct/2026:13:55:36 +0000`) as RFC 3339;
/// anything else is returned as it is.
pub fn normalize_timestamp(s: &str) -> String {
    match chrono::DateTime::parse_from_str(s, "%d/%b/%Y:%H:%M:%S %z") {
        Ok(t) => t.to_rfc3339(),
        Err(_) => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_log_format_becomes_rfc3339_and_the_rest_stays() {
        assert_eq!(
            normalize_timestamp("10/Oct/2026:13:55:36 +0200"),
            "2026-10-10T13:55:36+02:00"
        );
        assert_eq!(normalize_timestamp("not a time"), "not a time");
    }
}

//! Size limits checked on the text before it is parsed, so no input can
//! build an expression tree deeper than the parser, checker and engine can
//! walk: parentheses and brackets nest at most [`MAX_NESTING`] levels, and a
//! stage holds at most [`MAX_OPERATORS`] operators (`or`, `+`, `not`, …; a
//! 10,000-term `or` chain would otherwise be a 10,000-level tree). The scan
//! is one loop, without recursion; the error points at the first operator or
//! bracket past the limit.

use crate::diagnostic::{Diagnostic, ErrorKind};
use crate::span::Span;

/// Brackets (`(`, `[`) nested inside each other.
pub const MAX_NESTING: usize = 32;
/// Operators in one stage (between two `|`, or in one `{ … }` block).
pub const MAX_OPERATORS: usize = 500;
/// The longest `.rules` text, in bytes.
pub const MAX_TEXT_BYTES: usize = 4 << 20;

/// Checks `text` against the limits.
pub fn check(text: &str) -> Result<(), Diagnostic> {
    if text.len() > MAX_TEXT_BYTES {
        return Err(Diagnostic::new(
            ErrorKind::TooComplex,
            Span::new(0, 1),
            format!(
                "the rules text is {} bytes long, more than the limit of {MAX_TEXT_BYTES}",
                text.len()
            ),
        )
        .with_hint("split it into several files"));
    }
    let b = text.as_bytes();
    let (mut i, mut depth, mut ops) = (0, 0usize, 0usize);
    while i < b.len() {
        let c = b[i];
        let start = i;
        match c {
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'#' => skip_line(b, &mut i),
            b'/' if b.get(i + 1) == Some(&b'/') => skip_line(b, &mut i),
            b'(' | b'[' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(Diagnostic::new(
                        ErrorKind::TooComplex,
                        Span::new(i, i + 1),
                        format!("brackets nest deeper than {MAX_NESTING} levels"),
                    )
                    .with_label("this one is too deep")
                    .with_hint("take the inner part out into a `set` field first"));
                }
            }
            b')' | b']' => depth = depth.saturating_sub(1),
            b'|' | b'{' | b'}' if depth == 0 => ops = 0,
            b'+' | b'-' | b'*' | b'/' | b'%' | b'<' | b'>' | b'~' => ops += 1,
            b'=' | b'!' if b.get(i + 1).is_some_and(|n| matches!(n, b'=' | b'~')) => {
                ops += 1;
                i += 1;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                let word = &text[start..i];
                if matches!(word, "or" | "and" | "not" | "in" | "contains" | "matches") {
                    ops += 1;
                }
                i -= 1;
            }
            _ => {}
        }
        if ops > MAX_OPERATORS {
            return Err(Diagnostic::new(
                ErrorKind::TooComplex,
                Span::new(start, (i + 1).min(b.len()).max(start + 1)),
                format!("this stage has more than {MAX_OPERATORS} operators"),
            )
            .with_label("the limit is reached here")
            .with_hint(
                "compare against a list (`field in [\"a\", \"b\"]`), a regex (`field =~ \"a|b\"`) \
                 or a lookup table instead of a long `or` chain",
            ));
        }
        i += 1;
    }
    Ok(())
}

fn skip_line(b: &[u8], i: &mut usize) {
    while *i < b.len() && b[*i] != b'\n' {
        *i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(cond: &str) -> String {
        format!("source s = stdin() format json\npipeline p {{\n  from s\n  | where {cond}\n  | to stdout\n}}\n")
    }

    #[test]
    fn ordinary_rules_pass() {
        let chain = vec!["level == \"a\""; 100].join(" or ");
        assert!(check(&rules(&chain)).is_ok());
        assert!(check(&rules("message contains \"a + b - c * d / e (f) [g]\"")).is_ok());
    }

    #[test]
    fn long_chains_and_deep_nesting_are_refused_at_their_place() {
        let chain = vec!["x == 1"; 10_000].join(" or ");
        let text = rules(&chain);
        let d = check(&text).expect_err("refused");
        assert_eq!(d.kind, ErrorKind::TooComplex);
        assert!(text[d.span.start..].starts_with("=="), "{:?}", d.span);

        let nested = format!("{}x{}", "(".repeat(10_000), ")".repeat(10_000));
        let text = rules(&nested);
        let d = check(&text).expect_err("refused");
        let first = text.find("where (").unwrap_or(0) + "where ".len();
        assert_eq!(d.span.start, first + MAX_NESTING);

        let nots = format!("{}true", "not ".repeat(10_000));
        assert!(check(&rules(&nots)).is_err());
    }

    #[test]
    fn operators_in_strings_and_comments_do_not_count() {
        let text = rules(&format!(
            "message == \"{}\" // {}\n",
            "or ".repeat(2_000),
            "+".repeat(2_000)
        ));
        assert!(check(&text).is_ok());
    }
}

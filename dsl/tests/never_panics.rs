//! Parsing and checking never panic, whatever the input.

use proptest::prelude::*;

const SAMPLE: &str = include_str!("../../rules/examples/demo.rules");

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_text(s in "\\PC{0,300}") {
        let _ = weir_dsl::compile(&s);
    }

    #[test]
    fn rules_like_tokens(tokens in prop::collection::vec(prop::sample::select(vec![
        "source", "pipeline", "archive", "output", "from", "|", "where", "window", "tumbling",
        "sliding", "session", "gap", "every", "by", "lateness", "{", "}", "(", ")", "[", "]", "=",
        "==", ">=", "and", "or", "not", "in", "count()", "x", "severity", "warn", "1m", "0s",
        "\"s\"", "42", "1.5", ",", ":", "alert", "when", "set", "to", "stdout", "generator",
        "format", "json", "fields", "int", "null", "is", "quantile(x, 2)", "\"",
    ]), 0..60)) {
        let text = tokens.join(" ");
        let _ = weir_dsl::compile(&text);
    }

    #[test]
    fn truncated_and_mutated_examples(cut in 0usize..2000, pos in 0usize..2000, byte in 32u8..127) {
        let mut text: Vec<u8> = SAMPLE.as_bytes().to_vec();
        text.truncate(cut.min(text.len()));
        if !text.is_empty() {
            let p = pos % text.len();
            text[p] = byte;
        }
        let text = String::from_utf8_lossy(&text);
        if let Err(diags) = weir_dsl::compile(&text) {
            for d in diags {
                // Rendering must work for every diagnostic too.
                let _ = d.render("x.rules", &text);
            }
        }
    }
}

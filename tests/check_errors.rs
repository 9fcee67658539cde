//! `weir check` and the checker on broken rules: every mistake reported with
//! `file:line:col`, the offending text and a hint, in one pass.

use std::collections::HashSet;
use std::process::Command;
use weir_dsl::ErrorKind;

fn root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[test]
fn semantic_mistakes_are_all_reported_with_distinct_kinds() {
    let text = read("rules/tests/broken_semantics.rules");
    let errs = weir_dsl::compile(&text).err().unwrap_or_default();
    let kinds: HashSet<ErrorKind> = errs.iter().map(|d| d.kind).collect();
    let expected = [
        ErrorKind::DuplicateName,
        ErrorKind::UnknownSource,
        ErrorKind::UnknownSourceKind,
        ErrorKind::UnknownOutput,
        ErrorKind::UnknownArgument,
        ErrorKind::MissingArgument,
        ErrorKind::InvalidArgument,
        ErrorKind::UnknownFormat,
        ErrorKind::UnknownType,
        ErrorKind::UnknownField,
        ErrorKind::UnknownFunction,
        ErrorKind::UnknownStage,
        ErrorKind::UnknownSeverity,
        ErrorKind::TypeMismatch,
        ErrorKind::NotBoolean,
        ErrorKind::WrongArity,
        ErrorKind::InvalidRegex,
        ErrorKind::AggregateOutsideWindow,
        ErrorKind::NotAnAggregate,
        ErrorKind::InvalidWindow,
        ErrorKind::AlertWithoutWindow,
        ErrorKind::InvalidQuantile,
        ErrorKind::DuplicateArchive,
        ErrorKind::FieldCollision,
    ];
    for k in expected {
        assert!(kinds.contains(&k), "no {k:?} among {:#?}", errs);
    }
    assert!(kinds.len() >= 15);
}

/// Line and column of the first diagnostic whose message contains `needle`.
fn position(text: &str, needle: &str) -> (usize, usize, String) {
    let errs = weir_dsl::compile(text).err().unwrap_or_default();
    let d = errs
        .iter()
        .find(|d| d.message.contains(needle))
        .unwrap_or_else(|| panic!("no diagnostic with {needle:?} in {errs:#?}"));
    let l = d.located(text);
    (l.line, l.col, l.hint.unwrap_or_default())
}

#[test]
fn diagnostics_point_at_the_offending_text_with_hints() {
    let text = read("rules/tests/broken_semantics.rules");
    let (line, col, hint) = position(&text, "unknown field `sevrity`");
    assert_eq!((line, col), (18, 11));
    assert_eq!(hint, "did you mean `severity`?");
    let (line, col, hint) = position(&text, "unknown severity level `warnn`");
    assert_eq!((line, col), (19, 23));
    assert!(hint.contains("`warn`"), "{hint}");
    let (line, _, hint) = position(&text, "unknown source kind `kafak`");
    assert_eq!(line, 4);
    assert_eq!(hint, "did you mean `kafka`?");
    let (line, _, hint) = position(&text, "unknown function `lenn`");
    assert_eq!(line, 23);
    assert_eq!(hint, "did you mean `len`?");
    let (line, col, _) = position(&text, "unknown type `integr`");
    assert_eq!((line, col), (10, 38));
}

#[test]
fn an_unknown_raw_mode_is_pointed_at() {
    let text = "source app = generator(rate: 1) format json\narchive app roll every 1m raw fulll\n";
    let (line, col, hint) = position(text, "`raw fulll` is not an archive option");
    assert_eq!((line, col), (2, 31));
    assert!(hint.contains("raw full"), "{hint}");
    let ok = "source app = generator(rate: 1) format json\narchive app raw full\n";
    let p = weir_dsl::compile(ok).unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(
        p.archives[0].raw.as_ref().map(|r| r.name.as_str()),
        Some("full")
    );
}

#[test]
fn archive_index_mistakes_are_pointed_at() {
    let head = "source app = generator(rate: 1) format json\n  fields { latency: float, order_no: string }\n";
    let text = format!("{head}archive app index (order_noo, latency)\n");
    let (line, col, hint) = position(&text, "cannot index unknown field `order_noo`");
    assert_eq!((line, col), (3, 20));
    assert_eq!(hint, "did you mean `order_no`?");
    let (line, col, hint) = position(
        &text,
        "`latency` is float; bloom filters index text columns",
    );
    assert_eq!((line, col), (3, 31));
    assert!(hint.contains("min/max"), "{hint}");
    let text = format!("{head}archive app index all\n");
    let (_, col, hint) = position(&text, "`index all` is not an archive option");
    assert_eq!(col, 19);
    assert!(hint.contains("index none"), "{hint}");
    for ok in ["index (order_no, host)", "index none", "index ()"] {
        weir_dsl::compile(&format!("{head}archive app {ok}\n"))
            .unwrap_or_else(|e| panic!("{ok}: {e:#?}"));
    }
}

#[test]
fn grok_mistakes_name_the_pattern_and_what_to_write() {
    let text = "source web = stdin() format regex \"^%{IPP:client} %{INT:status:integr}\"\n";
    let (line, col, hint) = position(text, "unknown pattern `IPP`");
    assert_eq!((line, col), (1, 29));
    assert!(hint.contains("did you mean `IP`?"), "{hint}");
    let text = "source web = stdin() format regex \"^%{IP:client} %{INT:status:integr}\"\n";
    let (_, _, hint) = position(text, "unknown type `integr` for the capture `status`");
    assert!(hint.contains("int, float"), "{hint}");
    let text = "source web = stdin() format regex \"^%{IP:client.ip}\"\n";
    position(text, "`client.ip` cannot name a field");
    // Inside `parse ... as regex` too, and the capture types reach the
    // schema: `status` compares as a number.
    let ok = "source web = stdin() format plain\npipeline p {\n  from web\n  | parse message as regex \"%{IP:client} %{INT:status:int}\"\n  | where status >= 500 and client != \"\"\n}\n";
    weir_dsl::compile(ok).unwrap_or_else(|e| panic!("{e:#?}"));
}

#[test]
fn syntax_errors_in_several_items_are_reported_in_one_pass() {
    let text = read("rules/tests/broken_syntax.rules");
    let errs = weir_dsl::compile(&text).err().unwrap_or_default();
    assert_eq!(errs.len(), 3, "{errs:#?}");
    let lines: Vec<usize> = errs.iter().map(|d| d.located(&text).line).collect();
    assert_eq!(lines, vec![6, 11, 16]);
    assert!(errs.iter().all(|d| d.kind == ErrorKind::Syntax));
    assert!(errs[1].message.contains("duration"), "{}", errs[1].message);
}

#[test]
fn weir_check_exits_1_and_prints_file_line_col() {
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .current_dir(root())
        .args([
            "check",
            "rules/tests/broken_semantics.rules",
            "rules/tests/broken_syntax.rules",
        ])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("rules/tests/broken_semantics.rules:18:11: error: unknown field `sevrity`"),
        "{err}"
    );
    assert!(
        err.contains("18 |   | where sevrity >= warn\n   |           ^^^^^^^"),
        "{err}"
    );
    assert!(err.contains("= hint: did you mean `severity`?"), "{err}");
    assert!(
        err.contains("rules/tests/broken_syntax.rules:6:3: error: syntax error"),
        "{err}"
    );
}

#[test]
fn weir_check_accepts_every_example() {
    let examples: Vec<String> = std::fs::read_dir(root().join("rules/examples"))
        .unwrap_or_else(|e| panic!("{e}"))
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "rules"))
        .map(|p| p.display().to_string())
        .collect();
    assert!(examples.len() >= 2, "{examples:?}");
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("check")
        .args(&examples)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A 10,000-term condition aborted `weir check` with a stack overflow; now
/// it is a located error, as is 10,000-deep nesting.
#[test]
fn weir_check_refuses_huge_expressions_with_a_location() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    for (name, cond) in [
        ("chain", vec!["severity == error"; 10_000].join(" or ")),
        (
            "nested",
            format!("{}true{}", "(".repeat(10_000), ")".repeat(10_000)),
        ),
    ] {
        let path = dir.path().join(format!("{name}.rules"));
        std::fs::write(
            &path,
            format!("source gen = generator(rate: 0)\npipeline p {{\n  from gen\n  | where {cond}\n}}\n"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let out = Command::new(env!("CARGO_BIN_EXE_weir"))
            .arg("check")
            .arg(&path)
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(&format!("{name}.rules:4:")), "{err}");
        assert!(err.contains("= hint:"), "{err}");
    }
}

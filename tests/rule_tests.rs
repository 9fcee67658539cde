//! `weir test`: every example rule test passes, and a wrong expectation fails
//! with exit code 1 and a diff naming what was expected and what came.

use std::path::Path;
use std::process::Command;

fn weir_test(files: &[&Path]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("test")
        .args(files)
        .output()
        .expect("weir runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn example_rule_tests_pass() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/examples");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".test.toml"))
        .collect();
    files.sort();
    let rules = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "rules"))
        .count();
    assert_eq!(
        files.len(),
        rules,
        "every example .rules file has a .test.toml"
    );
    let refs: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
    let (code, out) = weir_test(&refs);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(", 0 failed"), "{out}");
}

#[test]
fn a_wrong_expectation_fails_with_a_diff() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/tests/failing.test.toml");
    let (code, out) = weir_test(&[&file]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAIL"), "{out}");
    assert!(
        out.contains("expect at 36s (pipeline checkout_errors):"),
        "{out}"
    );
    assert!(
        out.contains("- expected {\"errors\":59,\"service\":\"checkout\"}"),
        "{out}"
    );
    assert!(
        out.contains("+ got      {") && out.contains("\"errors\":60"),
        "{out}"
    );
    assert!(out.contains("\"state\":\"firing\""), "{out}");
    assert!(out.contains("0 passed, 1 failed"), "{out}");
}

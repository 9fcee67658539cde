//! The `geoip` stage end to end through `weir run`: addresses resolved from the
//! shipped demo MaxMind database (`rules/examples/demo-geo.mmdb`, built by
//! `examples/make_demo_geoip.rs`), unknown or malformed addresses kept with
//! nulls, and a missing database reported as a located error.

use serde_json::Value;
use std::process::Command;

fn root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn weir(args: &[&str], dir: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("weir runs")
}

#[test]
fn geoip_enriches_known_addresses_and_nulls_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        root().join("rules/examples/demo-geo.mmdb"),
        dir.path().join("geo.mmdb"),
    )
    .unwrap();
    let events = [
        r#"{"timestamp":"2026-01-01T00:00:00Z","message":"a","client_ip":"1.2.3.4"}"#,
        r#"{"timestamp":"2026-01-01T00:00:01Z","message":"b","client_ip":"2.200.1.9"}"#,
        r#"{"timestamp":"2026-01-01T00:00:02Z","message":"c","client_ip":"13.0.0.1"}"#,
        r#"{"timestamp":"2026-01-01T00:00:03Z","message":"d","client_ip":"224.0.0.1"}"#,
        r#"{"timestamp":"2026-01-01T00:00:04Z","message":"e","client_ip":"not-an-ip"}"#,
        r#"{"timestamp":"2026-01-01T00:00:05Z","message":"f"}"#,
        r#"{"timestamp":"2026-01-01T00:00:06Z","message":"g","client_ip":"1.2.3.4"}"#,
    ];
    std::fs::write(dir.path().join("in.ndjson"), events.join("\n") + "\n").unwrap();
    std::fs::write(
        dir.path().join("geo.rules"),
        r#"source s = file(path: "in.ndjson") format json fields { client_ip: ip }
output out = file(path: "out.ndjson")
pipeline located {
  from s
  | geoip client_ip using "geo.mmdb" as client
  | to out
}
"#,
    )
    .unwrap();
    let out = weir(&["run", "geo.rules"], dir.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(dir.path().join("out.ndjson")).unwrap();
    let rows: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), events.len(), "no row is lost: {text}");
    let by_msg = |m: &str| {
        rows.iter()
            .find(|r| r["message"] == m)
            .unwrap_or_else(|| panic!("row {m} missing: {text}"))
    };
    let a = by_msg("a");
    assert_eq!(a["client_country"], "US");
    assert_eq!(a["client_city"], "New York");
    assert_eq!(a["client_latitude"], 40.71);
    assert_eq!(a["client_longitude"], -74.01);
    assert_eq!(by_msg("b")["client_country"], "DE");
    assert_eq!(by_msg("b")["client_city"], "Berlin");
    // 13.0.0.0/8 wraps round the twelve cities back to New York.
    assert_eq!(by_msg("c")["client_city"], "New York");
    assert_eq!(by_msg("g")["client_city"], "New York");
    for m in ["d", "e", "f"] {
        let r = by_msg(m);
        assert!(r.get("client_country").is_none_or(Value::is_null), "{r}");
        assert!(r.get("client_latitude").is_none_or(Value::is_null), "{r}");
    }
}

#[test]
fn a_missing_geoip_database_is_a_located_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.rules"),
        "source s = stdin() format json fields { client_ip: ip }\n\
         pipeline p {\n  from s\n  | geoip client_ip using \"nowhere.mmdb\"\n}\n",
    )
    .unwrap();
    let out = weir(&["run", "bad.rules"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.rules:4:"), "{err}");
    assert!(err.contains("cannot open GeoIP database"), "{err}");
    assert!(err.contains("nowhere.mmdb"), "{err}");
    assert!(err.contains("hint:"), "{err}");
}

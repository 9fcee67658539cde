//! Real log formats, windowed on event time: a corpus of small samples in
//! the forms people have (tests/data/formats: syslog RFC 3164 and 5424,
//! Apache error, Zookeeper/log4j, Hadoop HDFS, Common Log Format access,
//! nginx error, epoch-stamped JSON), each run through `weir run` with a
//! `.rules` file that windows it by minute. The expected counts are worked
//! out here with chrono and each sample's own format, not with Weir's
//! parser; lines whose time is no time must reach the dead letters.

use chrono::{DateTime, Datelike, NaiveDateTime, TimeZone, Utc};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

fn corpus() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/formats")
}

/// Runs `source` (a source declaration reading `file`) windowed by minute;
/// returns the counts by window start (µs) and the dead letters.
fn run(file: &str, source: &str) -> (BTreeMap<i64, i64>, Vec<Value>) {
    run_where(file, source, "true")
}

/// [`run`] with a `where` stage before the window.
fn run_where(file: &str, source: &str, condition: &str) -> (BTreeMap<i64, i64>, Vec<Value>) {
    let dir = tempfile::tempdir().unwrap();
    let sample = corpus().join(file);
    let out = dir.path().join("windows.ndjson");
    let rules = format!(
        "{source}\noutput out = file(path: \"{}\")\npipeline p {{\n  from logs\n  | where {condition}\n  | window tumbling 1m lateness 1d {{ n = count() }}\n  | to out\n}}\n",
        out.display()
    )
    .replace("SAMPLE", &sample.display().to_string());
    weir_run(dir.path(), &rules, file);
    let mut counts = BTreeMap::new();
    for line in std::fs::read_to_string(&out).unwrap_or_default().lines() {
        let row: Value = serde_json::from_str(line).unwrap();
        let start = DateTime::parse_from_rfc3339(row["window_start"].as_str().unwrap())
            .unwrap()
            .timestamp_micros();
        *counts.entry(start).or_default() += row["n"].as_i64().unwrap();
    }
    (counts, dead_letters(dir.path()))
}

/// The dead letters of source `logs` of a run in `dir` (none when it wrote
/// no file).
fn dead_letters(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("data/deadletter/logs.ndjson"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// `weir run` of `rules` in `dir` (data in `dir/data`) to its end: what it
/// printed to standard error. Fails the test, naming `what`, when it does
/// not succeed.
fn weir_run(dir: &Path, rules: &str, what: &str) -> String {
    let rules_path = dir.join("formats.rules");
    std::fs::write(&rules_path, rules).unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["run", "--quiet", "--data-dir"])
        .arg(dir.join("data"))
        .arg(&rules_path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
    assert!(run.status.success(), "{what}: {stderr}\n{rules}");
    stderr
}

/// Counts by minute of the times `times` (µs).
fn by_minute(times: impl IntoIterator<Item = i64>) -> BTreeMap<i64, i64> {
    let mut m = BTreeMap::new();
    for t in times {
        *m.entry(t.div_euclid(60_000_000) * 60_000_000).or_default() += 1;
    }
    m
}

/// The lines of a sample and, for each, what `pick` finds as its time.
fn expected(file: &str, pick: impl Fn(&str) -> Option<i64>) -> (BTreeMap<i64, i64>, usize) {
    let text = std::fs::read_to_string(corpus().join(file)).unwrap();
    let times: Vec<Option<i64>> = text.lines().map(&pick).collect();
    let bad = times.iter().filter(|t| t.is_none()).count();
    (by_minute(times.into_iter().flatten()), bad)
}

fn naive_utc(text: &str, format: &str) -> Option<i64> {
    NaiveDateTime::parse_from_str(text, format)
        .ok()
        .map(|t| Utc.from_utc_datetime(&t).timestamp_micros())
}

fn check(file: &str, source: &str, want: (BTreeMap<i64, i64>, usize)) {
    let (got, dead) = run(file, source);
    assert_eq!(got, want.0, "{file}: window counts by minute");
    assert_eq!(dead.len(), want.1, "{file}: dead letters {dead:#?}");
    for d in &dead {
        assert!(
            d["reason"].as_str().unwrap().contains("timestamp"),
            "{file}: {d}"
        );
    }
}

#[test]
fn syslog_rfc3164_infers_the_year() {
    // The year is the receive time's, or the one before for a time more
    // than a day ahead of it.
    let now = Utc::now();
    let pick = |l: &str| -> Option<i64> {
        let stamp = l.get(..15)?;
        let this = naive_utc(&format!("{} {stamp}", now.year()), "%Y %b %e %H:%M:%S")?;
        if this > now.timestamp_micros() + 86_400_000_000 {
            naive_utc(&format!("{} {stamp}", now.year() - 1), "%Y %b %e %H:%M:%S")
        } else {
            Some(this)
        }
    };
    check(
        "syslog3164.log",
        r#"source logs = file(path: "SAMPLE") format regex "^(?P<timestamp>\w{3} +\d+ \d{2}:\d{2}:\d{2}) (?P<host>\S+) (?P<app>[^\[:]+)(\[(?P<pid>\d+)\])?: (?P<message>.*)$""#,
        expected("syslog3164.log", pick),
    );
    check(
        "syslog3164.log",
        r#"source logs = file(path: "SAMPLE") format syslog"#,
        expected("syslog3164.log", pick),
    );
}

#[test]
fn syslog_rfc5424_with_zones_fractions_and_a_nil_time() {
    let pick = |l: &str| {
        let stamp = l.split(' ').nth(1)?;
        DateTime::parse_from_rfc3339(stamp)
            .ok()
            .map(|t| t.timestamp_micros())
    };
    let (want, _) = expected("syslog5424.log", pick);
    // The nil time (`-`) is the arrival time: one more event, in a window
    // of its own (today); counted apart below.
    let (got, dead) = run(
        "syslog5424.log",
        r#"source logs = file(path: "SAMPLE") format syslog5424"#,
    );
    assert!(dead.is_empty(), "{dead:#?}");
    let today = got
        .iter()
        .filter(|(&start, _)| start > Utc::now().timestamp_micros() - 86_400_000_000)
        .map(|(_, n)| *n)
        .sum::<i64>();
    assert_eq!(today, 1, "{got:?}");
    let past: BTreeMap<i64, i64> = got
        .into_iter()
        .filter(|(start, _)| *start < Utc::now().timestamp_micros() - 86_400_000_000)
        .collect();
    assert_eq!(past, want);
}

#[test]
fn apache_error_logs_in_ctime() {
    let pick = |l: &str| {
        let stamp = l.strip_prefix('[')?.split(']').next()?;
        naive_utc(stamp, "%a %b %d %H:%M:%S%.f %Y")
    };
    check(
        "apache_error.log",
        r#"source logs = file(path: "SAMPLE") format regex "^\[(?P<timestamp>[^\]]+)\] \[(?P<level>[^\]]+)\] (?P<message>.*)$""#,
        expected("apache_error.log", pick),
    );
    check(
        "apache_error.log",
        r#"source logs = file(path: "SAMPLE") format apache_error"#,
        expected("apache_error.log", pick),
    );
}

#[test]
fn log4j_times_with_comma_fractions_in_a_source_timezone() {
    // Zookeeper (log4j) writes local time without a zone: the source says
    // it is UTC+02:00.
    let pick =
        |l: &str| naive_utc(l.get(..23)?, "%Y-%m-%d %H:%M:%S,%3f").map(|t| t - 7_200_000_000);
    check(
        "zookeeper.log",
        r#"source logs = file(path: "SAMPLE") format regex "^(?P<timestamp>\S+ \S+) - (?P<level>\w+)\s+(?P<message>.*)$" timezone "+02:00""#,
        expected("zookeeper.log", pick),
    );
}

#[test]
fn hadoop_compact_times() {
    let pick = |l: &str| naive_utc(l.get(..13)?, "%y%m%d %H%M%S");
    check(
        "hdfs.log",
        r#"source logs = file(path: "SAMPLE") format regex "^(?P<timestamp>\d{6} \d{6}) (?P<pid>\d+) (?P<level>\w+) (?P<component>\S+): (?P<message>.*)$""#,
        expected("hdfs.log", pick),
    );
}

/// The time of a Common Log Format line (`[10/Oct/2026:13:55:36 -0700]`).
fn clf_time(l: &str) -> Option<i64> {
    let stamp = l.split('[').nth(1)?.split(']').next()?;
    DateTime::parse_from_str(stamp, "%d/%b/%Y:%H:%M:%S %z")
        .ok()
        .map(|t| t.timestamp_micros())
}

#[test]
fn common_log_format_with_an_explicit_format() {
    let pick = clf_time;
    check(
        "access.log",
        r#"source logs = file(path: "SAMPLE") format regex "^(?P<client>\S+) \S+ (?P<user>\S+) \[(?P<timestamp>[^\]]+)\] \"(?P<request>[^\"]*)\" (?P<status>\d{3}) (?P<bytes>\S+)" timestamp_format "%d/%b/%Y:%H:%M:%S %z""#,
        expected("access.log", pick),
    );
    check(
        "access.log",
        r#"source logs = file(path: "SAMPLE") format combined fields { status: int, bytes: int }"#,
        expected("access.log", pick),
    );
}

#[test]
fn grok_patterns_name_and_type_captures() {
    let time = clf_time;
    let source = r#"source logs = file(path: "SAMPLE") format regex "^%{IPORHOST:client} %{USER:ident} %{USER:user} \[%{HTTPDATE:timestamp}\] \"%{WORD:method} %{URIPATHPARAM:path} HTTP/%{NUMBER:http}\" %{INT:status:int} %{INT:bytes:int}""#;
    check("access.log", source, expected("access.log", time));
    // `status` and `bytes` are integers: they compare as numbers.
    let errors = |l: &str| {
        let status: i64 = l
            .split('"')
            .nth(2)?
            .split_whitespace()
            .next()?
            .parse()
            .ok()?;
        (status >= 400).then(|| time(l)).flatten()
    };
    let (want, _) = expected("access.log", errors);
    assert!(!want.is_empty());
    let (got, dead) = run_where("access.log", source, "status >= 400 and bytes >= 0");
    assert_eq!(got, want, "errors by minute");
    assert!(dead.is_empty(), "{dead:#?}");
}

#[test]
fn nginx_error_logs_with_slashes() {
    let pick = |l: &str| naive_utc(l.get(..19)?, "%Y/%m/%d %H:%M:%S");
    check(
        "nginx_error.log",
        r#"source logs = file(path: "SAMPLE") format regex "^(?P<timestamp>\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}) \[(?P<level>\w+)\] (?P<message>.*)$""#,
        expected("nginx_error.log", pick),
    );
    check(
        "nginx_error.log",
        r#"source logs = file(path: "SAMPLE") format nginx_error"#,
        expected("nginx_error.log", pick),
    );
}

#[test]
fn json_with_epoch_times_from_seconds_to_nanoseconds() {
    let pick = |l: &str| {
        let v: Value = serde_json::from_str(l).ok()?;
        let raw = match &v["timestamp"] {
            Value::String(s) => s.parse::<f64>().ok()?,
            n => n.as_f64()?,
        };
        // By magnitude: s, ms, µs, ns.
        let us = if raw < 1e11 {
            raw * 1e6
        } else if raw < 1e14 {
            raw * 1e3
        } else if raw < 1e17 {
            raw
        } else {
            raw / 1e3
        };
        Some(us.round() as i64)
    };
    check(
        "epoch.ndjson",
        "source logs = file(path: \"SAMPLE\") format json fields { level: string, msg: string }",
        expected("epoch.ndjson", pick),
    );
}

/// `set timestamp = parse_timestamp(...)` that gives no time sends the event
/// to the source's dead letters with the reason and its original line (it
/// was silently dropped as late before); the others are windowed on it.
#[test]
fn a_set_timestamp_without_a_time_sends_the_event_to_the_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let mut lines = Vec::new();
    for i in 0..5 {
        lines.push(format!("01/03/2026 10:00:{:02} ok {i}", i * 7));
    }
    lines.push("yesterday noon broken 1".to_string());
    for i in 0..3 {
        lines.push(format!("01/03/2026 10:01:{:02} ok {i}", i * 9));
    }
    lines.push("31/02/2026 10:02:00 broken 2".to_string());
    std::fs::write(&log, lines.join("\n") + "\n").unwrap();
    let out = dir.path().join("windows.ndjson");
    let rules = format!(
        r#"source logs = file(path: "{}") format regex "^(?P<day>\S+) (?P<clock>\S+) (?P<message>.*)$"
output out = file(path: "{}")
pipeline p {{
  from logs
  | set timestamp = parse_timestamp(concat(day, " ", clock), "%d/%m/%Y %H:%M:%S")
  | window tumbling 1m lateness 1d {{ n = count() }}
  | to out
}}
"#,
        log.display(),
        out.display()
    );
    let rules_path = dir.path().join("times.rules");
    std::fs::write(&rules_path, &rules).unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["run", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg(&rules_path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}\n{rules}");
    let counts: Vec<(String, i64)> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| {
            let row: Value = serde_json::from_str(l).unwrap();
            (
                row["window_start"].as_str().unwrap().to_string(),
                row["n"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        counts,
        [
            ("2026-03-01T10:00:00Z".to_string(), 5),
            ("2026-03-01T10:01:00Z".to_string(), 3)
        ]
    );
    let dead = dead_letters(dir.path());
    assert_eq!(dead.len(), 2, "{dead:#?}");
    assert_eq!(dead[0]["line"], "yesterday noon broken 1", "{dead:#?}");
    assert_eq!(dead[1]["line"], "31/02/2026 10:02:00 broken 2", "{dead:#?}");
    for d in &dead {
        assert!(
            d["reason"].as_str().unwrap().contains("gave no time"),
            "{d}"
        );
    }
    assert!(
        stderr.contains("2 dead letters") && stderr.contains("0 late"),
        "{stderr}"
    );
}

/// A Java application's log with stack traces under its error lines, read
/// with `first_line`: one event per logged line (the traces' frames join
/// them, not the dead letters nor events of their own), at the logged
/// line's time, the trace in `message`.
#[test]
fn stack_traces_join_the_line_that_logged_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = String::new();
    for i in 0..300 {
        log.push_str(&format!(
            "2026-03-01 10:{:02}:{:02},{:03} {} [worker-{}] c.e.Api - request {i}\n",
            i / 60,
            i % 60,
            i % 1000,
            if i % 10 == 0 { "ERROR" } else { "INFO " },
            i % 4
        ));
        if i % 10 == 0 {
            log.push_str("java.lang.IllegalStateException: boom\n\tat com.example.Api.handle(Api.java:42)\n\tat com.example.Server.run(Server.java:7)\nCaused by: java.io.IOException: reset by peer\n\t... 2 more\n");
        }
    }
    let sample = dir.path().join("app.log");
    std::fs::write(&sample, &log).unwrap();
    let out = dir.path().join("errors.ndjson");
    let rules = format!(
        r#"source logs = file(path: "{}", first_line: "^\\d{{4}}-\\d{{2}}-\\d{{2}} ")
  format regex "^(?P<timestamp>\\S+ \\S+) (?P<severity>\\w+)\\s+\\[(?P<thread>[^\\]]+)\\] (?P<logger>\\S+) - (?P<message>.*)$"
output out = file(path: "{}")
pipeline p {{
  from logs
  | where severity == "ERROR"
  | to out
}}
"#,
        sample.display(),
        out.display()
    );
    weir_run(dir.path(), &rules, "java.log");
    assert!(
        !dir.path().join("data/deadletter/logs.ndjson").exists(),
        "no dead letters"
    );
    let errors: Vec<Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(errors.len(), 30);
    for (k, e) in errors.iter().enumerate() {
        let i = k * 10;
        let message = e["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!(
                "request {i}\njava.lang.IllegalStateException: boom\n\tat com.example.Api"
            )),
            "{message}"
        );
        assert!(
            message.ends_with("reset by peer\n\t... 2 more"),
            "{message}"
        );
        let at = Utc
            .with_ymd_and_hms(2026, 3, 1, 10, (i / 60) as u32, (i % 60) as u32)
            .unwrap()
            .timestamp_micros()
            + (i % 1000) as i64 * 1000;
        let ts = DateTime::parse_from_rfc3339(e["timestamp"].as_str().unwrap())
            .unwrap()
            .timestamp_micros();
        assert_eq!(ts, at, "{e}");
    }
}

/// `weir run` decodes only the fields its pipeline reads (a window reached
/// through `where` alone): an unread declared field is still checked, so a
/// value that does not fit its type sends the line to the dead letters with
/// its line and reason, and other shippers' names (`level`) still fill the
/// core field the `where` reads.
#[test]
fn fields_a_run_does_not_read_are_still_checked() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.ndjson");
    let lines = [
        r#"{"timestamp":"2026-03-01T00:00:01Z","severity":"error","status":500,"user":"a"}"#,
        r#"{"timestamp":"2026-03-01T00:00:02Z","severity":"error","status":"many","user":"b"}"#,
        r#"{"timestamp":"2026-03-01T00:00:03Z","level":"ERROR","status":404}"#,
        r#"{"timestamp":"2026-03-01T00:01:04Z","severity":"info","status":200}"#,
        r#"{"timestamp":"2026-03-01T00:01:05Z","severity":"warn"}"#,
    ];
    std::fs::write(&log, lines.join("\n") + "\n").unwrap();
    let out = dir.path().join("windows.ndjson");
    let rules = format!(
        "source logs = file(path: \"{}\") format json fields {{ status: int, user: string }}\n\
         output out = file(path: \"{}\")\n\
         pipeline p {{\n  from logs\n  | where severity >= warn\n  | window tumbling 1m {{ n = count() }}\n  | to out\n}}\n",
        log.display(),
        out.display()
    );
    let stderr = weir_run(dir.path(), &rules, "unread fields");
    // Counted where the decoders' encoded letters are written.
    assert!(stderr.contains(" 1 dead letters,"), "{stderr}");
    let counts: Vec<i64> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["n"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(
        counts,
        [2, 1],
        "the first minute's two errors (one by `level`), then the warning"
    );
    let dead = dead_letters(dir.path());
    assert_eq!(dead.len(), 1, "{dead:#?}");
    assert_eq!(dead[0]["line"], lines[1]);
    assert!(
        dead[0]["reason"]
            .as_str()
            .unwrap()
            .contains("`status` should be an integer"),
        "{}",
        dead[0]
    );
}

/// A file large enough to be read in chunks, one per decoder at a time
/// (on a machine with more than one core): lines of every kind across the
/// chunks' edges keep their numbers, every event is counted once, and the
/// archive holds each under its line's number.
#[test]
fn a_large_file_read_on_every_core_loses_and_renumbers_no_line() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.ndjson");
    let mut text = String::from("\u{feff}");
    let mut bad = Vec::new();
    let mut want = BTreeMap::<i64, i64>::new();
    let t0 = DateTime::parse_from_rfc3339("2026-03-01T00:00:00Z")
        .unwrap()
        .timestamp();
    for i in 0..30_000i64 {
        let time = Utc.timestamp_opt(t0 + i, 0).unwrap().to_rfc3339();
        let pad = "x".repeat((i as usize * 7919) % 300);
        let line = match i {
            _ if i % 997 == 3 => String::new(),
            // Nearly as long as a chunk (1 MiB), so across chunk edges.
            12_345 => format!(
                r#"{{"timestamp":"{time}","message":"{}"}}"#,
                "y".repeat(1_000_000)
            ),
            _ if i % 101 == 50 => {
                let line = format!(r#"{{"timestamp":"{time}","message":"cut"#);
                bad.push((i, line.clone()));
                line
            }
            _ => format!(r#"{{"timestamp":"{time}","message":"{pad}"}}"#),
        };
        if !line.is_empty() && i % 101 != 50 {
            *want.entry((t0 + i) / 60 * 60 * 1_000_000).or_default() += 1;
        }
        text.push_str(&line);
        text.push_str(if i % 7 == 0 { "\r\n" } else { "\n" });
    }
    // The last line has no line break.
    text.push_str(r#"{"timestamp":"2026-03-01T09:00:00Z","message":"last"}"#);
    *want.entry((t0 + 9 * 3600) * 1_000_000).or_default() += 1;
    assert!(text.len() > 6 << 20, "{}", text.len());
    std::fs::write(&log, &text).unwrap();
    let out = dir.path().join("windows.ndjson");
    let rules = format!(
        "source logs = file(path: \"{}\") format json\n\
         archive logs\n\
         output out = file(path: \"{}\")\n\
         pipeline p {{\n  from logs\n  | window tumbling 1m {{ n = count() }}\n  | to out\n}}\n",
        log.display(),
        out.display()
    );
    weir_run(dir.path(), &rules, "a large file");
    let mut got = BTreeMap::<i64, i64>::new();
    for l in std::fs::read_to_string(&out).unwrap().lines() {
        let row: Value = serde_json::from_str(l).unwrap();
        let start = DateTime::parse_from_rfc3339(row["window_start"].as_str().unwrap())
            .unwrap()
            .timestamp_micros();
        *got.entry(start).or_default() += row["n"].as_i64().unwrap();
    }
    assert_eq!(got, want);
    let dead: Vec<(i64, String)> = dead_letters(dir.path())
        .iter()
        .map(|d| {
            (
                d["offset"].as_i64().unwrap(),
                d["line"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let numbers = |l: &[(i64, String)]| l.iter().map(|(n, _)| *n).collect::<Vec<_>>();
    assert_eq!(
        numbers(&dead),
        numbers(&bad),
        "every bad line, numbered, in order"
    );
    assert_eq!(dead, bad);
    // The archive holds every event once, under its line's number.
    let (rows, _) = crate::support::archived(&dir.path().join("data/archive"));
    let offsets: Vec<i64> = rows.iter().map(|r| r.1).collect();
    let mut events = Vec::new();
    for (i, line) in text.split('\n').enumerate() {
        let line = line.trim_start_matches('\u{feff}').trim_end_matches('\r');
        if !line.is_empty() && !bad.iter().any(|(n, _)| *n == i as i64) {
            events.push(i as i64);
        }
    }
    assert_eq!(offsets.len(), events.len());
    assert!(offsets == events, "archived line numbers differ");
}

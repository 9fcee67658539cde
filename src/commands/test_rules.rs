//! `weir test FILE.test.toml...`: rule unit tests on a simulated clock, in the
//! spirit of `promtool test rules`.
//!
//! A test file names a `.rules` file, lists input events (with times relative
//! to `start`) and expectations at given times: the window rows emitted since
//! the previous expectation, the open alerts, and the notifications sent. The
//! clock only moves from one expectation to the next; windows close as if that
//! much wall-clock time had passed.
//!
//! ```toml
//! rules = "demo.rules"
//! start = "2026-01-01T00:00:00Z"
//!
//! [[input]]
//! source = "shop"
//! at = "0s"          # first event, relative to start
//! every = "100ms"    # spacing when count > 1
//! count = 60
//! event = { service = "checkout", severity = "error", user_id = "u{n}" }
//!
//! [[expect]]
//! at = "40s"
//! pipeline = "checkout_errors"
//! windows = [{ service = "checkout", errors = 60 }]
//! alerts = [{ rule = "checkout error burst", state = "firing", labels = { service = "checkout" } }]
//! notifications = [{ channel = "oncall", status = "firing", alerts = 1 }]
//! ```

use crate::rules;
use crate::simulated::Simulated;
use anyhow::Context;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use weir_engine::alerting::{AlertSettings, Notification};
use weir_engine::decode::LineDecoder;
use weir_engine::{AlertManager, LineBatch};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    /// The `.rules` file, relative to the test file.
    rules: PathBuf,
    /// Time zero of the test (RFC 3339); 2026-01-01T00:00:00Z by default.
    start: Option<String>,
    /// Repeat interval of the alert manager (default 4h).
    #[serde(default, with = "humantime_serde")]
    repeat_interval: Option<Duration>,
    #[serde(default, rename = "input")]
    inputs: Vec<Input>,
    #[serde(default, rename = "expect")]
    expects: Vec<Expect>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    source: String,
    #[serde(with = "humantime_serde")]
    at: Duration,
    #[serde(default, with = "humantime_serde")]
    every: Option<Duration>,
    #[serde(default = "one")]
    count: u64,
    /// The event's fields (sent as a JSON line); `{n}` in a string becomes the
    /// event's index. `timestamp` defaults to the event's time.
    event: Option<Map<String, Value>>,
    /// Or the raw line, for plain/regex/logfmt sources: `{n}` is the index,
    /// `{time}` the event's time in RFC 3339, `{clf_time}` in Common Log Format.
    line: Option<String>,
}

fn one() -> u64 {
    1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    #[serde(with = "humantime_serde")]
    at: Duration,
    /// Only this pipeline's windows and alerts (default: all).
    pipeline: Option<String>,
    windows: Option<Vec<Map<String, Value>>>,
    alerts: Option<Vec<ExpectAlert>>,
    notifications: Option<Vec<ExpectNotification>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectAlert {
    rule: String,
    state: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectNotification {
    channel: String,
    status: String,
    /// How many alerts the message carries.
    alerts: Option<usize>,
}

pub async fn run(files: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let (mut passed, mut failed) = (0usize, 0usize);
    for f in files {
        match run_file(f).await {
            Ok(report) => {
                passed += report.passed;
                failed += report.failed;
                if report.failures.is_empty() {
                    println!("ok   {} ({} expectations)", f.display(), report.passed);
                } else {
                    println!("FAIL {}", f.display());
                    for fail in &report.failures {
                        println!("{fail}");
                    }
                }
            }
            Err(e) => {
                failed += 1;
                println!("FAIL {}\n  {e:#}", f.display());
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

struct Report {
    passed: usize,
    failed: usize,
    failures: Vec<String>,
}

async fn run_file(path: &Path) -> anyhow::Result<Report> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let test: TestFile =
        toml::from_str(&text).with_context(|| format!("invalid test file {}", path.display()))?;
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let rules_path = dir.join(&test.rules);
    let rules_text = rules::read(&rules_path)?;
    let rules_name = rules_path.display().to_string();
    let program = rules::compile(&rules_name, &rules_text)
        .map_err(|e| anyhow::anyhow!("the rules do not compile:\n{}", e.render()))?;

    let start_us = match &test.start {
        Some(s) => chrono::DateTime::parse_from_rfc3339(s)
            .with_context(|| format!("start `{s}`: write RFC 3339"))?
            .timestamp_micros(),
        None => 1_767_225_600_000_000, // 2026-01-01T00:00:00Z
    };
    let mut settings = AlertSettings::default();
    if let Some(r) = test.repeat_interval {
        settings.repeat_interval = r;
    }
    let base = rules_path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let mut sim = Simulated::new(&program, base, start_us, settings)
        .map_err(|e| anyhow::anyhow!("{}", rules::engine_error(&rules_name, &rules_text, &e)))?;
    let mut decoders = HashMap::new();
    for s in &program.sources {
        let name = s.decl.name.name.clone();
        decoders.insert(name.clone(), LineDecoder::for_source(s)?);
    }

    // Every input event at its time, in time order.
    let mut events: Vec<(i64, String, String)> = Vec::new();
    for (i, input) in test.inputs.iter().enumerate() {
        if !decoders.contains_key(&input.source) {
            anyhow::bail!(
                "input {}: no source `{}` in {} (sources: {})",
                i + 1,
                input.source,
                test.rules.display(),
                decoders.keys().cloned().collect::<Vec<_>>().join(", ")
            );
        }
        if input.event.is_some() == input.line.is_some() {
            anyhow::bail!("input {}: give either `event` or `line`", i + 1);
        }
        let every = input.every.unwrap_or_default().as_micros() as i64;
        for n in 0..input.count {
            let t = start_us + input.at.as_micros() as i64 + every * n as i64;
            let text = match (&input.event, &input.line) {
                (Some(event), _) => {
                    let mut ev = Map::new();
                    for (k, v) in event {
                        let v = match v {
                            Value::String(s) => Value::String(s.replace("{n}", &n.to_string())),
                            other => other.clone(),
                        };
                        ev.insert(k.clone(), v);
                    }
                    ev.entry("timestamp".to_string())
                        .or_insert_with(|| Value::String(weir_engine::alerting::rfc3339(t)));
                    Value::Object(ev).to_string()
                }
                (None, Some(line)) => {
                    let time = chrono::DateTime::from_timestamp_micros(t).unwrap_or_default();
                    line.replace("{n}", &n.to_string())
                        .replace("{time}", &weir_engine::alerting::rfc3339(t))
                        .replace(
                            "{clf_time}",
                            &time.format("%d/%b/%Y:%H:%M:%S +0000").to_string(),
                        )
                }
                (None, None) => String::new(),
            };
            events.push((t, input.source.clone(), text));
        }
    }
    events.sort_by_key(|e| e.0);

    let mut expects: Vec<&Expect> = test.expects.iter().collect();
    expects.sort_by_key(|e| e.at);
    let mut next_event = 0;
    let mut offset = 0i64;
    let mut report = Report {
        passed: 0,
        failed: 0,
        failures: Vec::new(),
    };
    let mut windows_since: HashMap<String, Vec<Map<String, Value>>> = HashMap::new();
    let mut notes_since: Vec<Notification> = Vec::new();
    for exp in expects {
        let t = start_us + exp.at.as_micros() as i64;
        // Feed the events up to t, a source's consecutive run as one batch.
        while next_event < events.len() && events[next_event].0 <= t {
            let source = events[next_event].1.clone();
            let mut batch = LineBatch::with_capacity(4096, 64);
            batch.first_offset = offset;
            batch.received_at_us = events[next_event].0;
            while next_event < events.len()
                && events[next_event].0 <= t
                && events[next_event].1 == source
            {
                batch.push(events[next_event].2.as_bytes());
                next_event += 1;
                offset += 1;
            }
            sim.clock.set(batch.received_at_us);
            let decoder = decoders
                .get_mut(&source)
                .ok_or_else(|| anyhow::anyhow!("no source `{source}`"))?;
            let decoded = decoder.decode(&batch)?;
            for d in &decoded.dead {
                report.failed += 1;
                report.failures.push(format!(
                    "  input event could not be decoded: {} ({})",
                    d.line, d.reason
                ));
            }
            if let Some(b) = decoded.batch {
                for p in sim.pipelines.iter_mut().filter(|p| p.source == source) {
                    p.push(b.clone()).await?;
                }
            }
        }
        sim.clock.set(t);
        for p in sim.pipelines.iter_mut() {
            p.advance_to(t).await?;
        }
        sim.manager.tick();
        for (pipeline, row) in sim.take_rows()? {
            windows_since.entry(pipeline).or_default().push(row);
        }
        notes_since.extend(sim.manager.take_unrouted());
        let before = report.failures.len();
        check(
            exp,
            &sim.manager,
            &mut windows_since,
            &mut notes_since,
            &mut report.failures,
        );
        if report.failures.len() == before {
            report.passed += 1;
        } else {
            report.failed += 1;
            report.failures.insert(
                before,
                format!(
                    "  expect at {}{}:",
                    humantime::format_duration(exp.at),
                    exp.pipeline
                        .as_ref()
                        .map(|p| format!(" (pipeline {p})"))
                        .unwrap_or_default()
                ),
            );
        }
    }
    Ok(report)
}

fn check(
    exp: &Expect,
    manager: &AlertManager,
    windows: &mut HashMap<String, Vec<Map<String, Value>>>,
    notes: &mut Vec<Notification>,
    failures: &mut Vec<String>,
) {
    let wanted = |pipeline: &str| exp.pipeline.as_deref().is_none_or(|p| p == pipeline);
    if let Some(expected) = &exp.windows {
        let mut actual: Vec<Map<String, Value>> = Vec::new();
        windows.retain(|pipeline, rows| {
            if wanted(pipeline) {
                actual.append(rows);
                false
            } else {
                true
            }
        });
        diff(
            "windows",
            expected.iter().map(|e| Value::Object(e.clone())).collect(),
            actual.into_iter().map(Value::Object).collect(),
            subset,
            failures,
        );
    }
    if let Some(expected) = &exp.alerts {
        let actual: Vec<Value> = manager
            .open()
            .into_iter()
            .filter(|a| wanted(&a.pipeline))
            .map(|a| {
                serde_json::json!({ "rule": a.rule, "state": a.state.as_str(), "labels": a.labels })
            })
            .collect();
        let expected: Vec<Value> = expected
            .iter()
            .map(|e| serde_json::json!({ "rule": e.rule, "state": e.state, "labels": e.labels }))
            .collect();
        diff("alerts", expected, actual, subset, failures);
    }
    if let Some(expected) = &exp.notifications {
        let actual: Vec<Value> = std::mem::take(notes)
            .into_iter()
            .filter(|n| wanted(&n.pipeline))
            .map(|n| {
                serde_json::json!({ "channel": n.channel, "status": n.status.as_str(), "alerts": n.alerts.len() })
            })
            .collect();
        let expected: Vec<Value> = expected
            .iter()
            .map(|e| {
                let mut v = serde_json::json!({ "channel": e.channel, "status": e.status });
                if let (Some(n), Some(o)) = (e.alerts, v.as_object_mut()) {
                    o.insert("alerts".into(), Value::from(n));
                }
                v
            })
            .collect();
        diff("notifications", expected, actual, subset, failures);
    }
}

/// Pairs each expected item with a distinct actual item it matches; prints
/// what is missing (`-`) and what is extra (`+`).
fn diff(
    what: &str,
    expected: Vec<Value>,
    actual: Vec<Value>,
    matches: impl Fn(&Value, &Value) -> bool,
    failures: &mut Vec<String>,
) {
    let mut left: Vec<Option<Value>> = actual.into_iter().map(Some).collect();
    let mut missing = Vec::new();
    for e in expected {
        match left
            .iter_mut()
            .find(|a| a.as_ref().is_some_and(|a| matches(&e, a)))
        {
            Some(slot) => *slot = None,
            None => missing.push(e),
        }
    }
    let extra: Vec<Value> = left.into_iter().flatten().collect();
    if missing.is_empty() && extra.is_empty() {
        return;
    }
    failures.push(format!("    {what}:"));
    for m in missing {
        failures.push(format!("    - expected {m}"));
    }
    for x in extra {
        failures.push(format!("    + got      {x}"));
    }
}

/// Every field of `expected` is in `actual` with an equal value (numbers
/// within 1e-9 relative; objects compared recursively as subsets).
fn subset(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => e
            .iter()
            .all(|(k, v)| a.get(k).is_some_and(|av| subset(v, av))),
        (Value::Number(e), Value::Number(a)) => match (e.as_f64(), a.as_f64()) {
            (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0),
            _ => false,
        },
        (e, a) => e == a,
    }
}

//! Event-time semantics: out-of-order events within the allowed lateness land in
//! the right window; later ones are dropped and counted; sliding and session
//! windows assign events as documented.

use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use weir_engine::decode::LineDecoder;
use weir_engine::functions::TableCache;
use weir_engine::output::rows_as_json;
use weir_engine::pipeline::{CompiledPipeline, PipelineContext};
use weir_engine::{AlertManager, LineBatch, Metrics, Sink};

#[derive(Default)]
struct Capture(Mutex<Vec<serde_json::Map<String, serde_json::Value>>>);

#[async_trait]
impl Sink for Capture {
    async fn write(&self, batch: &RecordBatch) -> weir_engine::Result<()> {
        let rows = rows_as_json(batch)?;
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(rows);
        Ok(())
    }
    async fn flush(&self) -> weir_engine::Result<()> {
        Ok(())
    }
}

/// Runs `stages` over events given as (second, service), one batch per event so
/// the watermark moves between them. Returns the rows sent to `out` and the
/// late-dropped count.
async fn run(
    stages: &str,
    events: &[(i64, &str)],
) -> (Vec<serde_json::Map<String, serde_json::Value>>, u64) {
    let text = format!(
        "source s = stdin() format json\noutput out = stdout()\npipeline p {{\n from s\n {stages}\n | to out\n}}"
    );
    let program = weir_dsl::compile(&text).unwrap_or_else(|e| panic!("{e:?}"));
    let registry = prometheus::Registry::new();
    let metrics = Metrics::new(&registry).unwrap_or_else(|e| panic!("{e}"));
    let capture = Arc::new(Capture::default());
    let mut outputs: HashMap<String, Arc<dyn Sink>> = HashMap::new();
    outputs.insert("out".into(), capture.clone());
    let mut tables = TableCache::new(".");
    let mut cx = PipelineContext {
        tables: &mut tables,
        outputs: &outputs,
        alerts: AlertManager::in_memory(),
        metrics: &metrics,
    };
    let mut p =
        CompiledPipeline::compile(&program.pipelines[0], &mut cx).unwrap_or_else(|e| panic!("{e}"));
    let src = &program.sources[0];
    let mut decoder =
        LineDecoder::new("s", &src.format, &src.schema).unwrap_or_else(|e| panic!("{e}"));
    for (i, (sec, service)) in events.iter().enumerate() {
        let mut lines = LineBatch {
            first_offset: i as i64,
            ..Default::default()
        };
        let ts = chrono::DateTime::from_timestamp(1_767_225_600 + sec, 0).unwrap_or_default();
        lines.push(
            format!(
                r#"{{"timestamp":"{}","service":"{service}"}}"#,
                ts.to_rfc3339()
            )
            .as_bytes(),
        );
        let batch = decoder
            .decode(&lines)
            .unwrap_or_else(|e| panic!("{e}"))
            .batch;
        p.push(batch.unwrap_or_else(|| panic!("line {i} did not decode")))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    p.finish().await.unwrap_or_else(|e| panic!("{e}"));
    let late = metrics.late_dropped.with_label_values(&["p"]).get();
    let rows = capture.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
    (rows, late)
}

fn secs(v: &serde_json::Value) -> i64 {
    let s = v.as_str().unwrap_or_default();
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp() - 1_767_225_600)
        .unwrap_or(i64::MIN)
}

fn summary(rows: &[serde_json::Map<String, serde_json::Value>]) -> Vec<(i64, i64, String, u64)> {
    rows.iter()
        .map(|r| {
            (
                secs(&r["window_start"]),
                secs(&r["window_end"]),
                r.get("service")
                    .and_then(|s| s.as_str())
                    .unwrap_or("")
                    .to_string(),
                r["n"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

#[tokio::test]
async fn out_of_order_within_lateness_counts_later_ones_dropped() {
    // Watermark = max event time - 5s. Windows of 10s.
    let events = [
        (1, "a"),
        (3, "a"),
        (12, "a"),
        (8, "a"),
        (16, "a"),
        (9, "a"),
        (25, "a"),
    ];
    let (rows, late) = run("| window tumbling 10s lateness 5s { n = count() }", &events).await;
    // 8 arrives after 12 (watermark 7): still in [0,10). 16 moves the watermark
    // to 11, closing [0,10); 9 then is late and dropped.
    assert_eq!(
        summary(&rows),
        vec![
            (0, 10, String::new(), 3),
            (10, 20, String::new(), 2),
            (20, 30, String::new(), 1)
        ]
    );
    assert_eq!(late, 1);
}

#[tokio::test]
async fn zero_lateness_drops_any_event_behind_the_watermark() {
    let events = [(5, "a"), (15, "a"), (4, "a"), (14, "a")];
    let (rows, late) = run("| window tumbling 10s { n = count() }", &events).await;
    assert_eq!(
        summary(&rows),
        vec![(0, 10, String::new(), 1), (10, 20, String::new(), 2)]
    );
    assert_eq!(late, 1);
}

#[tokio::test]
async fn windows_are_kept_per_group() {
    let events = [(1, "a"), (2, "b"), (3, "a"), (11, "b")];
    let (rows, late) = run("| window tumbling 10s by service { n = count() }", &events).await;
    assert_eq!(
        summary(&rows),
        vec![
            (0, 10, "a".into(), 2),
            (0, 10, "b".into(), 1),
            (10, 20, "b".into(), 1)
        ]
    );
    assert_eq!(late, 0);
}

#[tokio::test]
async fn sliding_windows_count_each_event_in_every_window_it_falls_in() {
    // Size 10s, every 5s: event at 7 is in [0,10) and [5,15).
    let events = [(2, "a"), (7, "a"), (12, "a")];
    let (rows, late) = run("| window sliding 10s every 5s { n = count() }", &events).await;
    let got: Vec<(i64, i64, u64)> = summary(&rows)
        .into_iter()
        .map(|(s, e, _, n)| (s, e, n))
        .collect();
    assert_eq!(got, vec![(-5, 5, 1), (0, 10, 2), (5, 15, 2), (10, 20, 1)]);
    assert_eq!(late, 0);
}

#[tokio::test]
async fn session_windows_merge_on_gap() {
    // Gap 10s (an event's session is [t, t+10s); overlapping ones merge):
    // 0, 5, 12 form [0, 22); 30 and 38 form [30, 48); 48 starts [48, 58) since
    // [30, 48) and [48, 58) only touch.
    let events = [
        (0, "a"),
        (5, "a"),
        (12, "a"),
        (30, "a"),
        (38, "a"),
        (48, "a"),
    ];
    let (rows, late) = run("| window session gap 10s { n = count() }", &events).await;
    let got: Vec<(i64, i64, u64)> = summary(&rows)
        .into_iter()
        .map(|(s, e, _, n)| (s, e, n))
        .collect();
    assert_eq!(got, vec![(0, 22, 3), (30, 48, 2), (48, 58, 1)]);
    assert_eq!(late, 0);
}

/// `approx_count_distinct` is exact while a key and window have seen up to
/// 256 distinct values, and within a few percent of `count_distinct` past
/// that, in bounded memory.
#[tokio::test]
async fn approx_count_distinct_tracks_count_distinct() {
    let names: Vec<String> = (0..6000).map(|i| format!("user-{i}")).collect();
    let mut events: Vec<(i64, &str)> = names.iter().map(|n| (1, n.as_str())).collect();
    for round in 0..3 {
        events.extend(names[..100].iter().map(|n| (11 + round, n.as_str())));
    }
    let (rows, _) = run(
        "| window tumbling 10s { exact = count_distinct(service), approx = approx_count_distinct(service) }",
        &events,
    )
    .await;
    let got: Vec<(i64, u64, u64)> = rows
        .iter()
        .map(|r| {
            (
                secs(&r["window_start"]),
                r["exact"].as_u64().unwrap_or(0),
                r["approx"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!((got[0].0, got[0].1), (0, 6000));
    let err = (got[0].2 as f64 - 6000.0).abs() / 6000.0;
    assert!(err < 0.05, "6,000 distinct estimated as {}", got[0].2);
    assert_eq!(got[1], (10, 100, 100), "exact while small");
}

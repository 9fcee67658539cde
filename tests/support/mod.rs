//! Helpers shared by the integration tests: reading the Parquet archive back,
//! starting a real Kafka-compatible broker (tansu) on loopback, and running the
//! `weir` binary.
#![allow(dead_code)] // the benchmarks include this module too and use parts of it

pub mod server;
pub mod tansu;
pub mod tls;

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::path::Path;
use std::time::{Duration, Instant};

/// Every (`_partition`, `_offset`) in the Parquet files under `dir` (sorted),
/// and how many files there are. A missing folder is an empty archive.
pub fn archived(dir: &Path) -> (Vec<(i64, i64)>, usize) {
    let mut rows = Vec::new();
    let mut files = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap_or_else(|e| panic!("{e}")).path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                files += 1;
                let f = std::fs::File::open(&p).unwrap_or_else(|e| panic!("{e}"));
                let reader = ParquetRecordBatchReaderBuilder::try_new(f)
                    .and_then(|b| b.build())
                    .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                for b in reader {
                    let b = b.unwrap_or_else(|e| panic!("{e}"));
                    let col = |name: &str| {
                        b.column_by_name(name)
                            .unwrap_or_else(|| panic!("no {name} in {}", p.display()))
                            .as_primitive::<Int64Type>()
                            .values()
                            .to_vec()
                    };
                    rows.extend(col("_partition").into_iter().zip(col("_offset")));
                }
            }
        }
    }
    rows.sort_unstable();
    (rows, files)
}

/// The (partition, offset) of every dead letter in a dead-letter file.
pub fn dead_letters(file: &Path) -> Vec<(i64, i64)> {
    let Ok(text) = std::fs::read_to_string(file) else {
        return Vec::new();
    };
    text.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}"));
            (
                v["partition"].as_i64().unwrap_or(-1),
                v["offset"].as_i64().unwrap_or(-1),
            )
        })
        .collect()
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

/// Peak resident memory of this process (VmHWM), in MiB: for benchmarks.
pub fn peak_rss_mib() -> f64 {
    peak_rss_mib_of("self")
}

/// Peak resident memory of process `pid` (`self` for this one), in MiB.
pub fn peak_rss_mib_of(pid: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

/// Waits until something listens on `127.0.0.1:port` (30 s at most).
pub fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "nothing listens on 127.0.0.1:{port} after 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Decodes `input` and pushes every batch through `pipelines`, then finishes
/// them, on one thread (a current-thread runtime): for benchmarks. Returns
/// the seconds it took.
pub fn run_pipelines(
    decoder: &mut weir_engine::decode::LineDecoder,
    pipelines: &mut [weir_engine::pipeline::CompiledPipeline],
    input: &[weir_engine::LineBatch],
) -> Result<f64, Box<dyn std::error::Error>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let t = Instant::now();
    rt.block_on(async {
        for b in input {
            if let Some(batch) = decoder.decode(b)?.batch {
                for p in pipelines.iter_mut() {
                    p.push(batch.clone()).await?;
                }
            }
        }
        for p in pipelines.iter_mut() {
            p.finish().await?;
        }
        Ok::<_, weir_engine::EngineError>(())
    })?;
    Ok(t.elapsed().as_secs_f64())
}

/// Lints Prometheus text with `promtool check metrics` (Debian's prometheus
/// package, installed by scripts/test.sh): the naming guide's suffixes, help
/// texts, types. Fails, never skips, without promtool.
pub fn promtool_check(text: &str) {
    use std::io::Write;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("promtool (Debian package prometheus) is needed: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The body of `GET url` as text (a test fails on a transport error).
pub async fn get_text(http: &reqwest::Client, url: &str) -> String {
    http.get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .text()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

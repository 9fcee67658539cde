//! Helpers shared by the integration tests: reading the Parquet archive back,
//! starting a real Kafka-compatible broker (tansu) on loopback, and running the
//! `weir` binary.
#![allow(dead_code)] // the benchmarks include this module too and use parts of it

pub mod azurite;
pub mod moto;
pub mod server;
pub mod tansu;
pub mod tls;

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::path::Path;
use std::time::{Duration, Instant};

/// Who loads the machine: heavy tests hold it alone, timing-sensitive
/// tests share it.
static LOAD: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// Held by the tests that load the machine most (SIGKILL chaos with
/// several engines and brokers): on a 2-core CI machine they run neither
/// beside each other nor beside a timing-sensitive test.
pub async fn heavy() -> tokio::sync::RwLockWriteGuard<'static, ()> {
    LOAD.write().await
}

/// Held by tests that measure time (request timeouts, a shipper catching
/// up): no heavy test runs meanwhile.
pub async fn timing() -> tokio::sync::RwLockReadGuard<'static, ()> {
    LOAD.read().await
}

/// [`timing`] for a test outside a runtime.
pub fn timing_blocking() -> tokio::sync::RwLockReadGuard<'static, ()> {
    LOAD.blocking_read()
}

/// Every (`_partition`, `_offset`) in the archive under `dir` (sorted), and
/// how many data files hold them. In a Delta table (a folder with a
/// `_delta_log`), only the files of its latest version count: its JSON
/// commits are replayed here, independently of Weir's reader. Parquet
/// files outside any table count as they are. A missing folder is an empty
/// archive.
pub fn archived(dir: &Path) -> (Vec<(i64, i64)>, usize) {
    let mut rows = Vec::new();
    let mut files = 0;
    for p in data_files(dir) {
        files += 1;
        let f = std::fs::File::open(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
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
    rows.sort_unstable();
    (rows, files)
}

/// The data files readers see under `dir`: each Delta table's live files
/// (its `_delta_log/*.json` commits replayed: `add` then `remove`), and
/// Parquet files outside any table.
pub fn data_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let log = d.join("_delta_log");
        if log.is_dir() {
            out.extend(table_files(&d));
            continue;
        }
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap_or_else(|e| panic!("{e}")).path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The live files of the Delta table at `table`, from its JSON commits.
fn table_files(table: &Path) -> Vec<std::path::PathBuf> {
    let mut commits: Vec<std::path::PathBuf> = std::fs::read_dir(table.join("_delta_log"))
        .unwrap_or_else(|e| panic!("{e}"))
        .map(|e| e.unwrap_or_else(|e| panic!("{e}")).path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.len() == 25 && n.ends_with(".json"))
        })
        .collect();
    commits.sort();
    let mut live = std::collections::BTreeSet::new();
    for c in commits {
        let text = std::fs::read_to_string(&c).unwrap_or_else(|e| panic!("{e}"));
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let v: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{}: {e}", c.display()));
            let path = |a: &serde_json::Value| {
                percent_decode(a["path"].as_str().unwrap_or_else(|| panic!("{line}")))
            };
            if let Some(a) = v.get("add") {
                live.insert(path(a));
            } else if let Some(r) = v.get("remove") {
                live.remove(&path(r));
            }
        }
    }
    live.into_iter().map(|p| table.join(p)).collect()
}

/// `%XX` escapes decoded (Delta stores paths as URL-encoded relative paths).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
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

/// A child process of a test: killed and reaped when dropped, so a failing
/// test leaves nothing running behind it.
pub struct Reaped(pub std::process::Child);

impl Reaped {
    /// Stops it as an operator would (SIGTERM) and waits for it, at most
    /// `within`; its exit status.
    pub fn terminate(&mut self, within: Duration) -> std::process::ExitStatus {
        std::process::Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status()
            .unwrap();
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the process did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl std::ops::Deref for Reaped {
    type Target = std::process::Child;
    fn deref(&self) -> &std::process::Child {
        &self.0
    }
}

impl std::ops::DerefMut for Reaped {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        &mut self.0
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
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
/// A test server started from an installed program on a free loopback
/// port, killed when dropped.
pub struct Service {
    child: std::process::Child,
    pub port: u16,
}

impl Service {
    /// Runs `bin` with the arguments `args` gives for the port, and waits
    /// until it listens.
    pub fn start(bin: &Path, args: impl FnOnce(u16) -> Vec<String>) -> Service {
        let port = free_port();
        let child = std::process::Command::new(bin)
            .args(args(port))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{} does not start: {e}", bin.display()));
        let service = Service { child, port };
        wait_for_port(port);
        service
    }

    /// Sends one HTTP/1.1 request (`head`: the request line and headers,
    /// without `Host`, `Content-Length` and `Connection`, each ending in
    /// `\r\n`) with no body; returns the response.
    pub fn request(&self, head: &str) -> String {
        use std::io::{Read, Write};
        let port = self.port;
        let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(
            conn,
            "{head}Host: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut resp = String::new();
        conn.read_to_string(&mut resp).unwrap();
        resp
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A test tool installed by the project's scripts: at `path` (from an
/// environment variable), else at `~/DEFAULT`; fails, saying which script
/// installs it, when missing (integration tests never skip).
pub fn installed(
    path: Option<std::path::PathBuf>,
    default: &str,
    script: &str,
) -> std::path::PathBuf {
    let bin = path.unwrap_or_else(|| {
        std::path::PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(default)
    });
    assert!(
        bin.is_file(),
        "{} is not installed: run {script} (scripts/test.sh does)",
        bin.display()
    );
    bin
}

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

/// A number from the environment (a test scaled up by hand), or `default`.
pub fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

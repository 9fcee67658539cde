//! `stdout()` and `file(path: ...)` outputs: record batches as JSON lines.
//!
//! Every `to stdout` of the process writes through one handle, one chunk of
//! whole lines at a time: lines keep their order, a slow reader of stdout
//! slows the pipeline (backpressure) instead of piling writes up in memory,
//! and a flush waits for what was written.

use async_trait::async_trait;
use std::path::PathBuf;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;
use weir_engine::output::to_ndjson;
use weir_engine::{EngineError, Result, Sink};

/// Where the lines go.
pub enum Target {
    Stdout,
    File(Mutex<Option<tokio::fs::File>>, PathBuf),
}

/// The process's stdout, shared by every `to stdout`.
static STDOUT: std::sync::LazyLock<Mutex<tokio::io::Stdout>> =
    std::sync::LazyLock::new(|| Mutex::new(tokio::io::stdout()));

/// Rows turned into text at once.
const CHUNK_ROWS: usize = 8192;

/// Opens (creating it and its folder) a file to append to.
pub(crate) async fn open_append(path: &std::path::Path) -> Result<tokio::fs::File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| EngineError::io(format!("creating {}", dir.display()), e))?;
    }
    tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .await
        .map_err(|e| EngineError::io(format!("opening {}", path.display()), e))
}

pub struct JsonLinesSink {
    target: Target,
}

impl JsonLinesSink {
    /// `to stdout` / `stdout()`.
    pub fn stdout_from_decl(
        _: &crate::LocalFactory,
        _: &weir_dsl::ast::OutputDecl,
    ) -> Result<std::sync::Arc<dyn Sink>> {
        Ok(std::sync::Arc::new(JsonLinesSink::stdout()))
    }

    /// `file(path: "...")`; a relative path is relative to the rules file.
    pub fn file_from_decl(
        f: &crate::LocalFactory,
        output: &weir_dsl::ast::OutputDecl,
    ) -> Result<std::sync::Arc<dyn Sink>> {
        let path = crate::args::Args(&output.connector).required_str("path")?;
        Ok(std::sync::Arc::new(JsonLinesSink::file(f.resolve(path))))
    }

    pub fn stdout() -> Self {
        JsonLinesSink {
            target: Target::Stdout,
        }
    }

    pub fn file(path: PathBuf) -> Self {
        JsonLinesSink {
            target: Target::File(Mutex::new(None), path),
        }
    }
}

#[async_trait]
impl Sink for JsonLinesSink {
    async fn write(&self, batch: &arrow::record_batch::RecordBatch) -> Result<()> {
        let mut stdout;
        let mut guard;
        let (out, name): (&mut (dyn tokio::io::AsyncWrite + Unpin + Send), String) =
            match &self.target {
                Target::Stdout => {
                    stdout = STDOUT.lock().await;
                    (&mut *stdout, "stdout".to_string())
                }
                Target::File(file, path) => {
                    guard = file.lock().await;
                    if guard.is_none() {
                        *guard = Some(open_append(path).await?);
                    }
                    match guard.as_mut() {
                        Some(f) => (f, path.display().to_string()),
                        None => return Ok(()),
                    }
                }
            };
        // A slice of rows at a time into one buffer: a window closing a
        // million keys does not hold a million lines of text at once.
        let mut buf = Vec::with_capacity(CHUNK_ROWS.min(batch.num_rows()) * 128);
        let mut at = 0;
        while at < batch.num_rows() {
            let n = CHUNK_ROWS.min(batch.num_rows() - at);
            buf.clear();
            to_ndjson(&batch.slice(at, n), &mut buf)?;
            out.write_all(&buf)
                .await
                .map_err(|e| EngineError::io(format!("writing {name}"), e))?;
            at += n;
        }
        Ok(())
    }

    async fn flush(&self) -> Result<()> {
        match &self.target {
            Target::Stdout => STDOUT
                .lock()
                .await
                .flush()
                .await
                .map_err(|e| EngineError::io("flushing stdout", e)),
            Target::File(file, path) => {
                if let Some(f) = file.lock().await.as_mut() {
                    f.sync_data()
                        .await
                        .map_err(|e| EngineError::io(format!("syncing {}", path.display()), e))?;
                }
                Ok(())
            }
        }
    }
}

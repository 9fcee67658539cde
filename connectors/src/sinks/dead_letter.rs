//! The default dead-letter store: one JSON-lines file per source under the data
//! folder (`deadletter/SOURCE.ndjson`), each line the original event, its offset
//! and the reason it could not be processed.
//!
//! Each write reaches the file (the OS) before it returns, so a crash of the
//! process loses none; `flush` (every checkpoint barrier and the end of a
//! run) makes them durable on disk. The file stays open between writes: a
//! dirty stream writes a few letters a batch, and opening and syncing the
//! file for each batch cost more than decoding it. A source's letters come
//! already encoded by its decoders, on their own threads
//! ([`DeadLetterSink::takes_json_lines`]). A write is one `write`
//! call made in place (an append to the page cache, microseconds), not a
//! hop to tokio's blocking threads and back, which cost a dirty stream 5
//! to 10 % of its throughput on one core; only the sync is handed off.

use async_trait::async_trait;
use std::io::Write;
use std::path::PathBuf;
use tokio::sync::Mutex;
use weir_engine::{DeadLetter, DeadLetterSink, EngineError, Result};

pub struct DeadLetterFile {
    path: PathBuf,
    /// The open file, once something was written.
    file: Mutex<Option<std::fs::File>>,
}

impl DeadLetterFile {
    pub fn new(path: PathBuf) -> Self {
        DeadLetterFile {
            path,
            file: Mutex::new(None),
        }
    }

    async fn open(&self) -> Result<std::fs::File> {
        Ok(super::json_lines::open_append(&self.path)
            .await?
            .into_std()
            .await)
    }
}

#[async_trait]
impl DeadLetterSink for DeadLetterFile {
    async fn write(&self, letters: Vec<DeadLetter>) -> Result<()> {
        self.write_json_lines(DeadLetter::json_lines(&letters))
            .await
    }

    fn takes_json_lines(&self) -> bool {
        true
    }

    async fn write_json_lines(&self, buf: Vec<u8>) -> Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        let mut slot = self.file.lock().await;
        let file = match slot.as_mut() {
            Some(f) => f,
            None => slot.insert(self.open().await?),
        };
        // Handed to the OS before returning.
        if let Err(e) = file.write_all(&buf) {
            // Opened again next time (the file may have been moved away).
            *slot = None;
            return Err(EngineError::io(
                format!("writing {}", self.path.display()),
                e,
            ));
        }
        Ok(())
    }

    async fn flush(&self) -> Result<()> {
        let mut slot = self.file.lock().await;
        let Some(file) = slot.as_mut() else {
            return Ok(());
        };
        let syncing = |e| EngineError::io(format!("syncing {}", self.path.display()), e);
        let file = file.try_clone().map_err(syncing)?;
        tokio::task::spawn_blocking(move || file.sync_data())
            .await
            .map_err(|e| EngineError::Internal(format!("syncing dead letters: {e}")))?
            .map_err(syncing)
    }
}

//! The default dead-letter store: one JSON-lines file per source under the data
//! folder (`deadletter/SOURCE.ndjson`), each line the original event, its offset
//! and the reason it could not be processed.

use async_trait::async_trait;
use std::path::PathBuf;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;
use weir_engine::{DeadLetter, DeadLetterSink, EngineError, Result};

pub struct DeadLetterFile {
    path: PathBuf,
    lock: Mutex<()>,
}

impl DeadLetterFile {
    pub fn new(path: PathBuf) -> Self {
        DeadLetterFile {
            path,
            lock: Mutex::new(()),
        }
    }
}

#[async_trait]
impl DeadLetterSink for DeadLetterFile {
    async fn write(&self, letters: Vec<DeadLetter>) -> Result<()> {
        let _guard = self.lock.lock().await;
        let mut buf = Vec::new();
        for l in &letters {
            serde_json::to_writer(&mut buf, l)?;
            buf.push(b'\n');
        }
        if let Some(dir) = self.path.parent() {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| EngineError::io(format!("creating {}", dir.display()), e))?;
        }
        let mut f = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .await
            .map_err(|e| EngineError::io(format!("opening {}", self.path.display()), e))?;
        f.write_all(&buf)
            .await
            .map_err(|e| EngineError::io(format!("writing {}", self.path.display()), e))?;
        f.sync_data()
            .await
            .map_err(|e| EngineError::io(format!("syncing {}", self.path.display()), e))
    }
}

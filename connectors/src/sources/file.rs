//! `file(path: "...", follow: false)` and `stdin()` sources.

use super::lines::read_lines;
use async_trait::async_trait;
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;
use weir_engine::{EngineError, LineSender, Result, Source};

pub struct FileSource {
    pub name: String,
    pub path: PathBuf,
    pub follow: bool,
}

#[async_trait]
impl Source for FileSource {
    async fn run(self: Box<Self>, out: LineSender, shutdown: CancellationToken) -> Result<()> {
        let file = tokio::fs::File::open(&self.path).await.map_err(|e| {
            EngineError::connector(
                &self.name,
                format!("cannot open {}: {e}", self.path.display()),
            )
        })?;
        read_lines(&self.name, file, &out, &shutdown, self.follow, 0).await?;
        Ok(())
    }
}

pub struct StdinSource {
    pub name: String,
}

#[async_trait]
impl Source for StdinSource {
    async fn run(self: Box<Self>, out: LineSender, shutdown: CancellationToken) -> Result<()> {
        read_lines(&self.name, tokio::io::stdin(), &out, &shutdown, false, 0).await?;
        Ok(())
    }
}

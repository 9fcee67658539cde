//! `file(path: "...", follow: false)` and `stdin()` sources. A followed file
//! is read across rotation and truncation (see [`TailedFile`]).

use super::lines::{read_lines, Input};
use async_trait::async_trait;
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;
use weir_engine::{EngineError, LineSender, Result, Source};
use weir_formats::tail::TailedFile;

pub struct FileSource {
    pub name: String,
    pub path: PathBuf,
    pub follow: bool,
}

#[async_trait]
impl Source for FileSource {
    async fn run(self: Box<Self>, out: LineSender, shutdown: CancellationToken) -> Result<()> {
        let cannot = |e: std::io::Error| {
            EngineError::connector(
                &self.name,
                format!("cannot open {}: {e}", self.path.display()),
            )
        };
        let input = if self.follow {
            Input::Follow(Box::new(
                TailedFile::open(self.path.clone(), 0).map_err(cannot)?,
            ))
        } else {
            Input::Stream(tokio::fs::File::open(&self.path).await.map_err(cannot)?)
        };
        read_lines(&self.name, input, &out, &shutdown, 0).await?;
        Ok(())
    }
}

pub struct StdinSource {
    pub name: String,
}

#[async_trait]
impl Source for StdinSource {
    async fn run(self: Box<Self>, out: LineSender, shutdown: CancellationToken) -> Result<()> {
        read_lines(
            &self.name,
            Input::Stream(tokio::io::stdin()),
            &out,
            &shutdown,
            0,
        )
        .await?;
        Ok(())
    }
}

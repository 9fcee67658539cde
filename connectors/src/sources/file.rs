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

impl FileSource {
    /// `file(path: "...", follow: true|false)`; a relative path is relative
    /// to the rules file.
    pub fn from_decl(
        f: &crate::LocalFactory,
        source: &weir_dsl::CheckedSource,
    ) -> Result<Box<dyn Source>> {
        let args = crate::args::Args(&source.decl.connector);
        Ok(Box::new(FileSource {
            name: source.decl.name.name.clone(),
            path: f.resolve(args.required_str("path")?),
            follow: args.bool("follow").unwrap_or(false),
        }))
    }
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
        let input: Input<tokio::io::Empty> = if self.follow {
            Input::Follow(Box::new(
                TailedFile::open(self.path.clone(), 0).map_err(cannot)?,
            ))
        } else {
            let file = tokio::fs::File::open(&self.path).await.map_err(cannot)?;
            Input::File(file.into_std().await)
        };
        read_lines(&self.name, input, &out, &shutdown, 0).await?;
        Ok(())
    }
}

impl StdinSource {
    /// `stdin()`.
    pub fn from_decl(
        _: &crate::LocalFactory,
        source: &weir_dsl::CheckedSource,
    ) -> Result<Box<dyn Source>> {
        Ok(Box::new(StdinSource {
            name: source.decl.name.name.clone(),
        }))
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

//! `file(path: "...", follow: false, first_line: "...")` and `stdin()`
//! sources. A followed file is read across rotation and truncation (see
//! [`TailedFile`]); with `first_line`, lines are joined into events of
//! several lines (see [`Joiner`]).

use super::chunks::{read_chunks, CHUNKED_MIN_BYTES, CHUNK_BYTES};
use super::lines::{read_lines, Input, Joiner};
use async_trait::async_trait;
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;
use weir_engine::{EngineError, LineSender, Result, Source};
use weir_formats::tail::TailedFile;

pub struct FileSource {
    pub name: String,
    pub path: PathBuf,
    pub follow: bool,
    /// `first_line`: the regex that begins an event of several lines.
    pub first_line: Option<regex::bytes::Regex>,
}

/// `first_line: "REGEX"`, compiled (the checker has compiled it already).
fn first_line(args: &crate::args::Args<'_>, source: &str) -> Result<Option<regex::bytes::Regex>> {
    args.str("first_line")
        .map(|p| {
            regex::bytes::Regex::new(p).map_err(|e| {
                EngineError::connector(source, format!("first_line is not a valid regex: {e}"))
            })
        })
        .transpose()
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
            first_line: first_line(&args, &source.decl.name.name)?,
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
            let file = file.into_std().await;
            // A large file, read on every decoder at once.
            let len = file
                .metadata()
                .ok()
                .filter(|m| m.is_file())
                .map(|m| m.len());
            if let Some(len) = len.filter(|l| *l >= CHUNKED_MIN_BYTES) {
                if out.decoders() > 1 && self.first_line.is_none() {
                    return read_chunks(&self.name, file, len, CHUNK_BYTES, &out, &shutdown).await;
                }
            }
            Input::File(file)
        };
        let joiner = self.first_line.clone().map(Joiner::new);
        read_lines(&self.name, input, &out, &shutdown, 0, joiner).await?;
        Ok(())
    }
}

impl StdinSource {
    /// `stdin(first_line: "...")`.
    pub fn from_decl(
        _: &crate::LocalFactory,
        source: &weir_dsl::CheckedSource,
    ) -> Result<Box<dyn Source>> {
        let args = crate::args::Args(&source.decl.connector);
        Ok(Box::new(StdinSource {
            name: source.decl.name.name.clone(),
            first_line: first_line(&args, &source.decl.name.name)?,
        }))
    }
}

pub struct StdinSource {
    pub name: String,
    pub first_line: Option<regex::bytes::Regex>,
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
            self.first_line.map(Joiner::new),
        )
        .await?;
        Ok(())
    }
}

//! `file(path: "...", follow: false, first_line: "...")` and `stdin()`
//! sources. A followed file is read across rotation and truncation (see
//! [`TailedFile`]); with `first_line`, lines are joined into events of
//! several lines (see [`Joiner`]).

use super::chunks::{last_line_end, read_chunks, CHUNKED_MIN_BYTES, CHUNK_BYTES};
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
    /// Whether what it reads of a large file is read in chunks on the
    /// decoders: with more than one of them, and lines that are events on
    /// their own (with `first_line`, where an event starts takes the lines
    /// before it).
    fn chunked(&self, out: &LineSender) -> bool {
        out.decoders() > 1 && self.first_line.is_none()
    }

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
        let mut first_offset = 0;
        let input: Input<tokio::io::Empty> = if self.follow {
            let mut tailed = TailedFile::open(self.path.clone(), 0).map_err(cannot)?;
            // What the file already holds, up to its last line break, read
            // on every decoder at once; then it is tailed from there.
            if self.chunked(&out) {
                let reading = |e| EngineError::io(format!("reading {}", self.path.display()), e);
                let file = tailed.handle().map_err(reading)?;
                let len = file.metadata().map_err(reading)?.len();
                let end = if len >= CHUNKED_MIN_BYTES {
                    last_line_end(&file, len).map_err(reading)?
                } else {
                    0
                };
                if end >= CHUNKED_MIN_BYTES {
                    let read =
                        read_chunks(&self.name, file, end, CHUNK_BYTES, &out, &shutdown, true);
                    let Some(lines) = read.await? else {
                        return Ok(());
                    };
                    tailed.skip_to(end).map_err(reading)?;
                    first_offset = lines;
                }
            }
            Input::Follow(Box::new(tailed))
        } else {
            let file = tokio::fs::File::open(&self.path).await.map_err(cannot)?;
            let file = file.into_std().await;
            // A large file, read on every decoder at once.
            let len = file
                .metadata()
                .ok()
                .filter(|m| m.is_file())
                .map(|m| m.len());
            if let Some(len) = len.filter(|l| *l >= CHUNKED_MIN_BYTES && self.chunked(&out)) {
                let read = read_chunks(&self.name, file, len, CHUNK_BYTES, &out, &shutdown, false);
                return read.await.map(|_| ());
            }
            Input::File(file)
        };
        let joiner = self.first_line.clone().map(Joiner::new);
        read_lines(&self.name, input, &out, &shutdown, first_offset, joiner).await?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use weir_engine::connector::SourceMessage;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_followed_files_backlog_is_read_in_chunks_then_tailed_numbered_on() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("app.log");
        let mut want: Vec<String> = (0..60_000)
            .map(|i| format!("line {i} {}", "x".repeat(i % 151)))
            .collect();
        let mut text = want.join("\n");
        // A last line still being written when the file is opened.
        text.push_str("\nhalf a li");
        std::fs::write(&path, &text).unwrap_or_else(|e| panic!("{e}"));
        assert!(text.len() as u64 > 2 * CHUNKED_MIN_BYTES);
        let (tx, mut rx) = tokio::sync::mpsc::channel(64);
        let shutdown = CancellationToken::new();
        let source = Box::new(FileSource {
            name: "app".into(),
            path: path.clone(),
            follow: true,
            first_line: None,
        });
        let task = tokio::spawn(source.run(LineSender::new(tx).decoding_on(2), shutdown.clone()));
        want.push("half a line".into());
        want.extend((0..10).map(|i| format!("appended {i}")));
        let mut got: Vec<(i64, String)> = Vec::new();
        let (mut loads, mut appended) = (0, false);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while got.len() < want.len() && std::time::Instant::now() < deadline {
            let msg = tokio::time::timeout(std::time::Duration::from_millis(100), rx.recv()).await;
            let batch = match msg {
                Ok(Some(SourceMessage::Load(mut l))) => {
                    loads += 1;
                    let mut b = l.load().unwrap_or_else(|e| panic!("{e}"));
                    b.first_offset = l.first_offset().unwrap_or_else(|e| panic!("{e}"));
                    b
                }
                Ok(Some(SourceMessage::Lines(b))) => b,
                Ok(Some(_)) => continue,
                Ok(None) => break,
                Err(_) => {
                    // The backlog is in: the writer finishes its line and
                    // writes more.
                    if !appended && got.len() == 60_000 {
                        let mut f = std::fs::OpenOptions::new()
                            .append(true)
                            .open(&path)
                            .unwrap_or_else(|e| panic!("{e}"));
                        let more: String = (0..10).map(|i| format!("appended {i}\n")).collect();
                        write!(f, "ne\n{more}").unwrap_or_else(|e| panic!("{e}"));
                        appended = true;
                    }
                    continue;
                }
            };
            for i in 0..batch.len() {
                let line = String::from_utf8_lossy(batch.line(i)).into_owned();
                got.push((batch.first_offset + i as i64, line));
            }
        }
        shutdown.cancel();
        let _ = task.await;
        assert!(loads > 2, "the backlog was read in chunks ({loads})");
        let numbers: Vec<i64> = got.iter().map(|(n, _)| *n).collect();
        assert!(
            numbers.iter().enumerate().all(|(i, n)| *n == i as i64),
            "lines numbered 0.. in order"
        );
        let lines: Vec<String> = got.into_iter().map(|(_, l)| l).collect();
        assert_eq!(lines.len(), want.len());
        assert!(lines == want, "every line once, whole");
    }
}

//! Splits a byte stream into [`LineBatch`]es: shared by the file and stdin
//! sources. A followed file ([`Followed`]) is watched for rotation and
//! truncation when its end is reached.

use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt};
use tokio_util::sync::CancellationToken;
use weir_engine::{EngineError, LineBatch, LineSender, Result};

/// Lines per batch at most.
pub const MAX_LINES: usize = 8192;
/// Bytes per batch at most (a batch is sent once it passes this).
pub const MAX_BYTES: usize = 4 << 20;

pub fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// What a followed file turned out to be at its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reopened {
    /// The path names another file now (`mv app.log app.log.1` and a new
    /// `app.log`): the old one was read to its end, the new one is read
    /// from its start.
    Rotated,
    /// The file shrank below what was read (copytruncate): read again from
    /// its start.
    Truncated,
}

/// A file read by path that follows rotation and truncation, as `tail -F`
/// does: the file is known by device and inode.
pub struct Followed {
    path: PathBuf,
    file: tokio::fs::File,
    id: (u64, u64),
    pos: u64,
}

impl Followed {
    pub async fn open(path: PathBuf) -> std::io::Result<Followed> {
        let file = tokio::fs::File::open(&path).await?;
        let id = file_id(&file.metadata().await?);
        Ok(Followed {
            path,
            file,
            id,
            pos: 0,
        })
    }

    async fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read(buf).await?;
        self.pos += n as u64;
        Ok(n)
    }

    /// At the end of the data: whether the path was rotated or the file
    /// truncated, and reading starts over. A path missing for a moment (between
    /// the rename and the new file) is waited for.
    async fn reopen(&mut self) -> std::io::Result<Option<Reopened>> {
        let meta = match tokio::fs::metadata(&self.path).await {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        if file_id(&meta) != self.id {
            // The rotated file may have got a last write after our read.
            let mut rest = Vec::new();
            self.file.read_to_end(&mut rest).await?;
            if !rest.is_empty() {
                // Read it first; the rotation is seen at the next end.
                self.file.seek(std::io::SeekFrom::Start(self.pos)).await?;
                return Ok(None);
            }
            *self = Followed::open(self.path.clone()).await?;
            return Ok(Some(Reopened::Rotated));
        }
        if meta.len() < self.pos {
            self.file.seek(std::io::SeekFrom::Start(0)).await?;
            self.pos = 0;
            return Ok(Some(Reopened::Truncated));
        }
        Ok(None)
    }
}

#[cfg(unix)]
fn file_id(m: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (m.dev(), m.ino())
}

#[cfg(not(unix))]
fn file_id(_: &std::fs::Metadata) -> (u64, u64) {
    (0, 0)
}

/// Where lines come from: a stream read to its end, or a followed file.
pub enum Input<R> {
    Stream(R),
    Follow(Followed),
}

impl<R: AsyncRead + Unpin> Input<R> {
    async fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Input::Stream(r) => r.read(buf).await,
            Input::Follow(f) => f.read(buf).await,
        }
    }
}

/// Reads `input` to its end (or, when followed, until shutdown), sending
/// batches of lines. Offsets count lines from `first_offset`.
pub async fn read_lines<R: AsyncRead + Unpin>(
    name: &str,
    mut input: Input<R>,
    out: &LineSender,
    shutdown: &CancellationToken,
    first_offset: i64,
) -> Result<i64> {
    let follow = matches!(input, Input::Follow(_));
    let mut buf = vec![0u8; 1 << 20];
    let mut partial: Vec<u8> = Vec::new();
    let mut batch = LineBatch::with_capacity(MAX_BYTES, MAX_LINES);
    let mut offset = first_offset;
    batch.first_offset = offset;
    loop {
        let n = tokio::select! {
            r = input.read(&mut buf) => r.map_err(|e| EngineError::io(format!("reading {name}"), e))?,
            _ = shutdown.cancelled() => break,
        };
        if n == 0 {
            if let Input::Follow(f) = &mut input {
                let reopened = f
                    .reopen()
                    .await
                    .map_err(|e| EngineError::io(format!("following {name}"), e))?;
                match reopened {
                    // The old file's last line needs no line break to be whole.
                    Some(Reopened::Rotated) if !partial.is_empty() => {
                        push_line(&mut batch, &partial);
                        partial.clear();
                        offset += 1;
                    }
                    Some(Reopened::Truncated) if !partial.is_empty() => {
                        tracing::warn!(
                            source = name,
                            bytes = partial.len(),
                            "file truncated in the middle of a line; the cut line is dropped"
                        );
                        partial.clear();
                    }
                    _ => {}
                }
                if let Some(how) = reopened {
                    tracing::info!(source = name, ?how, "followed file starts over");
                    continue;
                }
            }
            if !batch.is_empty() && !send(&mut batch, out, offset).await {
                return Ok(offset);
            }
            if follow {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(200)) => continue,
                    _ = shutdown.cancelled() => break,
                }
            }
            break;
        }
        let mut chunk = &buf[..n];
        while let Some(pos) = memchr(b'\n', chunk) {
            let line = &chunk[..pos];
            if partial.is_empty() {
                push_line(&mut batch, line);
            } else {
                partial.extend_from_slice(line);
                push_line(&mut batch, &partial);
                partial.clear();
            }
            offset += 1;
            chunk = &chunk[pos + 1..];
            if (batch.len() >= MAX_LINES || batch.data.len() >= MAX_BYTES)
                && !send(&mut batch, out, offset).await
            {
                return Ok(offset);
            }
        }
        partial.extend_from_slice(chunk);
    }
    // A last line without a line break.
    if !partial.is_empty() && !follow {
        push_line(&mut batch, &partial);
        offset += 1;
    }
    if !batch.is_empty() {
        send(&mut batch, out, offset).await;
    }
    Ok(offset)
}

/// Sends the batch, stamped with its arrival time, and starts an empty one at
/// `next_offset`; false when nobody receives any more.
async fn send(batch: &mut LineBatch, out: &LineSender, next_offset: i64) -> bool {
    batch.received_at_us = now_us();
    let full = std::mem::replace(batch, LineBatch::with_capacity(MAX_BYTES, MAX_LINES));
    batch.first_offset = next_offset;
    out.send(full).await.is_ok()
}

fn push_line(batch: &mut LineBatch, line: &[u8]) {
    batch.push(line);
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&b| b == needle)
}

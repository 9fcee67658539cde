//! Splits a byte stream into [`LineBatch`]es: shared by the file and stdin
//! sources. A followed file is a [`TailedFile`] (shared with the shipper),
//! checked for rotation and truncation when its end is reached; its blocking
//! reads run on tokio's blocking pool.

use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_util::sync::CancellationToken;
use weir_engine::{EngineError, LineBatch, LineSender, Result};
use weir_formats::tail::{Change, TailedFile};

/// Lines per batch at most.
pub const MAX_LINES: usize = 8192;
/// Bytes per batch at most (a batch is sent once it passes this).
pub const MAX_BYTES: usize = 4 << 20;

pub fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// Where lines come from: a stream read to its end, a file read to its end
/// (read on the blocking pool straight into the chunk buffer: tokio's file
/// would copy every chunk once more through its own buffer), or a followed
/// file.
pub enum Input<R> {
    Stream(R),
    File(std::fs::File),
    Follow(Box<TailedFile>),
}

/// Reads `input` to its end (or, when followed, until shutdown), sending
/// batches of lines. Offsets count lines from `first_offset`.
pub async fn read_lines<R: AsyncRead + Unpin>(
    name: &str,
    input: Input<R>,
    out: &LineSender,
    shutdown: &CancellationToken,
    first_offset: i64,
) -> Result<i64> {
    let (mut stream, mut file, mut followed) = match input {
        Input::Stream(r) => (Some(r), None, None),
        Input::File(f) => (None, Some(f), None),
        Input::Follow(t) => (None, None, Some(t)),
    };
    let follow = followed.is_some();
    let mut buf = vec![0u8; 1 << 20];
    let mut partial: Vec<u8> = Vec::new();
    let mut batch = LineBatch::with_capacity(MAX_BYTES, MAX_LINES);
    let mut offset = first_offset;
    batch.first_offset = offset;
    loop {
        let n = tokio::select! {
            r = read_chunk(&mut stream, &mut file, &mut followed, &mut buf) => r.map_err(|e| EngineError::io(format!("reading {name}"), e))?,
            _ = shutdown.cancelled() => break,
        };
        if n == 0 {
            if follow {
                let changed = on_blocking_pool(&mut followed, &mut Vec::new(), |t, _| t.check())
                    .await
                    .map_err(|e| EngineError::io(format!("following {name}"), e))?;
                match changed {
                    // The old file's last line needs no line break to be whole.
                    Some(Change::Rotated) if !partial.is_empty() => {
                        push_line(&mut batch, &partial);
                        partial.clear();
                        offset += 1;
                    }
                    Some(Change::Truncated) if !partial.is_empty() => {
                        tracing::warn!(
                            source = name,
                            bytes = partial.len(),
                            "file truncated in the middle of a line; the cut line is dropped"
                        );
                        partial.clear();
                    }
                    _ => {}
                }
                if let Some(how) = changed {
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
        // The rest of a line begun in an earlier read.
        if !partial.is_empty() {
            let Some(pos) = memchr::memchr(b'\n', chunk) else {
                partial.extend_from_slice(chunk);
                continue;
            };
            partial.extend_from_slice(&chunk[..pos]);
            push_line(&mut batch, &partial);
            partial.clear();
            offset += 1;
            chunk = &chunk[pos + 1..];
            if full(&batch) && !send(&mut batch, out, offset).await {
                return Ok(offset);
            }
        }
        // Whole lines, copied into the batch in runs.
        loop {
            let before = batch.len();
            let taken = batch.extend_lines(chunk, MAX_LINES, MAX_BYTES);
            offset += (batch.len() - before) as i64;
            chunk = &chunk[taken..];
            if !full(&batch) {
                break;
            }
            if !send(&mut batch, out, offset).await {
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

/// The next chunk of the stream, the file or the followed file.
async fn read_chunk<R: AsyncRead + Unpin>(
    stream: &mut Option<R>,
    file: &mut Option<std::fs::File>,
    followed: &mut Option<Box<TailedFile>>,
    buf: &mut Vec<u8>,
) -> std::io::Result<usize> {
    if let Some(r) = stream {
        return r.read(buf).await;
    }
    if file.is_some() {
        return on_blocking_pool(file, buf, std::io::Read::read).await;
    }
    on_blocking_pool(followed, buf, |t, b| t.read(b)).await
}

/// Runs `job` on the file and `buf` on tokio's blocking pool (file reads
/// block) and puts both back.
async fn on_blocking_pool<F: Send + 'static, T: Send + 'static>(
    slot: &mut Option<F>,
    buf: &mut Vec<u8>,
    job: impl FnOnce(&mut F, &mut [u8]) -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    let Some(mut file) = slot.take() else {
        return Err(std::io::Error::other(
            "the file was lost in an interrupted read",
        ));
    };
    let mut chunk = std::mem::take(buf);
    let (file, chunk, out) = tokio::task::spawn_blocking(move || {
        let out = job(&mut file, &mut chunk);
        (file, chunk, out)
    })
    .await
    .map_err(std::io::Error::other)?;
    *slot = Some(file);
    *buf = chunk;
    out
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

/// Whether a batch is to be sent.
fn full(batch: &LineBatch) -> bool {
    batch.len() >= MAX_LINES || batch.data.len() >= MAX_BYTES
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use tokio::io::ReadBuf;
    use weir_engine::connector::SourceMessage;

    /// A stream handing out at most `step` bytes a read.
    struct Trickle {
        data: Vec<u8>,
        at: usize,
        step: usize,
    }

    impl AsyncRead for Trickle {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            let n = self
                .step
                .min(self.data.len() - self.at)
                .min(buf.remaining());
            let at = self.at;
            buf.put_slice(&self.data[at..at + n]);
            self.at += n;
            Poll::Ready(Ok(()))
        }
    }

    async fn split(data: &[u8], step: usize) -> Vec<(i64, String)> {
        let input = Input::Stream(Trickle {
            data: data.to_vec(),
            at: 0,
            step,
        });
        split_input(input).await
    }

    async fn split_input<R: AsyncRead + Unpin>(input: Input<R>) -> Vec<(i64, String)> {
        let (tx, mut rx) = tokio::sync::mpsc::channel(1 << 16);
        let end = read_lines(
            "t",
            input,
            &LineSender::new(tx),
            &CancellationToken::new(),
            10,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        let mut lines = Vec::new();
        while let Ok(SourceMessage::Lines(b)) = rx.try_recv() {
            assert!(b.len() <= MAX_LINES);
            assert_eq!(b.first_offset, 10 + lines.len() as i64, "offsets run on");
            for i in 0..b.len() {
                let line = String::from_utf8_lossy(b.line(i)).into_owned();
                lines.push((b.first_offset + i as i64, line));
            }
        }
        assert_eq!(end, 10 + lines.len() as i64);
        lines
    }

    /// Whatever the reads' sizes: every line once, in order, without its
    /// line break (`\r\n` too), long lines and a last unfinished one whole.
    #[tokio::test]
    async fn lines_come_out_whole_however_the_reads_cut_them() {
        let mut text = String::new();
        let mut want = Vec::new();
        for i in 0..20_000 {
            let line = match i % 7 {
                0 => String::new(),
                1 => "x".repeat(3000 + i % 50),
                _ => format!("{{\"n\":{i}}}"),
            };
            text.push_str(&line);
            text.push_str(if i % 1000 == 999 { "\r\n" } else { "\n" });
            want.push(line);
        }
        text.push_str("last, no line break");
        want.push("last, no line break".to_string());
        for step in [1usize << 20, 4096, 777, 1] {
            if step == 1 {
                // One byte a read: a short text is enough.
                let short = "a\nbb\r\n\nccc";
                let got: Vec<String> = split(short.as_bytes(), 1)
                    .await
                    .into_iter()
                    .map(|(_, l)| l)
                    .collect();
                assert_eq!(got, ["a", "bb", "", "ccc"]);
                continue;
            }
            let got = split(text.as_bytes(), step).await;
            assert_eq!(got.len(), want.len(), "step {step}");
            for (i, ((off, line), want)) in got.iter().zip(&want).enumerate() {
                assert_eq!(*off, 10 + i as i64);
                assert_eq!(line, want, "line {i}, step {step}");
            }
        }
        // A file, read on the blocking pool.
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("lines.log");
        std::fs::write(&path, &text).unwrap_or_else(|e| panic!("{e}"));
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{e}"));
        let got = split_input(Input::<tokio::io::Empty>::File(file)).await;
        let got: Vec<String> = got.into_iter().map(|(_, l)| l).collect();
        assert_eq!(got, want);
    }
}

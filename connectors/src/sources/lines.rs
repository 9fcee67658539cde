//! Splits a byte stream into [`LineBatch`]es: shared by the file and stdin sources.

use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_util::sync::CancellationToken;
use weir_engine::{EngineError, LineBatch, LineSender, Result};

/// Lines per batch at most.
pub const MAX_LINES: usize = 8192;
/// Bytes per batch at most (a batch is sent once it passes this).
pub const MAX_BYTES: usize = 4 << 20;

pub fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// Reads `reader` to its end (or, with `follow`, forever), sending batches of
/// lines. Offsets count lines from `first_offset`.
pub async fn read_lines<R: AsyncRead + Unpin>(
    name: &str,
    mut reader: R,
    out: &LineSender,
    shutdown: &CancellationToken,
    follow: bool,
    first_offset: i64,
) -> Result<i64> {
    let mut buf = vec![0u8; 1 << 20];
    let mut partial: Vec<u8> = Vec::new();
    let mut batch = LineBatch::with_capacity(MAX_BYTES, MAX_LINES);
    let mut offset = first_offset;
    batch.first_offset = offset;
    loop {
        let n = tokio::select! {
            r = reader.read(&mut buf) => r.map_err(|e| EngineError::io(format!("reading {name}"), e))?,
            _ = shutdown.cancelled() => break,
        };
        if n == 0 {
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

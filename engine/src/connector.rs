//! The traits connectors implement, and the data they exchange with the engine.
//!
//! Data flows one way: a [`Source`] produces [`LineBatch`]es of raw lines, the engine
//! decodes them into Arrow record batches and runs them through operators, and
//! [`Sink`]s receive the results. The engine knows nothing of any particular
//! system (Kafka, files, object stores); the `weir-connectors` crate implements
//! these traits, and a [`ConnectorFactory`] builds them from the rules.

use crate::error::Result;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use weir_dsl::ast::{ArchiveDecl, OutputDecl};
use weir_dsl::CheckedSource;

/// Raw lines from a source, stored back to back in one buffer.
#[derive(Debug, Default, Clone)]
pub struct LineBatch {
    /// Line bytes, each followed by `\n`.
    pub data: Vec<u8>,
    /// End offset (exclusive, without the `\n`) of each line in `data`.
    pub ends: Vec<u32>,
    /// Sequence number (line number, Kafka offset) of the first line; line `i`
    /// has `first_offset + i`.
    pub first_offset: i64,
    /// Arrival time in microseconds since the epoch, used for lines without a
    /// timestamp.
    pub received_at_us: i64,
}

impl LineBatch {
    pub fn with_capacity(bytes: usize, lines: usize) -> Self {
        LineBatch {
            data: Vec::with_capacity(bytes),
            ends: Vec::with_capacity(lines),
            ..Default::default()
        }
    }

    /// Appends one line (a trailing `\r` or `\n` is stripped).
    pub fn push(&mut self, line: &[u8]) {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        self.data.extend_from_slice(line);
        self.ends.push(self.data.len() as u32);
        self.data.push(b'\n');
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Bytes of line `i`, without its line break.
    pub fn line(&self, i: usize) -> &[u8] {
        let start = if i == 0 {
            0
        } else {
            self.ends[i - 1] as usize + 1
        };
        &self.data[start..self.ends[i] as usize]
    }

    pub fn lines(&self) -> impl Iterator<Item = &[u8]> {
        (0..self.len()).map(|i| self.line(i))
    }
}

/// Where a source sends its batches. Sending waits when the engine is busy
/// (backpressure); it fails once the engine has stopped listening.
#[derive(Clone)]
pub struct LineSender {
    tx: mpsc::Sender<LineBatch>,
}

/// The engine stopped reading from this source.
#[derive(Debug, thiserror::Error)]
#[error("the engine stopped reading from this source")]
pub struct Closed;

impl LineSender {
    pub fn new(tx: mpsc::Sender<LineBatch>) -> Self {
        LineSender { tx }
    }

    pub async fn send(&self, batch: LineBatch) -> Result<(), Closed> {
        if batch.is_empty() {
            return Ok(());
        }
        self.tx.send(batch).await.map_err(|_| Closed)
    }
}

/// Produces lines until it runs out (a finite file, a generator with a count) or
/// until `shutdown` is cancelled.
#[async_trait]
pub trait Source: Send {
    async fn run(self: Box<Self>, out: LineSender, shutdown: CancellationToken) -> Result<()>;
}

/// Receives record batches: an archive, an output, a dead-letter store.
#[async_trait]
pub trait Sink: Send + Sync {
    async fn write(&self, batch: &RecordBatch) -> Result<()>;
    /// Makes everything written so far durable.
    async fn flush(&self) -> Result<()>;
}

/// An event that could not be processed, and why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeadLetter {
    pub source: String,
    pub offset: i64,
    pub reason: String,
    pub line: String,
    pub time: String,
}

/// Keeps what cannot be processed, with the reason.
#[async_trait]
pub trait DeadLetterSink: Send + Sync {
    async fn write(&self, letters: Vec<DeadLetter>) -> Result<()>;
}

/// Builds connectors from declarations in the rules.
pub trait ConnectorFactory: Send + Sync {
    fn source(&self, source: &CheckedSource) -> Result<Box<dyn Source>>;
    fn output(&self, output: &OutputDecl) -> Result<Arc<dyn Sink>>;
    fn archive(&self, archive: &ArchiveDecl, source: &CheckedSource) -> Result<Arc<dyn Sink>>;
    fn dead_letters(&self, source: &CheckedSource) -> Result<Arc<dyn DeadLetterSink>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_batch_round_trips_lines() {
        let mut b = LineBatch::default();
        b.push(b"one\n");
        b.push(b"two\r\n");
        b.push(b"");
        assert_eq!(b.len(), 3);
        assert_eq!(b.line(0), b"one");
        assert_eq!(b.line(1), b"two");
        assert_eq!(b.line(2), b"");
        assert_eq!(b.data, b"one\ntwo\n\n");
    }
}

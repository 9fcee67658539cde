//! The traits connectors implement, and the data they exchange with the engine.
//!
//! Data flows one way: a [`Source`] produces [`LineBatch`]es of raw lines, the engine
//! decodes them into Arrow record batches and runs them through operators, and
//! [`Sink`]s receive the results. The engine knows nothing of any particular
//! system (Kafka, files, object stores); the `weir-connectors` crate implements
//! these traits, and a [`ConnectorFactory`] builds them from the rules.

use crate::error::{EngineError, Result};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use std::borrow::Cow;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
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
    /// The source partition the lines come from (a Kafka partition; 0 for
    /// sources without partitions). Offsets count within a partition.
    pub partition: i64,
    /// Where in the source the lines come from (a Kafka topic), if the source
    /// has such a thing; carried into dead letters.
    pub origin: Option<Arc<str>>,
}

/// UTF-8's byte-order mark, stripped from the start of lines.
pub const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Line buffers of decoded batches, kept for the next batches: memory the
/// process has already touched instead of fresh pages the kernel must zero
/// (a sixth of a core's time when every batch took new ones). Bounded.
static SPARE: std::sync::Mutex<Vec<(Vec<u8>, Vec<u32>)>> = std::sync::Mutex::new(Vec::new());

/// Buffers kept at most (of up to a few MiB each).
const SPARE_MAX: usize = 8;

/// A pair of spare buffers, or new empty ones.
fn spare() -> (Vec<u8>, Vec<u32>) {
    SPARE
        .lock()
        .ok()
        .and_then(|mut s| s.pop())
        .unwrap_or_default()
}

/// Where a line's text lies in it (the line without its `\n`): after a
/// leading byte-order mark (Windows tools begin files with one) and
/// before a trailing `\r`, which every way of splitting lines drops.
fn content(line: &[u8]) -> std::ops::Range<usize> {
    let start = if line.starts_with(BOM) { BOM.len() } else { 0 };
    let end = match line.last() {
        Some(b'\r') if line.len() > start => line.len() - 1,
        _ => line.len(),
    };
    start..end
}

impl LineBatch {
    pub fn with_capacity(bytes: usize, lines: usize) -> Self {
        let (mut data, mut ends) = spare();
        data.clear();
        data.reserve(bytes);
        ends.reserve(lines);
        LineBatch {
            data,
            ends,
            ..Default::default()
        }
    }

    /// Done with: its buffers go to the next [`LineBatch::with_capacity`].
    /// (The line bytes are kept as they are: a buffer read into again by
    /// [`LineBatch::read_buffer`] is not zeroed first.)
    pub fn recycle(mut self) {
        self.ends.clear();
        if let Ok(mut spare) = SPARE.lock() {
            if spare.len() < SPARE_MAX {
                spare.push((
                    std::mem::take(&mut self.data),
                    std::mem::take(&mut self.ends),
                ));
            }
        }
    }

    /// Appends one line (a trailing `\r` or `\n` is stripped, and a
    /// leading byte-order mark: Windows tools begin files with one).
    pub fn push(&mut self, line: &[u8]) {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        self.data.extend_from_slice(&line[content(line)]);
        self.ends.push(self.data.len() as u32);
        self.data.push(b'\n');
    }

    /// Appends the whole lines at the start of `chunk` (each ending in
    /// `\n`) until the batch holds `max_lines` lines or `max_bytes` bytes,
    /// copying runs of lines at once (a line ending in `\r\n` or beginning
    /// with a byte-order mark alone, to strip them). Returns how many bytes
    /// of `chunk` it took; the rest is an unfinished line or did not fit.
    pub fn extend_lines(&mut self, chunk: &[u8], max_lines: usize, max_bytes: usize) -> usize {
        // `chunk[run..taken]`: lines counted in `ends`, not yet copied.
        let mut run = 0;
        let mut taken = 0;
        for pos in memchr::memchr_iter(b'\n', chunk) {
            if content(&chunk[taken..pos]).len() != pos - taken {
                self.data.extend_from_slice(&chunk[run..taken]);
                self.push(&chunk[taken..pos]);
                run = pos + 1;
            } else {
                self.ends.push((self.data.len() + (pos - run)) as u32);
            }
            taken = pos + 1;
            if self.len() >= max_lines || self.data.len() + (taken - run) >= max_bytes {
                break;
            }
        }
        self.data.extend_from_slice(&chunk[run..taken]);
        taken
    }

    /// A buffer of `bytes` bytes to read lines into, and one for their
    /// ends, for [`LineBatch::split`]: spare ones when there are, whose
    /// bytes need not be zeroed again before a read overwrites them.
    pub fn read_buffer(bytes: usize) -> (Vec<u8>, Vec<u32>) {
        let (mut data, mut ends) = spare();
        data.resize(bytes, 0);
        ends.clear();
        (data, ends)
    }

    /// The lines in `data`, which holds whole lines each ending in `\n`,
    /// split where they lie (`ends` is a buffer for their ends): the same
    /// lines [`LineBatch::extend_lines`] would make of it, a line's
    /// trailing `\r` and leading byte-order mark taken out by moving the
    /// bytes after them down.
    pub fn split(mut data: Vec<u8>, mut ends: Vec<u32>) -> LineBatch {
        ends.clear();
        ends.extend(memchr::memchr_iter(b'\n', &data).map(|pos| pos as u32));
        // Where the next line's bytes go: its start until a line loses a
        // byte, then lower.
        let mut to = 0usize;
        let mut start = 0usize;
        for end in ends.iter_mut() {
            let pos = *end as usize;
            let text = content(&data[start..pos]);
            let line = start + text.start..start + text.end;
            if line.start != to {
                data.copy_within(line.clone(), to);
            }
            to += line.len();
            *end = to as u32;
            data[to] = b'\n';
            to += 1;
            start = pos + 1;
        }
        data.truncate(to);
        LineBatch {
            data,
            ends,
            ..Default::default()
        }
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Bytes of line `i`, without its line break.
    pub fn line(&self, i: usize) -> &[u8] {
        &self.data[self.line_range(i)]
    }

    /// Where line `i` is in `data`.
    pub fn line_range(&self, i: usize) -> std::ops::Range<usize> {
        let start = if i == 0 {
            0
        } else {
            self.ends[i - 1] as usize + 1
        };
        start..self.ends[i] as usize
    }

    /// Line `i` as text: cut from `text` when that is the whole of `data`
    /// as UTF-8 (checked once for the batch), else checked on its own.
    pub fn line_str<'a>(
        &'a self,
        text: Option<&'a str>,
        i: usize,
    ) -> std::result::Result<&'a str, std::str::Utf8Error> {
        match text.and_then(|t| t.get(self.line_range(i))) {
            Some(line) => Ok(line),
            None => std::str::from_utf8(self.line(i)),
        }
    }

    /// Line `i` as text (see [`LineBatch::line_str`]), bytes that are not
    /// UTF-8 replaced with U+FFFD.
    pub fn line_lossy<'a>(&'a self, text: Option<&'a str>, i: usize) -> Cow<'a, str> {
        match self.line_str(text, i) {
            Ok(line) => Cow::Borrowed(line),
            Err(_) => String::from_utf8_lossy(self.line(i)),
        }
    }

    pub fn lines(&self) -> impl Iterator<Item = &[u8]> {
        (0..self.len()).map(|i| self.line(i))
    }
}

/// Lines a source has found but not read: read by the decoder that decodes
/// them, on its own thread ([`SourceMessage::Load`]). A large file is so
/// read on every core at once, each part by the core that decodes it,
/// instead of by one task that copies every byte on to another core.
pub trait LoadLines: Send + std::fmt::Debug {
    /// The bytes of the source it stands for (the source's byte count).
    fn bytes(&self) -> u64;
    /// Reads the lines (an empty batch when there are none). Their
    /// `first_offset` may be provisional while the lines before them are
    /// still being counted on another thread: see
    /// [`LoadLines::first_offset`].
    fn load(&mut self) -> Result<LineBatch>;
    /// The number of the first line loaded, waiting for the lines before
    /// them to be counted if need be. Asked once the lines are decoded, so
    /// that the counting elsewhere has as good as always been done.
    fn first_offset(&mut self) -> Result<i64>;
}

/// What a source sends the engine.
#[derive(Debug)]
pub enum SourceMessage {
    Lines(LineBatch),
    /// Lines to read where they are decoded; batches are handed on in the
    /// order these were sent, as lines are.
    Load(Box<dyn LoadLines>),
    /// A checkpoint barrier: answered once everything sent before it is durable
    /// in every sink (archive files uploaded, outputs and dead letters flushed).
    Checkpoint(oneshot::Sender<Result<()>>),
    /// The source now reads these partitions (a Kafka assignment): windows
    /// hold event time back until each has delivered an event or gone
    /// quiet, so a partition read late does not find its events late.
    Partitions(Vec<i64>),
    /// The source no longer reads these partitions (a rebalance took them
    /// away, after a checkpoint): state kept per partition is dropped here,
    /// as the partition's next reader takes it from the last checkpoint.
    Revoked(Vec<i64>),
}

/// Where a source sends its batches. Sending waits when the engine is busy
/// (backpressure); it fails once the engine has stopped listening.
#[derive(Clone)]
pub struct LineSender {
    tx: mpsc::Sender<SourceMessage>,
    decoders: usize,
}

/// The engine stopped reading from this source.
#[derive(Debug, thiserror::Error)]
#[error("the engine stopped reading from this source")]
pub struct Closed;

impl LineSender {
    pub fn new(tx: mpsc::Sender<SourceMessage>) -> Self {
        LineSender { tx, decoders: 1 }
    }

    /// Says that the engine decodes this source's lines on `n` threads.
    pub fn decoding_on(mut self, n: usize) -> Self {
        self.decoders = n.max(1);
        self
    }

    /// On how many threads the engine decodes this source's lines: with
    /// more than one, a source whose parts can be read independently (a
    /// file) sends [`LoadLines`] rather than lines it read itself.
    pub fn decoders(&self) -> usize {
        self.decoders
    }

    /// Sends lines to be read where they are decoded.
    pub async fn load(&self, lines: Box<dyn LoadLines>) -> Result<(), Closed> {
        self.tx
            .send(SourceMessage::Load(lines))
            .await
            .map_err(|_| Closed)
    }

    pub async fn send(&self, batch: LineBatch) -> Result<(), Closed> {
        if batch.is_empty() {
            return Ok(());
        }
        self.tx
            .send(SourceMessage::Lines(batch))
            .await
            .map_err(|_| Closed)
    }

    /// Tells the engine which partitions the source reads from now on.
    pub async fn partitions(&self, ids: Vec<i64>) -> Result<(), Closed> {
        self.tx
            .send(SourceMessage::Partitions(ids))
            .await
            .map_err(|_| Closed)
    }

    /// Tells the engine the source no longer reads these partitions (sent
    /// after the checkpoint that made what was read of them durable).
    pub async fn revoked(&self, ids: Vec<i64>) -> Result<(), Closed> {
        self.tx
            .send(SourceMessage::Revoked(ids))
            .await
            .map_err(|_| Closed)
    }

    /// Waits until every line sent so far has been processed by every pipeline
    /// and is durable in every sink. A source commits its read position (Kafka
    /// offsets) only after this succeeds: at-least-once delivery.
    pub async fn checkpoint(&self) -> Result<()> {
        let (reply, done) = oneshot::channel();
        self.tx
            .send(SourceMessage::Checkpoint(reply))
            .await
            .map_err(|_| EngineError::Stopped)?;
        done.await.map_err(|_| EngineError::Stopped)?
    }
}

/// Produces lines until it runs out (a finite file, a generator with a count) or
/// until `shutdown` is cancelled.
#[async_trait]
pub trait Source: Send {
    async fn run(self: Box<Self>, out: LineSender, shutdown: CancellationToken) -> Result<()>;

    /// Where a sink's durable copy of this source ends (the archive's
    /// table records it): a source that can seek (Kafka) starts each
    /// partition after it when its own committed position is missing or
    /// further on. Others ignore it.
    fn resume_from(&mut self, _positions: Arc<dyn StoredPositions>) {}
}

/// The last offset of each source partition a sink holds durably.
#[async_trait]
pub trait StoredPositions: Send + Sync {
    /// For each of `partitions` that has one: its last stored offset.
    async fn stored_upto(&self, partitions: &[i64]) -> Result<std::collections::HashMap<i64, i64>>;
}

/// Receives record batches: an archive, an output, a dead-letter store.
#[async_trait]
pub trait Sink: Send + Sync {
    async fn write(&self, batch: &RecordBatch) -> Result<()>;
    /// Makes everything written so far durable.
    async fn flush(&self) -> Result<()>;
    /// What of its source the sink holds durably, if it records it (the
    /// archive): the source resumes after it.
    fn stored_positions(&self) -> Option<Arc<dyn StoredPositions>> {
        None
    }
    /// The last flush, when the stream ends or the engine stops: a sink
    /// whose writes keep failing may take a bounded time here and keep what
    /// it could not write somewhere local instead (the archive does).
    async fn close(&self) -> Result<()> {
        self.flush().await
    }
    /// The engine is stopping (a signal, an undeploy): a write or flush
    /// under way that keeps failing should end within the sink's grace
    /// instead of its usual patience. Called while that write may still be
    /// running; [`Sink::close`] follows once it returns.
    fn stopping(&self) {}
}

/// An event that could not be processed, and why. What the letters of one
/// batch share (`source`, `origin`, `time`) is shared, not copied.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub source: Arc<str>,
    pub origin: Option<Arc<str>>,
    pub partition: i64,
    pub offset: i64,
    pub reason: String,
    pub line: String,
    /// When it was set aside ([`DeadLetter::now`]).
    pub time: Arc<str>,
}

impl DeadLetter {
    /// The time a letter is stamped with: now, in RFC 3339 (UTC, ms).
    pub fn now() -> Arc<str> {
        chrono::Utc::now()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            .into()
    }

    /// Appends the letter as one JSON line: `{"source", "origin" (when
    /// known), "partition", "offset", "reason", "line", "time"}` and a line
    /// break. Written by hand rather than through serde: a dirty stream
    /// writes one for each bad line, and the escaping of the line (JSON
    /// itself, full of quotes) was most of what writing it cost.
    pub fn write_json_line(&self, out: &mut Vec<u8>) {
        use std::io::Write;
        use weir_formats::json_string::push_json_string as string;
        out.extend_from_slice(b"{\"source\":");
        string(out, &self.source);
        if let Some(origin) = &self.origin {
            out.extend_from_slice(b",\"origin\":");
            string(out, origin);
        }
        // (Writing to a Vec cannot fail.)
        let _ = write!(
            out,
            ",\"partition\":{},\"offset\":{},\"reason\":",
            self.partition, self.offset
        );
        string(out, &self.reason);
        out.extend_from_slice(b",\"line\":");
        string(out, &self.line);
        out.extend_from_slice(b",\"time\":");
        string(out, &self.time);
        out.extend_from_slice(b"}\n");
    }

    /// Letters as JSON lines, one after the other
    /// ([`DeadLetter::write_json_line`]).
    pub fn json_lines(letters: &[DeadLetter]) -> Vec<u8> {
        let size = letters.iter().map(|l| l.line.len() + l.reason.len() + 128);
        let mut lines = Vec::with_capacity(size.sum());
        for l in letters {
            l.write_json_line(&mut lines);
        }
        lines
    }
}

/// Keeps what cannot be processed, with the reason.
#[async_trait]
pub trait DeadLetterSink: Send + Sync {
    async fn write(&self, letters: Vec<DeadLetter>) -> Result<()>;
    /// Whether this store keeps letters as [`DeadLetter::write_json_line`]
    /// writes them. A source's decoders then encode its letters on their
    /// own threads ([`crate::decode::Decoded::encode_letters`]) and hand
    /// them over with [`DeadLetterSink::write_json_lines`].
    fn takes_json_lines(&self) -> bool {
        false
    }
    /// Letters already encoded as JSON lines; only called when
    /// [`DeadLetterSink::takes_json_lines`].
    async fn write_json_lines(&self, _lines: Vec<u8>) -> Result<()> {
        Err(EngineError::Internal(
            "this dead-letter store takes letters, not JSON lines".into(),
        ))
    }
    /// Makes everything written so far durable.
    async fn flush(&self) -> Result<()> {
        Ok(())
    }
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
    fn lines_split_where_they_lie_are_the_lines_copied_out() {
        for text in [
            &b""[..],
            b"\n",
            b"a\nbb\n\nccc\n",
            b"a\r\n\r\n\rb\r\r\n",
            b"\xEF\xBB\xBF{}\n\xEF\xBB\xBF\n\xEF\xBB\xBF\r\nx\xEF\xBB\xBF\n",
            b"one\r\ntwo\nthree\r\n",
        ] {
            let mut copied = LineBatch::default();
            assert_eq!(
                copied.extend_lines(text, usize::MAX, usize::MAX),
                text.len()
            );
            let split = LineBatch::split(text.to_vec(), vec![7]);
            assert_eq!(
                split.data,
                copied.data,
                "{:?}",
                String::from_utf8_lossy(text)
            );
            assert_eq!(
                split.ends,
                copied.ends,
                "{:?}",
                String::from_utf8_lossy(text)
            );
        }
    }

    #[test]
    fn a_dead_letter_is_one_json_line_with_its_fields_in_order() {
        let mut letter = DeadLetter {
            source: "app".into(),
            origin: Some("logs.\"raw\"".into()),
            partition: 3,
            offset: -1,
            reason: "line 1:7: expected `}`\tor `,`".into(),
            line: "{\"message\":\"a \\\"quoted\\\" word\",\"n\":\u{1}".into(),
            time: "2026-12-04T05:00:00.000Z".into(),
        };
        let mut out = Vec::new();
        letter.write_json_line(&mut out);
        letter.origin = None;
        letter.write_json_line(&mut out);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.split_terminator('\n').collect();
        assert_eq!(lines.len(), 2, "{text}");
        let with: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(
            with,
            serde_json::json!({
                "source": "app", "origin": "logs.\"raw\"", "partition": 3, "offset": -1,
                "reason": "line 1:7: expected `}`\tor `,`",
                "line": "{\"message\":\"a \\\"quoted\\\" word\",\"n\":\u{1}",
                "time": "2026-12-04T05:00:00.000Z",
            })
        );
        let without: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
        assert!(without.get("origin").is_none(), "{without}");
        assert_eq!(without["line"], with["line"]);
        // In order: a reader may rely on `source` first, `time` last.
        assert!(
            lines[1].starts_with("{\"source\":\"app\",\"partition\":3,\"offset\":-1,\"reason\":")
        );
        assert!(lines[1].ends_with(",\"time\":\"2026-12-04T05:00:00.000Z\"}"));
    }

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

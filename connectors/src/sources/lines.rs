//! Splits a byte stream into [`LineBatch`]es: shared by the file and stdin
//! sources. A followed file is a [`TailedFile`] (shared with the shipper),
//! checked for rotation and truncation when its end is reached; its blocking
//! reads run on tokio's blocking pool.

use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_util::sync::CancellationToken;
use weir_engine::{EngineError, LineBatch, LineSender, Result};
use weir_formats::tail::{Change, TailedFile};

/// Lines per batch at most (a Kafka source's batches).
pub const MAX_LINES: usize = 8192;

/// Lines per batch of a file or stream: a batch that fits a core's caches
/// better is decoded faster (2,048 lines of JSON logs, about 600 KB, took
/// 6 % less time on one core than 8,192 and no more on two).
pub const READ_LINES: usize = 2048;
/// Bytes per batch at most (a batch is sent once it passes this).
pub const MAX_BYTES: usize = 4 << 20;

/// Bytes read from a file or stream at a time.
const READ_BYTES: usize = 4 << 20;

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

/// Events of several lines: a line matching `first` begins an event, the
/// lines after it that do not (a stack trace's frames, `Caused by:`) join
/// it, separated by `\n`. An event is sent when the next begins, at the end
/// of the input, after [`JOIN_IDLE`] without a new line (a followed file),
/// or when it reaches [`JOIN_MAX_LINES`] lines or [`JOIN_MAX_BYTES`].
pub struct Joiner {
    first: regex::bytes::Regex,
    pending: Vec<u8>,
    lines: usize,
    last: std::time::Instant,
}

/// Lines joined into one event at most.
pub const JOIN_MAX_LINES: usize = 1000;
/// Bytes of a joined event at most (the decoder's line limit).
pub const JOIN_MAX_BYTES: usize = weir_engine::decode::DEFAULT_MAX_LINE_BYTES;
/// How long a followed file's last event waits for more lines.
pub const JOIN_IDLE: Duration = Duration::from_secs(1);

impl Joiner {
    pub fn new(first: regex::bytes::Regex) -> Joiner {
        Joiner {
            first,
            pending: Vec::new(),
            lines: 0,
            last: std::time::Instant::now(),
        }
    }

    /// Takes a whole line (without its `\n`); returns how many events it
    /// completed into `batch` (0 or 1).
    fn line(&mut self, line: &[u8], batch: &mut LineBatch) -> i64 {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        self.last = std::time::Instant::now();
        if self.lines == 0 {
            self.pending.extend_from_slice(line);
            self.lines = 1;
            return 0;
        }
        let begins = self.first.is_match(
            line.strip_prefix(weir_engine::connector::BOM)
                .unwrap_or(line),
        );
        if begins
            || self.lines >= JOIN_MAX_LINES
            || self.pending.len() + 1 + line.len() > JOIN_MAX_BYTES
        {
            let done = self.flush(batch);
            self.pending.extend_from_slice(line);
            self.lines = 1;
            return done;
        }
        self.pending.push(b'\n');
        self.pending.extend_from_slice(line);
        self.lines += 1;
        0
    }

    /// Sends the event being joined into `batch`; how many it sent.
    fn flush(&mut self, batch: &mut LineBatch) -> i64 {
        if self.lines == 0 {
            return 0;
        }
        batch.push(&self.pending);
        self.pending.clear();
        self.lines = 0;
        1
    }

    /// Whether the event being joined has waited for more lines long enough.
    fn idle(&self) -> bool {
        self.lines > 0 && self.last.elapsed() >= JOIN_IDLE
    }
}

/// A line to the batch, or through the joiner; how many events it added.
fn take_line(batch: &mut LineBatch, joiner: &mut Option<Joiner>, line: &[u8]) -> i64 {
    match joiner {
        Some(j) => j.line(line, batch),
        None => {
            push_line(batch, line);
            1
        }
    }
}

/// Reads `input` to its end (or, when followed, until shutdown), sending
/// batches of lines. Offsets count lines from `first_offset` (events, with
/// a `joiner`).
pub async fn read_lines<R: AsyncRead + Unpin>(
    name: &str,
    input: Input<R>,
    out: &LineSender,
    shutdown: &CancellationToken,
    first_offset: i64,
    mut joiner: Option<Joiner>,
) -> Result<i64> {
    let (mut stream, mut file, mut followed) = match input {
        Input::Stream(r) => (Some(r), None, None),
        Input::File(f) => (None, Some(f), None),
        Input::Follow(t) => (None, None, Some(t)),
    };
    let follow = followed.is_some();
    // Each read of a file is a hop to tokio's blocking threads and back:
    // 4 MiB at a time, a hop for every one or two batches (with 1 MiB reads
    // the hops' wake-ups cost a second core a tenth of its gain).
    let mut buf = vec![0u8; READ_BYTES];
    let mut partial: Vec<u8> = Vec::new();
    let mut batch = LineBatch::with_capacity(MAX_BYTES, READ_LINES);
    let mut offset = first_offset;
    batch.first_offset = offset;
    loop {
        // A stream (stdin) may go quiet after an event of several lines:
        // it is sent after a second. (A stream's read can be given up and
        // retried; a file's, on the blocking pool, cannot: followed files
        // look at their idle event when they reach their end.)
        let waiting = stream.is_some() && joiner.as_ref().is_some_and(|j| j.lines > 0);
        let n = tokio::select! {
            r = read_chunk(&mut stream, &mut file, &mut followed, &mut buf) => r.map_err(|e| EngineError::io(format!("reading {name}"), e))?,
            _ = tokio::time::sleep(JOIN_IDLE), if waiting => {
                if let Some(j) = joiner.as_mut() {
                    offset += j.flush(&mut batch);
                }
                if !send(&mut batch, out, offset).await {
                    return Ok(offset);
                }
                continue;
            }
            _ = shutdown.cancelled() => break,
        };
        if n == 0 {
            if follow {
                let changed = on_blocking_pool(&mut followed, &mut Vec::new(), |t, _| t.check())
                    .await
                    .map_err(|e| EngineError::io(format!("following {name}"), e))?;
                match changed {
                    // The old file's last line needs no line break to be whole.
                    Some(Change::Rotated) => {
                        if !partial.is_empty() {
                            offset += take_line(&mut batch, &mut joiner, &partial);
                            partial.clear();
                        }
                        if let Some(j) = joiner.as_mut() {
                            offset += j.flush(&mut batch);
                        }
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
            // (At the end of a file, after its unfinished last line, below.)
            if let Some(j) = joiner.as_mut().filter(|j| follow && j.idle()) {
                offset += j.flush(&mut batch);
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
            offset += take_line(&mut batch, &mut joiner, &partial);
            partial.clear();
            chunk = &chunk[pos + 1..];
            if full(&batch) && !send(&mut batch, out, offset).await {
                return Ok(offset);
            }
        }
        // Whole lines, one by one through the joiner.
        if let Some(j) = joiner.as_mut() {
            let mut start = 0;
            for pos in memchr::memchr_iter(b'\n', chunk) {
                offset += j.line(&chunk[start..pos], &mut batch);
                start = pos + 1;
                if full(&batch) && !send(&mut batch, out, offset).await {
                    return Ok(offset);
                }
            }
            chunk = &chunk[start..];
        }
        // Whole lines, copied into the batch in runs.
        while joiner.is_none() {
            let before = batch.len();
            let taken = batch.extend_lines(chunk, READ_LINES, MAX_BYTES);
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
        offset += take_line(&mut batch, &mut joiner, &partial);
    }
    if let Some(j) = joiner.as_mut() {
        offset += j.flush(&mut batch);
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
    let full = std::mem::replace(batch, LineBatch::with_capacity(MAX_BYTES, READ_LINES));
    batch.first_offset = next_offset;
    out.send(full).await.is_ok()
}

fn push_line(batch: &mut LineBatch, line: &[u8]) {
    batch.push(line);
}

/// Whether a batch is to be sent.
fn full(batch: &LineBatch) -> bool {
    batch.len() >= READ_LINES || batch.data.len() >= MAX_BYTES
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
        split_joined(input, None).await
    }

    async fn split_joined<R: AsyncRead + Unpin>(
        input: Input<R>,
        joiner: Option<Joiner>,
    ) -> Vec<(i64, String)> {
        let (tx, mut rx) = tokio::sync::mpsc::channel(1 << 16);
        let end = read_lines(
            "t",
            input,
            &LineSender::new(tx),
            &CancellationToken::new(),
            10,
            joiner,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        let mut lines = Vec::new();
        while let Ok(SourceMessage::Lines(b)) = rx.try_recv() {
            assert!(b.len() <= READ_LINES);
            assert_eq!(b.first_offset, 10 + lines.len() as i64, "offsets run on");
            for i in 0..b.len() {
                let line = String::from_utf8_lossy(b.line(i)).into_owned();
                lines.push((b.first_offset + i as i64, line));
            }
        }
        assert_eq!(end, 10 + lines.len() as i64);
        lines
    }

    /// With `first_line`, a Java stack trace (frames, `Caused by:`, `...
    /// 3 more`) is one event with the line that began it, however the reads
    /// cut it; lines before the first match are an event of their own; the
    /// last event is sent at the end; offsets count events.
    #[tokio::test]
    async fn first_line_joins_the_lines_of_an_event() {
        let text = "\
continued from before
2026-03-01 00:00:00,001 INFO start\r
2026-03-01 00:00:01,002 ERROR request failed
java.lang.IllegalStateException: boom
\tat com.example.Api.handle(Api.java:42)
\tat com.example.Server.run(Server.java:7)
Caused by: java.io.IOException: reset
\t... 3 more
2026-03-01 00:00:02,003 INFO done
2026-03-01 00:00:03,004 WARN last, no line break
  indented";
        let first = || {
            regex::bytes::Regex::new(r"^\d{4}-\d{2}-\d{2} ")
                .map(Joiner::new)
                .ok()
        };
        for step in [1usize << 20, 7, 1] {
            let input = Input::Stream(Trickle {
                data: text.as_bytes().to_vec(),
                at: 0,
                step,
            });
            let got = split_joined(input, first()).await;
            let events: Vec<&str> = got.iter().map(|(_, e)| e.as_str()).collect();
            assert_eq!(
                events,
                [
                    "continued from before",
                    "2026-03-01 00:00:00,001 INFO start",
                    "2026-03-01 00:00:01,002 ERROR request failed\njava.lang.IllegalStateException: boom\n\tat com.example.Api.handle(Api.java:42)\n\tat com.example.Server.run(Server.java:7)\nCaused by: java.io.IOException: reset\n\t... 3 more",
                    "2026-03-01 00:00:02,003 INFO done",
                    "2026-03-01 00:00:03,004 WARN last, no line break\n  indented",
                ],
                "step {step}"
            );
            let offsets: Vec<i64> = got.iter().map(|(o, _)| *o).collect();
            assert_eq!(offsets, [10, 11, 12, 13, 14]);
        }
        // An event stops growing at JOIN_MAX_LINES lines.
        let long = format!(
            "2026-03-01 start\n{}",
            "\tat x\n".repeat(JOIN_MAX_LINES + 5)
        );
        let input = Input::Stream(Trickle {
            data: long.into_bytes(),
            at: 0,
            step: 1 << 20,
        });
        let got = split_joined(input, first()).await;
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].1.lines().count(), JOIN_MAX_LINES);
    }

    /// A stream that goes quiet after an event of several lines (`tail -f
    /// app.log | weir run`): the event is sent after a second, not held
    /// until the next line.
    #[tokio::test]
    async fn a_quiet_stream_sends_its_last_joined_event() {
        use tokio::io::AsyncWriteExt;
        let (mut writer, reader) = tokio::io::duplex(1 << 16);
        let (tx, mut rx) = tokio::sync::mpsc::channel(16);
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        let reading = tokio::spawn(async move {
            let joiner = regex::bytes::Regex::new("^2026").map(Joiner::new).ok();
            read_lines(
                "t",
                Input::Stream(reader),
                &LineSender::new(tx),
                &stop,
                0,
                joiner,
            )
            .await
        });
        writer
            .write_all(b"2026 one\n\tat a\n2026 two\n\tat b\n")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut events = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while events.len() < 2 {
            let msg = tokio::time::timeout_at(deadline, rx.recv())
                .await
                .unwrap_or_else(|_| panic!("no event within 5 s: {events:?}"));
            if let Some(SourceMessage::Lines(b)) = msg {
                events.extend(b.lines().map(|l| String::from_utf8_lossy(l).into_owned()));
            }
        }
        assert_eq!(events, ["2026 one\n\tat a", "2026 two\n\tat b"]);
        shutdown.cancel();
        let end = reading.await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(end.unwrap_or_else(|e| panic!("{e}")), 2);
        drop(writer);
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

//! Reads a large file on every decoder at once. The file is cut into
//! chunks of [`CHUNK_BYTES`]; each chunk is read and split into lines by
//! the decoder thread that decodes it ([`LoadLines`]), with `pread`, so no
//! task reads the whole file and no line's bytes cross from one core to
//! another. A line belongs to the chunk its first byte is in: a chunk
//! skips the end of the line begun before it, and reads on past its end to
//! finish its own last line. Lines are numbered in file order by a
//! [`Numbering`]: a chunk counts its lines as soon as it has read them,
//! and takes the number of its first line after it is decoded
//! ([`LoadLines::first_offset`]), when every chunk before it (handed out
//! earlier) has as good as always been counted — no decoder waits for
//! another before it decodes.
//!
//! A file not followed is read up to the size it had when opened; a
//! followed one so up to its last line break then, and tailed from there.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Condvar, Mutex};
use tokio_util::sync::CancellationToken;
use weir_engine::{EngineError, LineBatch, LineSender, LoadLines, Result};

/// Bytes per chunk: on the windows benchmark's job on two cores, 1 MiB
/// took 4 % less time than 512 KiB (half the hand-offs between threads),
/// 256 KiB 4 % more, and 2 MiB no less.
pub const CHUNK_BYTES: u64 = 1 << 20;

/// A file is read in chunks when it is at least this large (smaller ones
/// take no time worth sharing out).
pub const CHUNKED_MIN_BYTES: u64 = 2 * CHUNK_BYTES;

/// Bytes read at a time to find where a line ends beyond a chunk (or
/// begins within one).
const SCAN_BYTES: usize = 16 << 10;

/// Sends `file` (of `len` bytes) in chunks of `chunk` bytes, to be read
/// where they are decoded; stops early on shutdown or when the engine stops
/// listening. With `count`, waits for every chunk to have counted its
/// lines and returns how many there are (what the lines after them are
/// numbered from); `None` when it stopped early or was not asked.
pub async fn read_chunks(
    name: &str,
    file: File,
    len: u64,
    chunk: u64,
    out: &LineSender,
    shutdown: &CancellationToken,
    count: bool,
) -> Result<Option<i64>> {
    let file = Arc::new(file);
    let name: Arc<str> = Arc::from(name);
    let numbering = Arc::new(Numbering::default());
    let chunk = chunk.max(1);
    let mut start = 0;
    let mut index = 0;
    while start < len {
        let end = start.saturating_add(chunk).min(len);
        let load = Box::new(Chunk {
            name: name.clone(),
            file: file.clone(),
            start,
            end,
            index,
            numbering: numbering.clone(),
            first: None,
        });
        tokio::select! {
            sent = out.load(load) => if sent.is_err() { return Ok(None) },
            _ = shutdown.cancelled() => return Ok(None),
        }
        start = end;
        index += 1;
    }
    if !count {
        return Ok(None);
    }
    // The decoders count the chunks as they read them.
    loop {
        if let Some(total) = numbering.total(index)? {
            return Ok(Some(total));
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_millis(2)) => {}
            _ = shutdown.cancelled() => return Ok(None),
        }
    }
}

/// Where the last whole line of `file` ends (after its `\n`), looking back
/// from `len`; 0 when it has none.
pub fn last_line_end(file: &File, len: u64) -> std::io::Result<u64> {
    let mut buf = vec![0; SCAN_BYTES];
    let mut end = len;
    while end > 0 {
        let start = end.saturating_sub(SCAN_BYTES as u64);
        let want = (end - start) as usize;
        let got = read_at(file, &mut buf[..want], start)?;
        if let Some(pos) = memchr::memrchr(b'\n', &buf[..got]) {
            return Ok(start + pos as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// One chunk of a file: the lines that begin in `start..end`.
#[derive(Debug)]
struct Chunk {
    name: Arc<str>,
    file: Arc<File>,
    start: u64,
    end: u64,
    /// Its place in the file, for its [`Numbering`].
    index: u64,
    numbering: Arc<Numbering>,
    /// The number of its first line, once known.
    first: Option<i64>,
}

impl LoadLines for Chunk {
    fn bytes(&self) -> u64 {
        self.end - self.start
    }

    fn load(&mut self) -> Result<LineBatch> {
        let (data, ends) = match self.read() {
            Ok(read) => read,
            Err(e) => {
                // The chunks after it would wait for their numbers for ever.
                self.numbering.fail();
                return Err(EngineError::io(format!("reading {}", self.name), e));
            }
        };
        let mut lines = LineBatch::split(data, ends);
        // Numbered now if every chunk before it is counted; else from 0
        // until `first_offset`.
        self.first = self.numbering.count(self.index, lines.len() as i64)?;
        lines.first_offset = self.first.unwrap_or(0);
        lines.received_at_us = super::lines::now_us();
        Ok(lines)
    }

    fn first_offset(&mut self) -> Result<i64> {
        match self.first {
            Some(first) => Ok(first),
            None => self.numbering.first(self.index),
        }
    }
}

impl Chunk {
    /// The bytes of the lines that begin in the chunk, each ending in
    /// `\n` (the file's last line too), and a buffer for their ends.
    fn read(&self) -> std::io::Result<(Vec<u8>, Vec<u32>)> {
        let Some(first) = self.first_line()? else {
            return Ok((Vec::new(), Vec::new()));
        };
        let (mut data, ends) = LineBatch::read_buffer((self.end - first) as usize);
        let got = read_at(&self.file, &mut data, first)?;
        data.truncate(got);
        if got == 0 {
            return Ok((data, ends));
        }
        // The last line, finished beyond the chunk.
        if data.last() != Some(&b'\n') {
            if got < (self.end - first) as usize {
                // The file was cut short while read: what is there is all.
                data.push(b'\n');
            } else {
                self.finish_line(&mut data, self.end)?;
            }
        }
        Ok((data, ends))
    }

    /// Where the first line that begins in the chunk begins (none when a
    /// line begun before it runs through it).
    fn first_line(&self) -> std::io::Result<Option<u64>> {
        if self.start == 0 {
            return Ok(Some(0));
        }
        // A line begins after every `\n` from the byte before the chunk to
        // its last but one.
        let mut at = self.start - 1;
        let mut buf = vec![0; SCAN_BYTES];
        while at < self.end - 1 {
            let want = ((self.end - 1 - at) as usize).min(SCAN_BYTES);
            let got = read_at(&self.file, &mut buf[..want], at)?;
            if let Some(pos) = memchr::memchr(b'\n', &buf[..got]) {
                return Ok(Some(at + pos as u64 + 1));
            }
            if got < want {
                break;
            }
            at += got as u64;
        }
        Ok(None)
    }

    /// Reads on from `at` to the end of the line `data` ends in the middle
    /// of, its `\n` included (one is added at the end of the file).
    fn finish_line(&self, data: &mut Vec<u8>, mut at: u64) -> std::io::Result<()> {
        loop {
            let had = data.len();
            data.resize(had + SCAN_BYTES, 0);
            let got = read_at(&self.file, &mut data[had..], at)?;
            data.truncate(had + got);
            if let Some(pos) = memchr::memchr(b'\n', &data[had..]) {
                data.truncate(had + pos + 1);
                return Ok(());
            }
            if got == 0 {
                data.push(b'\n');
                return Ok(());
            }
            at += got as u64;
        }
    }
}

/// Fills `buf` from `at` on; fewer bytes only at the end of the file.
fn read_at(file: &File, buf: &mut [u8], at: u64) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], at + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Numbers a file's lines in order across chunks read on several threads:
/// each chunk says how many lines it has as soon as it has read them, and
/// its first line's number is known once every chunk before it has.
#[derive(Debug, Default)]
struct Numbering {
    turn: Mutex<Turn>,
    counted: Condvar,
}

#[derive(Debug, Default)]
struct Turn {
    /// Chunks numbered so far (all those before this index).
    next: u64,
    /// The number of the next chunk's first line.
    offset: i64,
    /// Line counts of chunks that came before the ones ahead of them.
    early: HashMap<u64, i64>,
    /// First line numbers of numbered chunks that have not asked yet.
    firsts: HashMap<u64, i64>,
    /// A chunk could not be read: the ones after it cannot be numbered.
    failed: bool,
}

impl Numbering {
    /// Records that chunk `index` has `lines` lines; the number of its
    /// first line when every chunk before it is counted.
    fn count(&self, index: u64, lines: i64) -> Result<Option<i64>> {
        let mut guard = self.turn.lock().map_err(|_| lost())?;
        let turn = &mut *guard;
        turn.early.insert(index, lines);
        while let Some(n) = turn.early.remove(&turn.next) {
            let (next, offset) = (turn.next, turn.offset);
            turn.firsts.insert(next, offset);
            turn.offset += n;
            turn.next += 1;
        }
        self.counted.notify_all();
        Ok(turn.firsts.remove(&index))
    }

    /// The number of chunk `index`'s first line, once every chunk before
    /// it is counted.
    fn first(&self, index: u64) -> Result<i64> {
        let mut turn = self.turn.lock().map_err(|_| lost())?;
        loop {
            if let Some(first) = turn.firsts.remove(&index) {
                return Ok(first);
            }
            if turn.failed {
                return Err(EngineError::Internal(
                    "an earlier part of the file could not be read".into(),
                ));
            }
            turn = self.counted.wait(turn).map_err(|_| lost())?;
        }
    }

    /// How many lines the first `chunks` chunks have, once all are
    /// counted.
    fn total(&self, chunks: u64) -> Result<Option<i64>> {
        let turn = self.turn.lock().map_err(|_| lost())?;
        if turn.failed {
            return Err(EngineError::Internal(
                "a part of the file could not be read".into(),
            ));
        }
        Ok((turn.next >= chunks).then_some(turn.offset))
    }

    fn fail(&self) {
        if let Ok(mut turn) = self.turn.lock() {
            turn.failed = true;
        }
        self.counted.notify_all();
    }
}

fn lost() -> EngineError {
    EngineError::Internal("a file's line numbering was lost".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_engine::connector::SourceMessage;

    /// Every line of `data` with its number, read in chunks of `chunk`
    /// bytes, the chunks loaded in the order given by `order` (a
    /// permutation of their indices, each on a thread of its own).
    async fn chunked(data: &[u8], chunk: u64) -> Vec<(i64, Vec<u8>)> {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("f.log");
        std::fs::write(&path, data).unwrap_or_else(|e| panic!("{e}"));
        let file = File::open(&path).unwrap_or_else(|e| panic!("{e}"));
        let (tx, mut rx) = tokio::sync::mpsc::channel(1 << 16);
        read_chunks(
            "t",
            file,
            data.len() as u64,
            chunk,
            &LineSender::new(tx),
            &CancellationToken::new(),
            false,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        let mut loads = Vec::new();
        let mut bytes = 0;
        while let Ok(SourceMessage::Load(l)) = rx.try_recv() {
            bytes += l.bytes();
            loads.push(l);
        }
        assert_eq!(bytes, data.len() as u64, "the chunks cover the file");
        // Loaded on three threads, chunk i on thread i % 3, each thread
        // counting all its chunks before it asks their numbers: chunks are
        // counted out of order, as on decoders.
        let mut shares: Vec<Vec<(usize, Box<dyn LoadLines>)>> =
            vec![Vec::new(), Vec::new(), Vec::new()];
        for (i, l) in loads.into_iter().enumerate() {
            shares[i % 3].push((i, l));
        }
        let handles: Vec<_> = shares
            .into_iter()
            .map(|share| {
                std::thread::spawn(move || {
                    let mut loaded = Vec::new();
                    for (i, mut l) in share {
                        let lines = l.load()?;
                        loaded.push((i, l, lines));
                    }
                    let mut done = Vec::new();
                    for (i, mut l, mut lines) in loaded {
                        lines.first_offset = l.first_offset()?;
                        done.push((i, lines));
                    }
                    Ok::<_, EngineError>(done)
                })
            })
            .collect();
        let mut batches: Vec<(usize, LineBatch)> = Vec::new();
        for h in handles {
            let done = h.join().unwrap_or_else(|_| panic!("panicked"));
            batches.extend(done.unwrap_or_else(|e| panic!("{e}")));
        }
        batches.sort_by_key(|(i, _)| *i);
        let batches: Vec<LineBatch> = batches.into_iter().map(|(_, b)| b).collect();
        let mut lines = Vec::new();
        for b in &batches {
            assert_eq!(b.data.len(), b.ends.last().map_or(0, |e| *e as usize + 1));
            for i in 0..b.len() {
                assert_eq!(b.data[b.ends[i] as usize], b'\n');
                lines.push((b.first_offset + i as i64, b.line(i).to_vec()));
            }
        }
        lines
    }

    /// The same file read line by line, as a stream.
    async fn streamed(data: &[u8]) -> Vec<(i64, Vec<u8>)> {
        let (tx, mut rx) = tokio::sync::mpsc::channel(1 << 16);
        super::super::lines::read_lines(
            "t",
            super::super::lines::Input::Stream(std::io::Cursor::new(data.to_vec())),
            &LineSender::new(tx),
            &CancellationToken::new(),
            0,
            None,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        let mut lines = Vec::new();
        while let Ok(SourceMessage::Lines(b)) = rx.try_recv() {
            for i in 0..b.len() {
                lines.push((b.first_offset + i as i64, b.line(i).to_vec()));
            }
        }
        lines
    }

    #[tokio::test]
    async fn chunks_read_the_lines_a_stream_reads_numbered_alike() {
        let mut inputs: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"one".to_vec(),
            b"\n".to_vec(),
            b"\n\n\n".to_vec(),
            b"a\nbb\nccc\n".to_vec(),
            b"a\r\nbb\r\n\r\nccc".to_vec(),
            b"\xEF\xBB\xBF{\"a\":1}\r\n\xEF\xBB\xBF\r\nx\r\r\n".to_vec(),
        ];
        // Lines of every length around the chunk sizes below, and one far
        // longer than a chunk.
        let mut varied = Vec::new();
        for i in 0..200 {
            varied.extend(std::iter::repeat_n(b'x', i % 23));
            varied.extend_from_slice(if i % 7 == 0 { b"\r\n" } else { b"\n" });
        }
        varied.extend(std::iter::repeat_n(b'y', 5000));
        varied.extend_from_slice(b"\nlast");
        inputs.push(varied);
        for data in &inputs {
            let want = streamed(data).await;
            for chunk in [1, 2, 3, 5, 8, 17, 64, 1000, 1 << 20] {
                assert_eq!(
                    chunked(data, chunk).await,
                    want,
                    "{chunk}-byte chunks of {:?}",
                    String::from_utf8_lossy(&data[..data.len().min(40)])
                );
            }
        }
    }

    #[test]
    fn a_chunk_that_cannot_be_read_stops_the_ones_after_it() {
        let numbering = Numbering::default();
        assert_eq!(
            numbering.count(1, 3).ok(),
            Some(None),
            "chunk 0 is not counted"
        );
        assert_eq!(numbering.count(0, 5).ok(), Some(Some(0)));
        assert_eq!(numbering.first(1).ok(), Some(5));
        assert_eq!(numbering.count(3, 1).ok(), Some(None));
        numbering.fail();
        assert!(numbering.first(3).is_err(), "chunk 2 never came");
    }
}

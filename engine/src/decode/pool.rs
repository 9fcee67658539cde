//! Decodes one source's batches on several cores at once and hands them on
//! in the order they arrived: each decoder runs on a thread of its own (so
//! the memory a decoder allocates is reused by the same thread batch after
//! batch, instead of wandering between the threads of a shared pool); a
//! batch goes to a decoder with room (each takes two: one decoding, one
//! queued), and the oldest result is taken back before a new batch is
//! started when every decoder is full. The decoder task also
//! takes each result as soon as it is ready ([`DecodePool::oldest`]), so a
//! quiet source's last batch does not wait for the next. With one decoder
//! (one core) batches are decoded in place, with no thread hand-off.
//! Where the dead-letter store takes JSON lines, a batch's dead letters are
//! encoded where it was decoded, so a dirty stream's letters are encoded on
//! every core, not in the one task that hands batches on in order.
//! A batch may also come as lines still to be read ([`LoadLines`]: a chunk
//! of a large file): its decoder reads them first, and numbers them once
//! they are decoded (their first number may wait on the chunks before
//! them being counted on other decoders; by then it as good as never does).

use super::{Decoded, LineDecoder};
use crate::connector::{LineBatch, LoadLines};
use crate::error::{EngineError, Result};
use std::collections::VecDeque;
use std::future::Future;
use std::sync::mpsc;
use tokio::sync::oneshot;

/// A batch for a decoder: lines, or lines it reads first.
pub enum Lines {
    Read(LineBatch),
    Load(Box<dyn LoadLines>),
}

type Job = (Lines, oneshot::Sender<Result<Decoded>>);

/// Batches given to each decoder at a time.
const QUEUED: usize = 2;

/// A source's decoders.
pub struct DecodePool {
    /// With one decoder: it, used in place.
    local: Option<LineDecoder>,
    /// Whether dead letters leave as JSON lines ([`Decoded::encode_letters`]).
    encode_letters: bool,
    /// With several: a thread each, fed through its sender.
    workers: Vec<mpsc::Sender<Job>>,
    idle: Vec<usize>,
    /// Batches being decoded, oldest first: the worker and its answer.
    busy: VecDeque<(usize, oneshot::Receiver<Result<Decoded>>)>,
}

impl DecodePool {
    /// `decoders` are alike (the same source's); as many run at once. Each
    /// of several gets a thread, which ends with the pool. With
    /// `encode_letters`, each batch's dead letters leave encoded as JSON
    /// lines, done where the batch was decoded.
    pub fn new(mut decoders: Vec<LineDecoder>, encode_letters: bool) -> DecodePool {
        if decoders.len() <= 1 {
            return DecodePool {
                local: decoders.pop(),
                encode_letters,
                workers: Vec::new(),
                idle: Vec::new(),
                busy: VecDeque::new(),
            };
        }
        let mut workers = Vec::with_capacity(decoders.len());
        for mut decoder in decoders {
            let (tx, rx) = mpsc::channel::<Job>();
            let spawned = std::thread::Builder::new()
                .name("weir-decode".into())
                .spawn(move || {
                    while let Ok((lines, reply)) = rx.recv() {
                        let _ = reply.send(decode_batch(&mut decoder, lines, encode_letters));
                    }
                });
            match spawned {
                Ok(_) => workers.push(tx),
                Err(e) => tracing::warn!(error = %e, "could not start a decoder thread"),
            }
        }
        // Each decoder holds a second batch queued behind the one it
        // decodes: results are taken back in order, and a decoder that
        // finished before the one ahead of it starts its next batch instead
        // of waiting idle (a tenth of a second core's time when it had one).
        let n = workers.len();
        DecodePool {
            local: None,
            encode_letters,
            idle: (0..QUEUED).flat_map(|_| (0..n).rev()).collect(),
            workers,
            busy: VecDeque::new(),
        }
    }

    /// How many decoders decode at once.
    pub fn decoders(&self) -> usize {
        self.workers.len().max(1)
    }

    /// How many decoders a source gets: the cores this process may use.
    pub fn width() -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }

    /// Starts decoding `lines`. What comes back is every batch finished in
    /// order before it (when all decoders were busy, the oldest one; with a
    /// single decoder, this batch itself).
    pub async fn submit(&mut self, lines: impl Into<Lines>) -> Result<Vec<Decoded>> {
        let lines = lines.into();
        let mut done = Vec::new();
        if let Some(d) = self.local.as_mut() {
            done.push(decode_batch(d, lines, self.encode_letters)?);
            return Ok(done);
        }
        if self.workers.is_empty() {
            return Err(EngineError::Internal(
                "a decode pool without decoders".into(),
            ));
        }
        while self.idle.is_empty() {
            done.push(self.oldest().await?);
        }
        // Finished ones at the front are taken too, so results never wait
        // behind an idle decoder.
        while self
            .busy
            .front_mut()
            .is_some_and(|(_, rx)| !rx.is_empty() || rx.is_terminated())
        {
            done.push(self.oldest().await?);
        }
        if let Some(w) = self.idle.pop() {
            let (reply, answer) = oneshot::channel();
            self.workers[w]
                .send((lines, reply))
                .map_err(|_| EngineError::Internal("a decoder thread stopped".into()))?;
            self.busy.push_back((w, answer));
        }
        Ok(done)
    }

    /// Waits for every batch started, in order.
    pub async fn drain(&mut self) -> Result<Vec<Decoded>> {
        let mut done = Vec::with_capacity(self.busy.len());
        while !self.busy.is_empty() {
            done.push(self.oldest().await?);
        }
        Ok(done)
    }

    /// Whether a batch is being decoded.
    pub fn is_busy(&self) -> bool {
        !self.busy.is_empty()
    }

    /// The oldest batch started, once it is decoded (pending while none
    /// is: callers check [`DecodePool::is_busy`]). Cancel-safe: dropping
    /// the future before it is ready loses nothing, so it can race new
    /// lines in a `select!`.
    pub async fn oldest(&mut self) -> Result<Decoded> {
        let answer = std::future::poll_fn(|cx| match self.busy.front_mut() {
            Some((_, rx)) => std::pin::Pin::new(rx).poll(cx),
            None => std::task::Poll::Pending,
        })
        .await;
        if let Some((w, _)) = self.busy.pop_front() {
            self.idle.push(w);
        }
        answer.map_err(|_| EngineError::Internal("a decoder stopped".into()))?
    }
}

impl From<LineBatch> for Lines {
    fn from(lines: LineBatch) -> Lines {
        Lines::Read(lines)
    }
}

impl From<Box<dyn LoadLines>> for Lines {
    fn from(load: Box<dyn LoadLines>) -> Lines {
        Lines::Load(load)
    }
}

/// One batch decoded, its buffers handed back for the next, and its dead
/// letters encoded when asked: the same on a decoder's thread and in place.
fn decode_batch(decoder: &mut LineDecoder, lines: Lines, encode_letters: bool) -> Result<Decoded> {
    let (lines, mut load) = match lines {
        Lines::Read(lines) => (lines, None),
        Lines::Load(mut load) => (load.load()?, Some(load)),
    };
    let provisional = lines.first_offset;
    let decoded = if lines.is_empty() {
        Ok(Decoded::default())
    } else {
        decoder.decode(&lines)
    };
    lines.recycle();
    let mut decoded = decoded?;
    // Loaded lines are numbered once the lines before them are counted.
    if let Some(load) = load.as_mut() {
        decoded.renumber(load.first_offset()? - provisional)?;
    }
    if encode_letters {
        decoded.encode_letters();
    }
    Ok(decoded)
}

//! Decodes one source's batches on several cores at once and hands them on
//! in the order they arrived: each batch goes to an idle decoder on the
//! blocking pool, and the oldest result is taken back before a new batch is
//! started when every decoder is busy; the decoder task also takes each
//! result as soon as it is ready ([`DecodePool::oldest`]), so a quiet
//! source's last batch does not wait for the next. With one decoder (one
//! core) batches are decoded in place, with no thread hand-off.

use super::{Decoded, LineDecoder};
use crate::connector::LineBatch;
use crate::error::{EngineError, Result};
use std::collections::VecDeque;
use std::future::Future;
use tokio::task::JoinHandle;

type Job = JoinHandle<(LineDecoder, Result<Decoded>)>;

/// A source's decoders.
pub struct DecodePool {
    idle: Vec<LineDecoder>,
    busy: VecDeque<Job>,
}

impl DecodePool {
    /// `decoders` are alike (the same source's); as many run at once.
    pub fn new(decoders: Vec<LineDecoder>) -> DecodePool {
        DecodePool {
            busy: VecDeque::with_capacity(decoders.len()),
            idle: decoders,
        }
    }

    /// How many decoders a source gets: the cores this process may use.
    pub fn width() -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }

    /// Starts decoding `lines`. What comes back is every batch finished in
    /// order before it (when all decoders were busy, the oldest one; with a
    /// single decoder, this batch itself).
    pub async fn submit(&mut self, lines: LineBatch) -> Result<Vec<Decoded>> {
        let mut done = Vec::new();
        if self.idle.is_empty() && self.busy.is_empty() {
            return Err(EngineError::Internal(
                "a decode pool without decoders".into(),
            ));
        }
        if self.busy.is_empty() && self.idle.len() == 1 {
            if let Some(d) = self.idle.first_mut() {
                done.push(d.decode(&lines)?);
                return Ok(done);
            }
        }
        while self.idle.is_empty() {
            done.push(self.oldest().await?);
        }
        // Finished ones at the front are taken too, so results never wait
        // behind an idle decoder.
        while self.busy.front().is_some_and(|j| j.is_finished()) {
            done.push(self.oldest().await?);
        }
        if let Some(mut decoder) = self.idle.pop() {
            self.busy.push_back(tokio::task::spawn_blocking(move || {
                let out = decoder.decode(&lines);
                (decoder, out)
            }));
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
        let joined = std::future::poll_fn(|cx| match self.busy.front_mut() {
            Some(job) => std::pin::Pin::new(job).poll(cx),
            None => std::task::Poll::Pending,
        })
        .await;
        self.busy.pop_front();
        let (decoder, out) =
            joined.map_err(|e| EngineError::Internal(format!("a decoder stopped: {e}")))?;
        self.idle.push(decoder);
        out
    }
}

//! Where events come from: `file` (tailing), `stdin`, `syslog` (TCP/UDP),
//! `http` (JSON lines). Each source turns what it reads into events with its
//! [`EventShape`] and hands them on in batches; a batch can carry an
//! acknowledgement that fires once every event of it is in Kafka or the spool
//! (the file source only moves its saved positions then).

pub mod file;
pub mod http;
pub mod multiline;
pub mod stdin;
pub mod syslog;

use crate::config::{SourceConfig, SourceType};
use crate::event::{Event, EventShape};
use crate::metrics::ShipMetrics;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// Events of one source on their way to Kafka.
pub struct Batch {
    pub shape: Arc<EventShape>,
    pub events: Vec<Event>,
    /// Told `true` once every event is confirmed or spooled.
    pub ack: Option<oneshot::Sender<bool>>,
}

/// What a running source has.
pub struct SourceCtx {
    pub cfg: SourceConfig,
    pub shape: Arc<EventShape>,
    pub out: mpsc::Sender<Batch>,
    pub metrics: ShipMetrics,
    pub state_dir: PathBuf,
    pub cancel: CancellationToken,
    limiter: Option<Limiter>,
}

impl SourceCtx {
    pub fn new(
        cfg: SourceConfig,
        shape: Arc<EventShape>,
        out: mpsc::Sender<Batch>,
        metrics: ShipMetrics,
        state_dir: PathBuf,
        cancel: CancellationToken,
    ) -> SourceCtx {
        let limiter = cfg.rate_limit.map(Limiter::new);
        SourceCtx {
            cfg,
            shape,
            out,
            metrics,
            state_dir,
            cancel,
            limiter,
        }
    }

    /// Builds events from lines (counting read and filtered ones), waits for
    /// the rate limit, and sends them. Returns the acknowledgement receiver
    /// when `ack` is asked for; `None` also when the agent is stopping.
    pub async fn send_lines<'a>(
        &mut self,
        lines: impl IntoIterator<Item = &'a str>,
        ack: bool,
    ) -> Option<oneshot::Receiver<bool>> {
        let now = chrono::Utc::now();
        let built: Vec<Option<Event>> =
            lines.into_iter().map(|l| self.shape.line(l, now)).collect();
        self.send_built(built, ack).await
    }

    /// Sends what [`EventShape`] built from each input read (`None`: below
    /// `min_severity`), counting inputs read and filtered.
    pub async fn send_built(
        &mut self,
        built: impl IntoIterator<Item = Option<Event>>,
        ack: bool,
    ) -> Option<oneshot::Receiver<bool>> {
        let mut events = Vec::new();
        let mut read = 0u64;
        for e in built {
            read += 1;
            match e {
                Some(e) => events.push(e),
                None => self
                    .metrics
                    .filtered
                    .with_label_values(&[&self.cfg.name])
                    .inc(),
            }
        }
        self.metrics
            .lines
            .with_label_values(&[&self.cfg.name])
            .inc_by(read);
        self.send_events(events, ack).await
    }

    /// Sends ready events (see [`send_lines`](Self::send_lines)).
    pub async fn send_events(
        &mut self,
        events: Vec<Event>,
        ack: bool,
    ) -> Option<oneshot::Receiver<bool>> {
        if let Some(l) = self.limiter.as_mut() {
            l.wait(events.len()).await;
        }
        let (tx, rx) = if ack {
            let (tx, rx) = oneshot::channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let batch = Batch {
            shape: self.shape.clone(),
            events,
            ack: tx,
        };
        self.out.send(batch).await.ok()?;
        rx
    }
}

/// Runs one source until it ends or is cancelled.
pub async fn run(ctx: SourceCtx) -> Result<(), crate::ShipError> {
    match ctx.cfg.kind {
        SourceType::File => file::run(ctx).await,
        SourceType::Stdin => stdin::run(ctx).await,
        SourceType::Syslog => syslog::run(ctx).await,
        SourceType::Http => http::run(ctx).await,
    }
}

/// At most `per_sec` events a second, by sleeping.
struct Limiter {
    per_sec: f64,
    allowance: f64,
    last: Instant,
}

impl Limiter {
    fn new(per_sec: u32) -> Limiter {
        Limiter {
            per_sec: per_sec as f64,
            allowance: per_sec as f64,
            last: Instant::now(),
        }
    }

    async fn wait(&mut self, n: usize) {
        let now = Instant::now();
        self.allowance = (self.allowance
            + now.duration_since(self.last).as_secs_f64() * self.per_sec)
            .min(self.per_sec);
        self.last = now;
        self.allowance -= n as f64;
        if self.allowance < 0.0 {
            tokio::time::sleep(Duration::from_secs_f64(-self.allowance / self.per_sec)).await;
        }
    }
}

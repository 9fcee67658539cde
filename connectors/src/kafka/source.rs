//! The `kafka(...)` source: a consumer-group member that turns messages into
//! [`LineBatch`]es (one partition per batch, offsets contiguous) and commits
//! offsets only after the engine confirms a checkpoint — everything before the
//! committed offset is durable in every sink (at-least-once, no loss).
//!
//! librdkafka is polled on a thread of its own; the rebalance callback runs
//! there. When partitions are revoked (cooperative-sticky by default), the
//! callback waits while the async side sends what it holds for them, takes a
//! checkpoint and commits, so the next owner starts exactly after what was
//! made durable. When the engine falls behind, the poll thread pauses
//! fetching and keeps polling (see [`poll_loop`]): a slow pipeline never
//! costs the consumer its place in the group.

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{ClientConfig, ClientContext, Offset, Statistics, TopicPartitionList};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use weir_engine::{EngineError, LineBatch, LineSender, Result, Source, StoredPositions};
use weir_formats::kafka::describe;

use crate::sources::lines::{now_us, MAX_BYTES, MAX_LINES};

/// Where a group with no committed offset starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    Earliest,
    Latest,
}

/// Settings of one `kafka(...)` source.
#[derive(Clone)]
pub struct KafkaSourceConfig {
    /// The source's name in the rules.
    pub name: String,
    /// Client settings (brokers, security, raw options).
    pub client: ClientConfig,
    /// Topic names, or regexes starting with `^`.
    pub topics: Vec<String>,
    pub group: String,
    pub start: Start,
    /// With a time (ms since the epoch), partitions that have no committed
    /// offset start at the first message at or after it.
    pub start_at_ms: Option<i64>,
    /// How often offsets are committed (each commit is a checkpoint: archive
    /// files are closed and outputs flushed first).
    pub commit_every: Duration,
    pub metrics: weir_engine::Metrics,
    /// A topic to create before subscribing when it is missing, with the
    /// partition count of the largest of these (a repartition topic).
    pub create_like: Vec<String>,
    /// Where the archive's table says each partition is archived up to:
    /// assigned partitions start after it (see [`Ctx::seek_to_stored`]).
    pub stored: Option<Arc<dyn StoredPositions>>,
}

/// The source.
pub struct KafkaSource {
    pub cfg: KafkaSourceConfig,
}

/// Default interval between offset commits of a `kafka` source.
pub const DEFAULT_COMMIT_EVERY: Duration = Duration::from_secs(5);

impl KafkaSource {
    /// `kafka(topic:, group:, start:, start_at:, commit_every:, brokers:,
    /// client_id:, options:, dead_letters:)`: the config file's `[kafka]`
    /// settings with the rules' on top.
    pub fn from_decl(
        f: &crate::LocalFactory,
        source: &weir_dsl::CheckedSource,
    ) -> Result<Box<dyn weir_engine::Source>> {
        let c = &source.decl.connector;
        let args = crate::args::Args(c);
        let start = match args.word("start") {
            Some("latest" | "end") => Start::Latest,
            _ => Start::Earliest,
        };
        Ok(Box::new(KafkaSource {
            cfg: KafkaSourceConfig {
                name: source.decl.name.name.clone(),
                client: f.kafka_client(c)?,
                topics: args.list("topic"),
                group: args
                    .str("group")
                    .unwrap_or(weir_dsl::repartition::DEFAULT_GROUP)
                    .to_string(),
                start,
                start_at_ms: args.time("start_at")?.map(|t| t.timestamp_millis()),
                commit_every: args
                    .duration("commit_every")
                    .map_or(DEFAULT_COMMIT_EVERY, |d| d.max(Duration::from_millis(10))),
                metrics: f.metrics.clone(),
                create_like: args.list(weir_dsl::repartition::CREATE_LIKE),
                stored: None,
            },
        }))
    }
}

/// What the poll thread hands the async side, in the order librdkafka gave it.
enum Polled {
    Message {
        topic: Arc<str>,
        partition: i32,
        offset: i64,
        payload: Option<Vec<u8>>,
    },
    /// Partitions assigned (their ids, see [`partition_id`]).
    Assign(Vec<i64>),
    /// Partitions being taken away: commit them, then answer.
    Revoke(Vec<(String, i32)>, std::sync::mpsc::SyncSender<()>),
    /// An error the source cannot recover from (authentication, TLS).
    Fatal(String),
}

struct Ctx {
    tx: mpsc::Sender<Polled>,
    source: String,
    start_at_ms: Option<i64>,
    stored: Option<Arc<dyn StoredPositions>>,
    /// The engine's runtime: the poll thread waits on it for `stored`.
    runtime: tokio::runtime::Handle,
    single_topic: bool,
    lag: prometheus::IntGaugeVec,
    /// `weir_source_healthy`: 0 while every broker is down, 1 again at the
    /// next message.
    healthy: prometheus::IntGauge,
    /// Partitions revoked since the poll thread last looked: what it holds
    /// of them is dropped (the next owner reads it from the commit).
    revoked: std::sync::Mutex<Vec<(String, i32)>>,
    /// How long the poll thread waits on the pipeline (see [`patience`]).
    patience: Duration,
    /// Assignments and revocations the rebalance callbacks could not hand
    /// over within `patience` (a stalled pipeline): the poll thread queues
    /// them behind what it holds.
    deferred: std::sync::Mutex<Vec<Polled>>,
    /// `weir_source_paused`: 1 while fetching is paused for a stalled pipeline.
    paused: prometheus::IntGauge,
}

impl Ctx {
    fn take_revoked(&self) -> Vec<(String, i32)> {
        self.revoked
            .lock()
            .map(|mut r| std::mem::take(&mut *r))
            .unwrap_or_default()
    }

    fn take_deferred(&self) -> Vec<Polled> {
        self.deferred
            .lock()
            .map(|mut d| std::mem::take(&mut *d))
            .unwrap_or_default()
    }

    /// Hands a rebalance's message to the async side from a rebalance
    /// callback, which runs on the poll thread: waiting longer than
    /// `patience` for room would cost the consumer its place in the group
    /// (and hold up the group's rebalance), so past that the message is
    /// queued behind what the poll thread holds, in order.
    fn hand_over(&self, msg: Polled) -> HandOver {
        let msg = match self.tx.try_send(msg) {
            Ok(()) => return HandOver::Sent,
            Err(mpsc::error::TrySendError::Closed(_)) => return HandOver::Stopping,
            Err(mpsc::error::TrySendError::Full(msg)) => msg,
        };
        // On a runtime thread (never the poll thread): cannot wait.
        let msg = if tokio::runtime::Handle::try_current().is_ok() {
            msg
        } else {
            match self.send_within_patience(msg) {
                Ok(()) => return HandOver::Sent,
                Err(None) => return HandOver::Stopping,
                Err(Some(msg)) => msg,
            }
        };
        if let Ok(mut d) = self.deferred.lock() {
            d.push(msg);
        }
        HandOver::Deferred
    }

    /// Sends `msg` to the async side, waiting at most `patience` for room;
    /// on a thread that is not one of the runtime's (the poll thread).
    /// `Err(Some(msg))`: no room in time; `Err(None)`: the async side is gone.
    fn send_within_patience(&self, msg: Polled) -> Result<(), Option<Polled>> {
        // The timer is made inside the runtime.
        let room = self
            .runtime
            .block_on(async { tokio::time::timeout(self.patience, self.tx.reserve()).await });
        match room {
            Ok(Ok(permit)) => {
                permit.send(msg);
                Ok(())
            }
            Ok(Err(_)) => Err(None),
            Err(_) => Err(Some(msg)),
        }
    }
}

/// What became of a rebalance's message (see [`Ctx::hand_over`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HandOver {
    /// The async side has it.
    Sent,
    /// Queued behind what the poll thread holds: the pipeline is stalled.
    Deferred,
    /// The async side is gone: the source is stopping.
    Stopping,
}

impl ClientContext for Ctx {
    fn stats(&self, stats: Statistics) {
        for (topic, t) in &stats.topics {
            for (p, part) in &t.partitions {
                if *p >= 0 && part.consumer_lag >= 0 {
                    self.lag
                        .with_label_values(&[&self.source, topic, &p.to_string()])
                        .set(part.consumer_lag);
                }
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        match weir_formats::kafka::fatal_hint(error.rdkafka_error_code()) {
            Some((table, what)) => {
                let _ = self.tx.try_send(Polled::Fatal(format!(
                    "{reason} (hint: check [kafka.{table}] {what})"
                )));
            }
            None => {
                if error.rdkafka_error_code()
                    == Some(rdkafka::types::RDKafkaErrorCode::AllBrokersDown)
                {
                    self.healthy.set(0);
                }
                warn!(source = %self.source, error = %error, reason, "kafka client error")
            }
        }
    }
}

impl Ctx {
    /// Moves newly assigned partitions to just after what the archive's
    /// table holds of them, when the group's committed offset is missing
    /// (a new group, expired offsets) or further on (the table is the
    /// record; Kafka's offsets are a hint). The table is never behind a
    /// commit Weir made, so this seeks only when offsets were lost or
    /// moved by hand; replays the table already holds are dropped by the
    /// archive either way. Returns the partitions it moved.
    fn seek_to_stored(
        &self,
        consumer: &BaseConsumer<Self>,
        assigned: &TopicPartitionList,
    ) -> Vec<(String, i32)> {
        let Some(stored) = &self.stored else {
            return Vec::new();
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            // Called on a runtime thread (never the poll thread): cannot wait.
            return Vec::new();
        }
        // This runs in the rebalance callback, on the poll thread: all of
        // it stays well under `max.poll.interval.ms` (librdkafka's default
        // is 300 s, deployments set 10 s), or a slow store would cost the
        // consumer its place in the group at every assignment, again and
        // again. Giving up is safe: the archive drops what it holds.
        let timeout = Duration::from_secs(3);
        let ids: Vec<(String, i32, i64)> = assigned
            .elements()
            .iter()
            .map(|e| {
                let id = partition_id(self.single_topic, e.topic(), e.partition());
                (e.topic().to_string(), e.partition(), id)
            })
            .collect();
        let wanted: Vec<i64> = ids.iter().map(|(_, _, id)| *id).collect();
        // Bounded: a store outage must not hold the poll thread for long.
        let read = self.runtime.block_on(async {
            tokio::time::timeout(Duration::from_secs(4), stored.stored_upto(&wanted)).await
        });
        let upto = match read {
            Ok(Ok(m)) => m,
            Ok(Err(e)) => {
                warn!(source = %self.source, error = %e, "cannot read the archive's positions; starting at the committed offsets");
                return Vec::new();
            }
            Err(_) => {
                warn!(source = %self.source, "reading the archive's positions timed out; starting at the committed offsets");
                return Vec::new();
            }
        };
        if upto.is_empty() {
            return Vec::new();
        }
        let committed = match consumer.committed_offsets(assigned.clone(), timeout) {
            Ok(c) => c,
            Err(e) => {
                warn!(source = %self.source, error = %e, "cannot read committed offsets; not seeking to the archive's positions");
                return Vec::new();
            }
        };
        let mut seek = TopicPartitionList::new();
        let mut moved = Vec::new();
        for (topic, partition, id) in &ids {
            let Some(&last) = upto.get(id) else { continue };
            let next = last + 1;
            let at = committed
                .find_partition(topic, *partition)
                .and_then(|e| match e.offset() {
                    Offset::Offset(o) => Some(o),
                    _ => None,
                });
            if at.is_some_and(|o| o <= next) {
                continue;
            }
            info!(source = %self.source, topic = %topic, partition, committed = ?at, archived_upto = last, "starting after what the archive holds");
            let _ = seek.add_partition_offset(topic, *partition, Offset::Offset(next));
            moved.push((topic.clone(), *partition));
        }
        if seek.count() > 0 {
            if let Err(e) = consumer.seek_partitions(seek, timeout) {
                warn!(source = %self.source, error = %e, "cannot seek to the archive's positions");
                return Vec::new();
            }
        }
        moved
    }

    /// Moves newly assigned partitions without a committed offset to the
    /// first message at or after `start_at_ms`.
    fn seek_to_start_time(&self, consumer: &BaseConsumer<Self>, assigned: &TopicPartitionList) {
        let Some(ms) = self.start_at_ms else { return };
        let timeout = Duration::from_secs(10);
        let fresh = match consumer.committed_offsets(assigned.clone(), timeout) {
            Ok(c) => c,
            Err(e) => {
                warn!(source = %self.source, error = %e, "cannot read committed offsets; start time not applied");
                return;
            }
        };
        let mut by_time = TopicPartitionList::new();
        for e in fresh.elements() {
            if !matches!(e.offset(), Offset::Offset(_)) {
                let _ = by_time.add_partition_offset(e.topic(), e.partition(), Offset::Offset(ms));
            }
        }
        if by_time.count() == 0 {
            return;
        }
        let result = consumer
            .offsets_for_times(by_time, timeout)
            .and_then(|at| consumer.seek_partitions(at, timeout));
        match result {
            Ok(done) => {
                info!(source = %self.source, partitions = done.count(), "started at the configured time")
            }
            Err(e) => warn!(source = %self.source, error = %e, "cannot seek to the start time"),
        }
    }
}

impl ConsumerContext for Ctx {
    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            debug!(source = %self.source, partitions = ?tpl.elements().iter().map(|e| e.partition()).collect::<Vec<_>>(), "partitions assigned");
            let moved = self.seek_to_stored(consumer, tpl);
            let mut rest = TopicPartitionList::new();
            for e in tpl.elements() {
                if !moved
                    .iter()
                    .any(|(t, p)| t == e.topic() && *p == e.partition())
                {
                    rest.add_partition(e.topic(), e.partition());
                }
            }
            self.seek_to_start_time(consumer, &rest);
            let ids = tpl
                .elements()
                .iter()
                .map(|e| partition_id(self.single_topic, e.topic(), e.partition()))
                .collect();
            if self.hand_over(Polled::Assign(ids)) == HandOver::Deferred {
                debug!(source = %self.source, "assignment queued behind what the stalled pipeline holds");
            }
        }
    }

    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let parts: Vec<(String, i32)> = tpl
                .elements()
                .iter()
                .map(|e| (e.topic().to_string(), e.partition()))
                .collect();
            info!(source = %self.source, partitions = ?parts, "partitions revoked: committing what was read");
            if let Ok(mut r) = self.revoked.lock() {
                r.extend(parts.iter().cloned());
            }
            let (done_tx, done_rx) = std::sync::mpsc::sync_channel(1);
            // The async side answers after its checkpoint and commit; a
            // stalled pipeline gives the partitions up without them (the
            // next owner reads again from the last commit; the archive
            // drops what it holds already).
            let answer = match self.hand_over(Polled::Revoke(parts, done_tx)) {
                HandOver::Sent => done_rx.recv_timeout(self.patience),
                HandOver::Deferred => Err(RecvTimeoutError::Timeout),
                HandOver::Stopping => Err(RecvTimeoutError::Disconnected),
            };
            match answer {
                Ok(()) => {}
                // Stopping: the async side committed what it had on its way out.
                Err(RecvTimeoutError::Disconnected) => {
                    debug!(source = %self.source, "partitions revoked while stopping")
                }
                Err(RecvTimeoutError::Timeout) => {
                    warn!(source = %self.source, waited = ?self.patience, "the pipeline is stalled: partitions given up without a commit; their next owner reads again from the last commit")
                }
            }
        }
    }
}

/// How long the poll thread waits for room in a full channel before it
/// pauses fetching: a third of `max.poll.interval.ms` (librdkafka's default
/// 300 s), at most 30 s — rebalance callbacks run on this thread and wait
/// as long.
fn patience(client: &ClientConfig) -> Duration {
    let interval = client
        .get("max.poll.interval.ms")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(300_000);
    Duration::from_millis((interval / 3).clamp(100, 30_000))
}

/// The poll thread: hands messages to the async side in order, waiting for
/// room when the engine is slower than the brokers. A wait longer than the
/// context's `patience` (a stalled sink, say) pauses the assignment and
/// polling goes on — the consumer keeps its place in the group
/// (`max.poll.interval.ms` counts from the last poll) and rebalances are
/// served — until what it holds went through; then fetching resumes at the next offset. What it
/// holds of partitions revoked meanwhile is dropped: the async side
/// committed what it had, and the next owner reads on from there.
fn poll_loop(
    consumer: &BaseConsumer<Ctx>,
    tx: &mpsc::Sender<Polled>,
    stop: &AtomicBool,
    name: &str,
) {
    let ctx = consumer.context();
    let mut held: std::collections::VecDeque<Polled> = std::collections::VecDeque::new();
    let mut paused = false;
    let set_paused = |pause: bool| {
        let done = consumer.assignment().and_then(|tpl| {
            if pause {
                consumer.pause(&tpl)
            } else {
                consumer.resume(&tpl)
            }
        });
        if let Err(e) = done {
            warn!(source = %name, error = %e, "cannot pause or resume fetching");
        }
    };
    while !stop.load(Ordering::Relaxed) {
        while let Some(msg) = held.pop_front() {
            let msg = match tx.try_send(msg) {
                Ok(()) => continue,
                Err(mpsc::error::TrySendError::Closed(_)) => return,
                Err(mpsc::error::TrySendError::Full(msg)) => msg,
            };
            if paused {
                held.push_front(msg);
                break;
            }
            match ctx.send_within_patience(msg) {
                Ok(()) => {}
                Err(None) => return,
                Err(Some(msg)) => {
                    held.push_front(msg);
                    info!(source = %name, waited = ?ctx.patience, "the pipeline is stalled: fetching paused, the group membership kept");
                    paused = true;
                    ctx.paused.set(1);
                    break;
                }
            }
        }
        if paused {
            // Again after an assignment, whose partitions start unpaused.
            set_paused(!held.is_empty());
            if held.is_empty() {
                info!(source = %name, "the pipeline took what was held: fetching resumed");
                paused = false;
                ctx.paused.set(0);
            }
        }
        let wait = if held.is_empty() { 100 } else { 10 };
        let polled = consumer.poll(Duration::from_millis(wait));
        // A rebalance (inside the poll) comes before the poll's message.
        held.extend(ctx.take_deferred());
        match polled {
            Some(Ok(m)) => {
                ctx.healthy.set(1);
                held.push_back(Polled::Message {
                    topic: Arc::from(m.topic()),
                    partition: m.partition(),
                    offset: m.offset(),
                    payload: m.payload().map(<[u8]>::to_vec),
                });
            }
            Some(Err(e)) => debug!(source = %name, error = %e, "kafka poll"),
            None => {}
        }
        for (topic, partition) in ctx.take_revoked() {
            held.retain(|m| {
                !matches!(m, Polled::Message { topic: t, partition: p, .. } if **t == *topic && *p == partition)
            });
        }
    }
}

/// The partition id written to `_partition` and archive file names: the
/// Kafka partition for a source of one topic; with several topics, the topic's
/// 32-bit FNV-1a hash in the high half, so ids of different topics differ.
pub fn partition_id(single_topic: bool, topic: &str, partition: i32) -> i64 {
    if single_topic {
        return partition as i64;
    }
    let mut h: u32 = 0x811c_9dc5;
    for b in topic.bytes() {
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    ((h as i64) << 32) | (partition as u32 as i64)
}

/// What the async side holds per partition.
#[derive(Default)]
struct PartitionState {
    batch: LineBatch,
    /// Offset after the last message handed to the engine (or held in `batch`).
    next: Option<i64>,
    /// Offset after the last committed message.
    committed: Option<i64>,
}

type Key = (Arc<str>, i32);

impl KafkaSource {
    fn consumer(&self, tx: mpsc::Sender<Polled>) -> Result<BaseConsumer<Ctx>> {
        let mut c = self.cfg.client.clone();
        c.set("group.id", &self.cfg.group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            .set(
                "auto.offset.reset",
                match self.cfg.start {
                    Start::Earliest => "earliest",
                    Start::Latest => "latest",
                },
            )
            .set("statistics.interval.ms", "5000");
        if c.get("partition.assignment.strategy").is_none() {
            c.set("partition.assignment.strategy", "cooperative-sticky");
        }
        debug!(source = %self.cfg.name, config = %describe(&c), "kafka consumer");
        let ctx = Ctx {
            tx,
            source: self.cfg.name.clone(),
            start_at_ms: self.cfg.start_at_ms,
            stored: self.cfg.stored.clone(),
            runtime: tokio::runtime::Handle::current(),
            single_topic: self.cfg.topics.len() == 1 && !self.cfg.topics[0].starts_with('^'),
            lag: self.cfg.metrics.source_lag.clone(),
            healthy: self
                .cfg
                .metrics
                .source_healthy
                .with_label_values(&[&self.cfg.name]),
            revoked: std::sync::Mutex::new(Vec::new()),
            patience: patience(&c),
            deferred: std::sync::Mutex::new(Vec::new()),
            paused: self
                .cfg
                .metrics
                .source_paused
                .with_label_values(&[&self.cfg.name]),
        };
        let consumer: BaseConsumer<Ctx> = c.create_with_context(ctx).map_err(|e| {
            EngineError::connector(&self.cfg.name, format!("cannot create the consumer: {e}"))
        })?;
        let topics: Vec<&str> = self.cfg.topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topics).map_err(|e| {
            EngineError::connector(
                &self.cfg.name,
                format!("cannot subscribe to {topics:?}: {e}"),
            )
        })?;
        Ok(consumer)
    }
}

/// Sends every non-empty batch to the engine.
async fn send_all(state: &mut HashMap<Key, PartitionState>, out: &LineSender) -> bool {
    for st in state.values_mut() {
        if !st.batch.is_empty() {
            let mut full = std::mem::take(&mut st.batch);
            full.received_at_us = now_us();
            if out.send(full).await.is_err() {
                return false;
            }
        }
    }
    true
}

/// The offsets to commit: partitions with something new since their last
/// commit, optionally only those in `only`.
fn pending_commits(
    state: &HashMap<Key, PartitionState>,
    only: Option<&[(String, i32)]>,
) -> Vec<(Key, i64)> {
    state
        .iter()
        .filter(|((t, p), _)| only.is_none_or(|o| o.iter().any(|(ot, op)| **ot == **t && op == p)))
        .filter_map(|(k, st)| match st.next {
            Some(n) if st.committed != Some(n) => Some((k.clone(), n)),
            _ => None,
        })
        .collect()
}

#[async_trait::async_trait]
impl Source for KafkaSource {
    fn resume_from(&mut self, positions: Arc<dyn StoredPositions>) {
        self.cfg.stored = Some(positions);
    }

    async fn run(self: Box<Self>, out: LineSender, shutdown: CancellationToken) -> Result<()> {
        let name = self.cfg.name.clone();
        let single_topic = self.cfg.topics.len() == 1 && !self.cfg.topics[0].starts_with('^');
        let (tx, mut rx) = mpsc::channel::<Polled>(4096);
        if !self.cfg.create_like.is_empty() {
            for topic in &self.cfg.topics {
                crate::kafka::topics::ensure(&name, &self.cfg.client, topic, &self.cfg.create_like)
                    .await?;
            }
        }
        let consumer = Arc::new(self.consumer(tx.clone())?);
        let stop = Arc::new(AtomicBool::new(false));
        let poller = {
            let consumer = consumer.clone();
            let stop = stop.clone();
            let name = name.clone();
            std::thread::Builder::new()
                .name(format!("kafka-{name}"))
                .spawn(move || poll_loop(&consumer, &tx, &stop, &name))
                .map_err(|e| EngineError::io("starting the kafka poll thread", e))?
        };

        let commits = self.cfg.metrics.source_commits.with_label_values(&[&name]);
        let commit = |offsets: Vec<(Key, i64)>, mode: CommitMode| {
            let consumer = consumer.clone();
            let name = name.clone();
            async move {
                if offsets.is_empty() {
                    return Ok(());
                }
                debug!(source = %name, offsets = ?offsets.iter().map(|((_, p), n)| (*p, *n)).collect::<Vec<_>>(), "committing offsets");
                let mut tpl = TopicPartitionList::new();
                for ((t, p), n) in &offsets {
                    tpl.add_partition_offset(t, *p, Offset::Offset(*n))
                        .map_err(|e| EngineError::connector(&name, e.to_string()))?;
                }
                tokio::task::spawn_blocking(move || consumer.commit(&tpl, mode))
                    .await
                    .map_err(|e| EngineError::Task(format!("kafka commit: {e}")))?
                    .map_err(|e| EngineError::connector(&name, format!("commit failed: {e}")))
            }
        };

        let mut state: HashMap<Key, PartitionState> = HashMap::new();
        let mut linger = tokio::time::interval(Duration::from_millis(100));
        let mut commit_tick = tokio::time::interval(self.cfg.commit_every);
        commit_tick.tick().await;
        let mut result = Ok(());
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                polled = rx.recv() => match polled {
                    Some(Polled::Message { topic, partition, offset, payload }) => {
                        let st = match state.entry((topic.clone(), partition)) {
                            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                            std::collections::hash_map::Entry::Vacant(e) => {
                                debug!(source = %name, partition, offset, "first message of a partition");
                                e.insert(Default::default())
                            }
                        };
                        let contiguous = st.batch.first_offset + st.batch.len() as i64 == offset;
                        if !st.batch.is_empty() && !contiguous {
                            // A gap (compaction, transaction markers): a batch
                            // holds contiguous offsets only.
                            let mut full = std::mem::take(&mut st.batch);
                            full.received_at_us = now_us();
                            if out.send(full).await.is_err() { break; }
                        }
                        if st.batch.is_empty() {
                            st.batch.first_offset = offset;
                            st.batch.partition = partition_id(single_topic, &topic, partition);
                            st.batch.origin = Some(topic);
                        }
                        st.batch.push(payload.as_deref().unwrap_or_default());
                        st.next = Some(offset + 1);
                        if st.batch.len() >= MAX_LINES || st.batch.data.len() >= MAX_BYTES {
                            let mut full = std::mem::take(&mut st.batch);
                            full.received_at_us = now_us();
                            if out.send(full).await.is_err() { break; }
                        }
                    }
                    Some(Polled::Assign(ids)) => {
                        if out.partitions(ids).await.is_err() { break; }
                    }
                    Some(Polled::Revoke(parts, done)) => {
                        let res = async {
                            if !send_all(&mut state, &out).await {
                                return Err(EngineError::Stopped);
                            }
                            out.checkpoint().await?;
                            commit(pending_commits(&state, Some(&parts)), CommitMode::Sync).await
                        }.await;
                        state.retain(|(t, p), _| !parts.iter().any(|(rt, rp)| **rt == **t && rp == p));
                        // Windows kept per partition drop what they hold of
                        // these (saved by the checkpoint just taken) before
                        // another member may read them.
                        let ids = parts.iter().map(|(t, p)| partition_id(single_topic, t, *p)).collect();
                        if out.revoked(ids).await.is_err() { let _ = done.send(()); break; }
                        let _ = done.send(());
                        if let Err(e) = res {
                            warn!(source = %name, error = %e, "commit on revoke failed; the next owner re-reads those messages");
                        } else {
                            commits.inc();
                        }
                    }
                    Some(Polled::Fatal(msg)) => {
                        result = Err(EngineError::connector(&name, msg));
                        break;
                    }
                    None => break,
                },
                _ = linger.tick() => {
                    if !send_all(&mut state, &out).await { break; }
                }
                _ = commit_tick.tick() => {
                    if !send_all(&mut state, &out).await { break; }
                    let offsets = pending_commits(&state, None);
                    if offsets.is_empty() { continue; }
                    match out.checkpoint().await {
                        Ok(()) => {
                            if let Err(e) = commit(offsets.clone(), CommitMode::Async).await {
                                result = Err(e);
                                break;
                            }
                            for ((t, p), n) in offsets {
                                if let Some(st) = state.get_mut(&(t, p)) { st.committed = Some(n); }
                            }
                            commits.inc();
                        }
                        Err(e) => { result = Err(e); break; }
                    }
                }
            }
        }
        // Stop: hand over what is held, checkpoint, commit synchronously.
        if result.is_ok() && send_all(&mut state, &out).await {
            let offsets = pending_commits(&state, None);
            if !offsets.is_empty() && out.checkpoint().await.is_ok() {
                match commit(offsets, CommitMode::Sync).await {
                    Ok(()) => commits.inc(),
                    Err(e) => warn!(source = %name, error = %e, "final commit failed"),
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
        // Closing the channel lets a rebalance callback during close return.
        drop(rx);
        let _ = tokio::task::spawn_blocking(move || {
            let _ = poller.join();
            drop(consumer);
        })
        .await;
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_ids_of_different_topics_differ() {
        assert_eq!(partition_id(true, "logs", 3), 3);
        let a = partition_id(false, "logs.a", 0);
        let b = partition_id(false, "logs.b", 0);
        assert_ne!(a, b);
        assert_eq!(a & 0xffff_ffff, 0);
        assert_eq!(partition_id(false, "logs.a", 7) & 0xffff_ffff, 7);
    }
}

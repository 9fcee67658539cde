//! Prometheus metrics of the engine: events in and out per operator, errors, late
//! events, dead letters, open windows, alerts and batch latency.

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
};

/// The engine's metrics, registered once per registry.
#[derive(Clone)]
pub struct Metrics {
    pub events_in: IntCounterVec,
    pub events_out: IntCounterVec,
    pub source_events: IntCounterVec,
    pub source_bytes: IntCounterVec,
    pub errors: IntCounterVec,
    pub dead_letters: IntCounterVec,
    pub late_dropped: IntCounterVec,
    /// Pipelines stopped by an error (an output that failed, ...).
    pub pipeline_errors: IntCounterVec,
    /// Events a window left out because it held its most keys.
    pub window_key_overflow: IntCounterVec,
    /// Rows a `repartition` receiver dropped as already seen (a sender's
    /// replay after a crash).
    pub repartition_duplicates: IntCounterVec,
    pub windows_open: IntGaugeVec,
    /// A window's watermark (event time, Unix seconds).
    pub watermark: IntGaugeVec,
    /// Source partitions holding a window's watermark (`active`) or not (`idle`).
    pub window_partitions: IntGaugeVec,
    /// The largest event time a window has seen per source partition
    /// (Unix seconds).
    pub window_partition_time: IntGaugeVec,
    /// Bytes of window state in a pipeline's last checkpoint.
    pub state_bytes: IntGaugeVec,
    /// When a pipeline last saved its window state (Unix seconds).
    pub state_saved: IntGaugeVec,
    /// Partition snapshots a pipeline did not save because another process
    /// had claimed the partition (this one paused past its session timeout).
    pub state_fenced: IntCounterVec,
    /// Window matches of alert rules (before lifecycle and dedup).
    pub alerts: IntCounterVec,
    /// Alerts firing now, by rule and severity.
    pub alerts_firing: IntGaugeVec,
    /// Lifecycle transitions by rule and new state.
    pub alert_transitions: IntCounterVec,
    /// Notifications handed to channels and not yet delivered or given up
    /// on (the alert manager's outbox).
    pub notifications_undelivered: prometheus::IntGauge,
    /// Notifications by channel and result (sent, failed, rate_limited,
    /// silenced, dropped, logged).
    pub notifications: IntCounterVec,
    /// Seconds from window evaluation to a channel accepting the notification.
    pub notification_latency: Histogram,
    pub batch_latency: HistogramVec,
    pub archive_files: IntCounterVec,
    pub archive_bytes: IntCounterVec,
    /// Archive files deleted or moved by retention.
    pub retention_files: IntCounterVec,
    /// Messages not yet read, per source partition (Kafka consumer lag).
    pub source_lag: IntGaugeVec,
    /// Read positions committed back to a source after a checkpoint.
    pub source_commits: IntCounterVec,
    /// Delivery attempts an output had to repeat, and batches it gave up on
    /// (sent to the dead letters).
    pub sink_retries: IntCounterVec,
    pub sink_failures: IntCounterVec,
    /// 1 while a sink's last write succeeded, 0 while it fails (an archive
    /// retrying an upload, an output retrying deliveries): `/readyz`.
    pub sink_healthy: IntGaugeVec,
    /// 1 while a source reads (or ended cleanly), 0 when it failed or cannot
    /// reach its system (Kafka brokers all down): `/readyz`.
    pub source_healthy: IntGaugeVec,
    /// 1 while a source holds back fetching because its pipeline is
    /// stalled (Kafka: the assignment paused, the group membership kept).
    pub source_paused: IntGaugeVec,
}

fn counter(
    reg: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntCounterVec> {
    let c = IntCounterVec::new(Opts::new(name, help), labels)?;
    register(reg, &c)?;
    Ok(c)
}

/// Registers a collector; one already registered under the same name is fine (two
/// engines sharing a registry share their metrics).
/// `weir_build_info{version}` (always 1) and, on Linux, the standard
/// `process_*` metrics (CPU seconds, resident memory, open descriptors, start
/// time) of this process.
pub fn register_process(reg: &Registry) -> prometheus::Result<()> {
    let info = prometheus::IntGaugeVec::new(
        Opts::new("weir_build_info", "Weir's version; always 1"),
        &["version"],
    )?;
    info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
    register(reg, &info)?;
    #[cfg(target_os = "linux")]
    match reg.register(Box::new(
        prometheus::process_collector::ProcessCollector::for_self(),
    )) {
        Ok(()) | Err(prometheus::Error::AlreadyReg) => {}
        Err(e) => return Err(e),
    }
    Ok(())
}

fn register<C: prometheus::core::Collector + Clone + 'static>(
    reg: &Registry,
    c: &C,
) -> prometheus::Result<()> {
    match reg.register(Box::new(c.clone())) {
        Ok(()) | Err(prometheus::Error::AlreadyReg) => Ok(()),
        Err(e) => Err(e),
    }
}

impl Metrics {
    pub fn new(reg: &Registry) -> prometheus::Result<Metrics> {
        let windows_open = IntGaugeVec::new(
            Opts::new("weir_windows_open", "Windows currently open, per pipeline"),
            &["pipeline"],
        )?;
        register(reg, &windows_open)?;
        let watermark = IntGaugeVec::new(
            Opts::new(
                "weir_window_watermark_seconds",
                "Event time up to which a pipeline's window has closed its windows",
            ),
            &["pipeline"],
        )?;
        register(reg, &watermark)?;
        let window_partitions = IntGaugeVec::new(
            Opts::new(
                "weir_window_partitions",
                "Source partitions holding a window's watermark back (active) or not, after 10 s without events (idle)",
            ),
            &["pipeline", "state"],
        )?;
        register(reg, &window_partitions)?;
        let window_partition_time = IntGaugeVec::new(
            Opts::new(
                "weir_window_partition_event_time_seconds",
                "The largest event time a pipeline's window has read from each source partition it reads",
            ),
            &["pipeline", "partition"],
        )?;
        register(reg, &window_partition_time)?;
        let state_bytes = IntGaugeVec::new(
            Opts::new(
                "weir_window_state_bytes",
                "Bytes of window state in a pipeline's last checkpoint",
            ),
            &["pipeline"],
        )?;
        register(reg, &state_bytes)?;
        let state_saved = IntGaugeVec::new(
            Opts::new(
                "weir_window_state_saved_timestamp_seconds",
                "When a pipeline last saved its window state at a checkpoint",
            ),
            &["pipeline"],
        )?;
        register(reg, &state_saved)?;
        let batch_latency = HistogramVec::new(
            HistogramOpts::new(
                "weir_batch_latency_seconds",
                "Time to run one batch through a pipeline's operators",
            )
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
            ]),
            &["pipeline"],
        )?;
        register(reg, &batch_latency)?;
        let source_lag = IntGaugeVec::new(
            Opts::new(
                "weir_source_lag_messages",
                "Messages behind the end of a source partition (Kafka consumer lag)",
            ),
            &["source", "origin", "partition"],
        )?;
        register(reg, &source_lag)?;
        Ok(Metrics {
            source_lag,
            source_commits: counter(
                reg,
                "weir_source_commits_total",
                "Read positions committed to a source after a checkpoint",
                &["source"],
            )?,
            retention_files: counter(
                reg,
                "weir_archive_retention_files_total",
                "Archive files deleted or moved to cold storage by retention",
                &["stream", "action"],
            )?,
            sink_retries: counter(
                reg,
                "weir_output_retries_total",
                "Deliveries an output repeated after a transient error",
                &["output"],
            )?,
            sink_failures: counter(
                reg,
                "weir_output_failures_total",
                "Events an output gave up on after its retries (sent to dead letters)",
                &["output"],
            )?,
            sink_healthy: {
                let g = IntGaugeVec::new(
                    Opts::new(
                        "weir_sink_healthy",
                        "1 while a sink writes, 0 while its writes fail and are retried",
                    ),
                    &["sink"],
                )?;
                register(reg, &g)?;
                g
            },
            source_healthy: {
                let g = IntGaugeVec::new(
                    Opts::new(
                        "weir_source_healthy",
                        "1 while a source reads, 0 when it failed or cannot reach its system",
                    ),
                    &["source"],
                )?;
                register(reg, &g)?;
                g
            },
            source_paused: {
                let g = IntGaugeVec::new(
                    Opts::new(
                        "weir_source_paused",
                        "1 while a source holds back fetching because its pipeline is stalled",
                    ),
                    &["source"],
                )?;
                register(reg, &g)?;
                g
            },
            events_in: counter(
                reg,
                "weir_operator_events_in_total",
                "Events into an operator",
                &["pipeline", "operator"],
            )?,
            events_out: counter(
                reg,
                "weir_operator_events_out_total",
                "Events out of an operator",
                &["pipeline", "operator"],
            )?,
            source_events: counter(
                reg,
                "weir_source_events_total",
                "Events decoded from a source",
                &["source"],
            )?,
            source_bytes: counter(
                reg,
                "weir_source_bytes_total",
                "Bytes read from a source",
                &["source"],
            )?,
            errors: counter(
                reg,
                "weir_errors_total",
                "Errors, by component",
                &["component"],
            )?,
            dead_letters: counter(
                reg,
                "weir_dead_letters_total",
                "Events sent to the dead-letter store",
                &["source"],
            )?,
            pipeline_errors: counter(
                reg,
                "weir_pipeline_errors_total",
                "Pipelines stopped by an error",
                &["pipeline"],
            )?,
            late_dropped: counter(
                reg,
                "weir_late_events_dropped_total",
                "Events that arrived after their window closed",
                &["pipeline"],
            )?,
            window_key_overflow: counter(
                reg,
                "weir_window_key_overflow_total",
                "Events left out of a window because it held its most keys open",
                &["pipeline"],
            )?,
            repartition_duplicates: counter(
                reg,
                "weir_repartition_duplicates_total",
                "Rows read again from a repartition topic (a sender replayed them) and dropped",
                &["pipeline"],
            )?,
            windows_open,
            state_bytes,
            state_saved,
            state_fenced: counter(
                reg,
                "weir_window_state_fenced_total",
                "Partitions whose window state was not saved because another process owns them now",
                &["pipeline"],
            )?,
            watermark,
            window_partitions,
            window_partition_time,
            alerts: counter(
                reg,
                "weir_alert_matches_total",
                "Closed windows for which an alert rule's condition held",
                &["pipeline", "rule", "severity"],
            )?,
            alerts_firing: {
                let g = IntGaugeVec::new(
                    Opts::new("weir_alerts_firing", "Alerts firing now"),
                    &["rule", "severity"],
                )?;
                reg.register(Box::new(g.clone()))?;
                g
            },
            alert_transitions: counter(
                reg,
                "weir_alert_transitions_total",
                "Alert lifecycle transitions (pending, firing, resolved, dropped)",
                &["rule", "state"],
            )?,
            notifications_undelivered: {
                let g = prometheus::IntGauge::new(
                    "weir_notifications_undelivered",
                    "Notifications handed to channels, not yet delivered or given up on (kept across restarts)",
                )?;
                reg.register(Box::new(g.clone()))?;
                g
            },
            notifications: counter(
                reg,
                "weir_notifications_total",
                "Alert notifications by channel and result",
                &["channel", "result"],
            )?,
            notification_latency: {
                let h = Histogram::with_opts(
                    HistogramOpts::new(
                        "weir_notification_latency_seconds",
                        "Seconds from window evaluation to the channel accepting the notification",
                    )
                    .buckets(vec![
                        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                    ]),
                )?;
                reg.register(Box::new(h.clone()))?;
                h
            },
            batch_latency,
            archive_files: counter(
                reg,
                "weir_archive_files_total",
                "Parquet files written to the archive",
                &["stream"],
            )?,
            archive_bytes: counter(
                reg,
                "weir_archive_bytes_total",
                "Bytes written to the archive",
                &["stream"],
            )?,
        })
    }

    pub fn latency(&self, pipeline: &str) -> Histogram {
        self.batch_latency.with_label_values(&[pipeline])
    }
}

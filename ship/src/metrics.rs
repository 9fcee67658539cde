//! Prometheus metrics of the agent, per source, served on `/metrics`.

use prometheus::{IntCounterVec, IntGauge, Opts, Registry};

#[derive(Clone)]
pub struct ShipMetrics {
    pub registry: Registry,
    /// Lines (or datagrams, requests' lines) read, per source.
    pub lines: IntCounterVec,
    /// Events Kafka confirmed, per source.
    pub shipped: IntCounterVec,
    /// Bytes of confirmed events, per source.
    pub bytes: IntCounterVec,
    /// Events below `min_severity`, per source.
    pub filtered: IntCounterVec,
    /// Errors per source and kind (read, delivery, spool, parse).
    pub errors: IntCounterVec,
    /// Events written to / drained from / dropped from the spool.
    pub spooled: IntCounterVec,
    pub spool_bytes: IntGauge,
}

impl ShipMetrics {
    pub fn new() -> prometheus::Result<ShipMetrics> {
        let registry = Registry::new();
        let c = |name: &str, help: &str, labels: &[&str]| -> prometheus::Result<IntCounterVec> {
            let v = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(v.clone()))?;
            Ok(v)
        };
        let m = ShipMetrics {
            lines: c("weir_ship_lines_read_total", "Lines read", &["source"])?,
            shipped: c(
                "weir_ship_events_shipped_total",
                "Events confirmed by Kafka",
                &["source"],
            )?,
            bytes: c(
                "weir_ship_bytes_shipped_total",
                "Bytes of events confirmed by Kafka",
                &["source"],
            )?,
            filtered: c(
                "weir_ship_events_filtered_total",
                "Events below min_severity",
                &["source"],
            )?,
            errors: c(
                "weir_ship_errors_total",
                "Errors by source and kind",
                &["source", "kind"],
            )?,
            spooled: c(
                "weir_ship_spool_events_total",
                "Events written to, drained from or dropped from the spool",
                &["action"],
            )?,
            spool_bytes: IntGauge::new("weir_ship_spool_bytes", "Bytes waiting in the spool")?,
            registry: registry.clone(),
        };
        registry.register(Box::new(m.spool_bytes.clone()))?;
        register_process(&registry)?;
        Ok(m)
    }

    pub fn text(&self) -> String {
        use prometheus::Encoder;
        let mut buf = Vec::new();
        let _ = prometheus::TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    }
}

/// `weir_build_info{version}` (always 1) and, on Linux, the standard
/// `process_*` metrics of the agent's process (the engine registers the same
/// in `weir_engine::metrics`; the agent does not link the engine).
fn register_process(reg: &Registry) -> prometheus::Result<()> {
    let info = prometheus::IntGaugeVec::new(
        Opts::new("weir_build_info", "Weir's version; always 1"),
        &["version"],
    )?;
    info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
    reg.register(Box::new(info))?;
    #[cfg(target_os = "linux")]
    reg.register(Box::new(
        prometheus::process_collector::ProcessCollector::for_self(),
    ))?;
    Ok(())
}

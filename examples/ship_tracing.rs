//! A Rust service emitting Weir events through the `tracing` layer of
//! `weir-ship`: JSON lines on stdout, or straight to Kafka when
//! `WEIR_BROKERS` is set (`WEIR_BROKERS=127.0.0.1:9092 cargo run --example
//! ship_tracing`).
// Benchmark and example code, not a runtime path: a panic stops the run with its reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use tracing_subscriber::prelude::*;
use weir_ship::layer::ShipLayer;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let layer = match std::env::var("WEIR_BROKERS") {
        Ok(brokers) => {
            let kafka: weir_connectors::kafka::KafkaConfig =
                toml::from_str(&format!("brokers = \"{brokers}\""))?;
            ShipLayer::kafka("checkout", "development", &kafka, "logs")?
        }
        Err(_) => ShipLayer::stdout("checkout", "development"),
    };
    tracing_subscriber::registry().with(layer.clone()).init();
    tracing::info!(order = 42, amount = 19.99, "order paid");
    tracing::warn!(order = 43, "card declined, retrying");
    tracing::error!(order = 43, error = "gateway timeout", "payment failed");
    layer.flush(std::time::Duration::from_secs(5));
    Ok(())
}

//! Weir's integration tests: one test binary (as ripgrep lays out its tests),
//! so DataFusion, rdkafka and the engine are linked once. Each module is one
//! area; `support` holds the shared helpers (servers, brokers, polling).
//!
//! Tests that need a peer (tansu, moto, Alertmanager, aiosmtpd, stunnel)
//! start it on loopback through `support` and fail, never skip, without it.

// Test code: a panic is a failed test with its reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod alerts;
mod archive_query;
mod backtest;
mod check_errors;
mod console;
mod edges;
mod event_time;
mod exactly_once;
mod geoip;
mod http_api;
mod kafka;
mod kafka_security;
mod log_formats;
mod pipeline_e2e;
mod repartition;
mod rule_tests;
mod security;
mod ship;
mod window_state;

//! Sources: where lines come from.

pub mod chunks;
pub mod file;
pub mod generator;
pub mod http;
pub mod lines;

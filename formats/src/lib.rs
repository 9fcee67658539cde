//! Line-oriented text as Weir reads it, in one small crate that the engine,
//! the connectors and the `weir ship` agent share (as Vector's `lib/codecs`):
//! no Arrow, Parquet, DataFusion or object store here.
//!
//! - [`tail`]: a file followed by path through rotation and truncation.
//! - [`logfmt`], [`captures`]: turning a line into named fields;
//!   [`timestamp`]: event times in every common form, with zones;
//!   [`severity`]: level spellings onto one scale.
//! - [`grok`]: `%{IP:client}`-style named patterns inside a regex.
//! - [`fields`]: the core fields and the names other shippers give them.
//! - [`json_object`]: a JSON object's members without building its tree;
//!   [`json_string`]: text written as a quoted, escaped JSON string.
//! - [`kafka`] (feature `kafka`): the `[kafka]` client settings.

pub mod captures;
pub mod fields;
pub mod grok;
pub mod json_object;
pub mod json_string;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod logfmt;
pub mod severity;
pub mod tail;
pub mod timestamp;

pub use captures::captures_to_map;
pub use logfmt::parse_logfmt;

//! The core fields of an event and the other names log libraries and
//! shippers give them (Vector, Fluent Bit, Filebeat, Logstash, bunyan, pino,
//! zap, logrus, slog...). The first name of each list is Weir's; the others
//! are read, in order, when an event lacks it. Shared by the engine's
//! decoder and the `weir ship` agent.

pub const TIMESTAMP_KEYS: &[&str] = &["timestamp", "@timestamp", "time", "ts", "datetime", "date"];
pub const SEVERITY_KEYS: &[&str] = &[
    "severity",
    "level",
    "lvl",
    "loglevel",
    "log_level",
    "severity_text",
    "priority",
];
pub const MESSAGE_KEYS: &[&str] = &["message", "msg", "log", "body"];

/// Every core field with its other names.
pub const ALIASED: &[&[&str]] = &[TIMESTAMP_KEYS, SEVERITY_KEYS, MESSAGE_KEYS];

//! The connector kinds a `.rules` file may name, with the arguments each takes.
//! The checker validates against this table; connector crates implement the kinds.

/// The type an argument must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgType {
    Str,
    Int,
    Bool,
    Duration,
    Size,
    /// A string or a list of strings.
    StrOrList,
    /// A bare word from a fixed set.
    Word(&'static [&'static str]),
    /// Anything.
    Any,
    /// A file on the server (a string). Rules submitted over the API may
    /// only name paths under the allowed folders.
    Path,
    /// An address to listen on, `host:port` (a string).
    Address,
    /// Kafka bootstrap servers, `host:port[,host:port...]` (a string).
    Brokers,
    /// Raw client settings as "key=value" strings (a string or a list).
    ClientOptions,
    /// A regular expression (a string that must compile).
    Regex,
}

impl ArgType {
    pub fn describe(self) -> String {
        match self {
            ArgType::Str => "a string".into(),
            ArgType::Int => "an integer".into(),
            ArgType::Bool => "true or false".into(),
            ArgType::Duration => "a duration such as 30s".into(),
            ArgType::Size => "a size such as 64MB".into(),
            ArgType::StrOrList => "a string or a list of strings".into(),
            ArgType::Word(words) => format!("one of {}", words.join(", ")),
            ArgType::Any => "any value".into(),
            ArgType::Path => "a file path".into(),
            ArgType::Address => "an address such as \"127.0.0.1:9000\"".into(),
            ArgType::Brokers => "brokers such as \"127.0.0.1:9092\"".into(),
            ArgType::Regex => "a regular expression such as \"^\\\\d{4}-\"".into(),
            ArgType::ClientOptions => "a \"key=value\" string or a list of them".into(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct ArgSpec {
    pub name: &'static str,
    pub ty: ArgType,
    pub required: bool,
    pub doc: &'static str,
}

#[derive(Debug, Clone, Copy)]
pub struct ConnectorSpec {
    pub kind: &'static str,
    /// Whether a restarted source reads the same events at the same
    /// partition and offset again (Kafka's committed offsets). The archive
    /// lets a replayed range replace the file it wrote before; sources
    /// without replayable positions number events from 0 on every run, so
    /// each run archives under an epoch of its own and never replaces
    /// another run's files.
    pub replayable: bool,
    pub args: &'static [ArgSpec],
    pub doc: &'static str,
}

const fn arg(name: &'static str, ty: ArgType, required: bool, doc: &'static str) -> ArgSpec {
    ArgSpec {
        name,
        ty,
        required,
        doc,
    }
}

const START: &[&str] = &["earliest", "latest", "beginning", "end"];

/// `first_line`, of the sources that read lines (file, stdin).
const FIRST_LINE: ArgSpec = arg(
    "first_line",
    ArgType::Regex,
    false,
    "a regex matching the first line of each event: the lines that do not match (a stack trace's) join the event before them",
);

/// Source kinds.
pub const SOURCES: &[ConnectorSpec] = &[
    ConnectorSpec {
        kind: "generator",
        replayable: false,
        doc: "realistic multi-service logs for demos, tests and benchmarks",
        args: &[
            arg(
                "rate",
                ArgType::Int,
                false,
                "events per second; 0 = as fast as possible (default 1000)",
            ),
            arg(
                "count",
                ArgType::Int,
                false,
                "stop after this many events; 0 = never (default 0)",
            ),
            arg("seed", ArgType::Int, false, "random seed (default 42)"),
            arg(
                "start",
                ArgType::Str,
                false,
                "event time of the first event (RFC 3339); default now",
            ),
            arg(
                "step",
                ArgType::Duration,
                false,
                "event-time step between events; default: wall clock",
            ),
            arg(
                "burst_every",
                ArgType::Duration,
                false,
                "simulate an error burst in checkout this often (event time, default 5m)",
            ),
        ],
    },
    ConnectorSpec {
        kind: "file",
        replayable: false,
        doc: "lines of a file, read from the start; with follow: true keeps reading as it grows",
        args: &[
            arg("path", ArgType::Path, true, "the file to read"),
            arg(
                "follow",
                ArgType::Bool,
                false,
                "keep reading appended lines (default false)",
            ),
            FIRST_LINE,
        ],
    },
    ConnectorSpec {
        kind: "stdin",
        replayable: false,
        doc: "lines from standard input",
        args: &[FIRST_LINE],
    },
    ConnectorSpec {
        kind: "http",
        replayable: false,
        doc: "newline-delimited events POSTed to a listener",
        args: &[arg(
            "listen",
            ArgType::Address,
            true,
            "address to listen on, e.g. \"127.0.0.1:9000\"",
        )],
    },
    ConnectorSpec {
        kind: "kafka",
        replayable: true,
        doc: "a Kafka topic through a consumer group",
        args: &[
            arg(
                "brokers",
                ArgType::Brokers,
                false,
                "bootstrap servers (default from config)",
            ),
            arg(
                "topic",
                ArgType::StrOrList,
                true,
                "topic name, list of names, or a regex starting with ^",
            ),
            arg(
                "group",
                ArgType::Str,
                false,
                "consumer group id (default \"weir\")",
            ),
            arg(
                "start",
                ArgType::Word(START),
                false,
                "where a new group starts",
            ),
            arg(
                "start_at",
                ArgType::Str,
                false,
                "start partitions without a committed offset at this time (RFC 3339)",
            ),
            arg("client_id", ArgType::Str, false, "client id"),
            arg(
                "dead_letters",
                ArgType::Str,
                false,
                "topic for messages that cannot be decoded (default: the dead-letter file in the data folder)",
            ),
            arg(
                "commit_every",
                ArgType::Duration,
                false,
                "how often offsets are committed, after a checkpoint (default 5s)",
            ),
            arg(
                "keyed_by",
                ArgType::StrOrList,
                false,
                "the fields producers key messages by (each value in one partition): windows grouped by them keep their state per partition, and it moves with the partition",
            ),
            arg(
                "options",
                ArgType::ClientOptions,
                false,
                "raw librdkafka settings as \"key=value\" strings",
            ),
        ],
    },
];

/// Output kinds.
pub const OUTPUTS: &[ConnectorSpec] = &[
    ConnectorSpec {
        kind: "stdout",
        replayable: false,
        doc: "JSON lines on standard output",
        args: &[],
    },
    ConnectorSpec {
        kind: "file",
        replayable: false,
        doc: "JSON lines appended to a file",
        args: &[arg("path", ArgType::Path, true, "the file to append to")],
    },
    ConnectorSpec {
        kind: "kafka",
        replayable: false,
        doc: "JSON messages to a Kafka topic",
        args: &[
            arg(
                "brokers",
                ArgType::Brokers,
                false,
                "bootstrap servers (default from config)",
            ),
            arg("topic", ArgType::Str, true, "topic name"),
            arg(
                "key",
                ArgType::StrOrList,
                false,
                "field whose value is the message key, or a list of fields (the key is then a JSON array of their values)",
            ),
            arg(
                "compression",
                ArgType::Word(&["none", "gzip", "lz4", "zstd", "snappy"]),
                false,
                "compression codec",
            ),
            arg(
                "options",
                ArgType::ClientOptions,
                false,
                "raw librdkafka settings as \"key=value\" strings",
            ),
        ],
    },
];

/// Output names usable in `| to NAME` without a declaration.
pub const BUILTIN_OUTPUTS: &[&str] = &["stdout"];

pub fn source(kind: &str) -> Option<&'static ConnectorSpec> {
    SOURCES.iter().find(|s| s.kind == kind)
}

pub fn output(kind: &str) -> Option<&'static ConnectorSpec> {
    OUTPUTS.iter().find(|s| s.kind == kind)
}

//! Command-line arguments.

use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Weir: a stream-processing engine for logs.
///
/// Write `.rules` files that filter, enrich and window log events; Weir runs
/// them, raises alerts from window results and archives every event as Parquet.
#[derive(Debug, Parser)]
#[command(name = "weir", version, propagate_version = true)]
pub struct Cli {
    /// Log debug details (or set WEIR_LOG=debug).
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// Log lines as text for people or as JSON objects for log collectors.
    /// Text is coloured on a terminal unless NO_COLOR is set.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "WEIR_LOG_FORMAT"
    )]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

/// How log lines are written to standard error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// How `weir check` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CheckFormat {
    /// `file:line:col: error: ...` with the source line and a hint.
    Text,
    /// One JSON document: per file, whether it is valid and its diagnostics
    /// with line/column ranges (for editors and CI).
    Json,
}

/// What `weir archive` does.
#[derive(Subcommand, Debug)]
pub enum ArchiveAction {
    /// Apply the [[retention]] policies of the config: delete (or move to the
    /// cold location) partitions older than allowed. Prints what it does.
    Retain {
        /// Only print what would be deleted or moved.
        #[arg(long)]
        dry_run: bool,
    },
    /// Merge the small files of closed partitions: per time folder and
    /// source partition, consecutive small files into files of up to 128 MB
    /// (one Delta commit each). Prints what it merged.
    Compact {
        /// Partitions whose time ended less than this long ago are left alone.
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        grace: std::time::Duration,
    },
    /// Delete data files no longer in their stream's table (removed by
    /// retention or compaction, or uploaded by a flush that crashed before
    /// its commit) once they are older than the grace. Time travel to
    /// versions older than the grace may then fail.
    Vacuum {
        /// Files that left the table less than this long ago are kept.
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        grace: std::time::Duration,
    },
    /// Turn a folder archive written before Weir used Delta Lake into one
    /// Delta table per stream, without rewriting data: the live files are
    /// added as they are. Streams that are tables already are left alone.
    Migrate {
        /// Only print what would be added.
        #[arg(long)]
        dry_run: bool,
    },
}

/// What `weir pipeline` does.
#[derive(Subcommand, Debug)]
pub enum PipelineAction {
    /// Submit a .rules file: its pipelines start on the server. With
    /// --shadow-of NAME, its one pipeline (named NAME) runs as a shadow of the
    /// live NAME instead: on the same source, its alerts recorded but never
    /// notified (see `weir pipeline shadow`).
    Deploy {
        /// The .rules file.
        file: PathBuf,
        /// Run it as a shadow of this live pipeline.
        #[arg(long, value_name = "NAME")]
        shadow_of: Option<String>,
    },
    /// List the pipelines, running and recently ended.
    List,
    /// Stop a pipeline (its windows are emitted, its outputs flushed).
    Delete { name: String },
    /// Compare a shadow with its live pipeline: the alerts only one of them
    /// fired, and those both fired, with times.
    Shadow { name: String },
    /// Replace the live pipeline with its shadow (the live rules text with
    /// the shadow's pipeline in its place is deployed instead).
    Promote { name: String },
    /// Stop a shadow, keeping the live pipeline as it is.
    Discard { name: String },
}

/// What `weir silence` does.
#[derive(Subcommand, Debug)]
pub enum SilenceAction {
    /// Hold back notifications of alerts matching every matcher, for a while.
    /// Prints the new silence's id.
    Add {
        /// Label matchers: name=value, name!=value, name=~regex, name!~regex.
        /// `alertname` is the rule, `severity` and `pipeline` match those.
        #[arg(required = true)]
        matchers: Vec<String>,
        /// How long, e.g. 2h or 30m.
        #[arg(long, short, default_value = "1h")]
        duration: String,
        /// Why (shown in lists).
        #[arg(long, short, default_value = "")]
        comment: String,
        /// Who (default: $USER).
        #[arg(long)]
        author: Option<String>,
    },
    /// List silences (active, pending, and expired in the last day).
    List,
    /// End a silence now.
    Expire {
        /// The silence's id (from `add` or `list`).
        id: String,
    },
}

/// Which archive `weir query` and `weir backtest` read.
#[derive(Debug, clap::Args)]
pub struct ArchiveArgs {
    /// Archive URL: a folder, file://..., or s3://bucket/prefix.
    #[arg(long)]
    pub archive: Option<String>,
    /// Config file (for [storage] settings and the data folder).
    /// Default: ./weir.toml when it exists.
    #[arg(long, short, env = "WEIR_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data folder whose archive/ is read by default.
    #[arg(long, default_value = "weir-data", env = "WEIR_DATA_DIR")]
    pub data_dir: PathBuf,
}

/// Where `weir user` and `weir token` find the identity store.
#[derive(Debug, clap::Args)]
pub struct StoreArgs {
    /// Config file (for the data folder). Default: ./weir.toml when it exists.
    #[arg(long, short, global = true, env = "WEIR_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data folder holding auth.json.
    #[arg(
        long,
        default_value = "weir-data",
        env = "WEIR_DATA_DIR",
        global = true
    )]
    pub data_dir: PathBuf,
}

/// What `weir user` does.
#[derive(Subcommand, Debug)]
pub enum UserAction {
    /// Add a user. The password is read from standard input (asked for
    /// without echo on a terminal), at least 12 characters.
    Add {
        name: String,
        /// admin, editor, viewer or shipper.
        #[arg(long, value_enum, default_value = "viewer")]
        role: crate::auth::Role,
        /// Limit what the user sees, e.g. 'environment="production", service=~"checkout|payments"'.
        #[arg(long)]
        scope: Option<String>,
    },
    /// List the users (no passwords).
    List,
    /// Remove a user and the tokens it created.
    Remove { name: String },
    /// Set a user's password (read from standard input).
    Passwd { name: String },
}

/// What `weir token` does.
#[derive(Subcommand, Debug)]
pub enum TokenAction {
    /// Create an API token and print it (shown this once; only its digest
    /// is stored). Use it as `Authorization: Bearer TOKEN` or WEIR_TOKEN.
    Create {
        /// A name to list and revoke it by.
        #[arg(long)]
        name: String,
        /// admin, editor, viewer or shipper.
        #[arg(long, value_enum, default_value = "viewer")]
        role: crate::auth::Role,
        /// Limit what the token sees (as for users).
        #[arg(long)]
        scope: Option<String>,
        /// Expire after this long, e.g. 30d; default never.
        #[arg(long, value_parser = humantime::parse_duration)]
        expires_in: Option<std::time::Duration>,
    },
    /// List the tokens (no secrets).
    List,
    /// Revoke a token by id or name.
    Revoke { id: String },
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check .rules files for mistakes without running them.
    ///
    /// Prints every error as FILE:LINE:COL with the offending text and a hint.
    /// Exits 0 when every file is valid, 1 otherwise.
    Check {
        /// The .rules files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Report format.
        #[arg(long, value_enum, default_value = "text")]
        format: CheckFormat,
    },
    /// Run the pipelines of a .rules file in the foreground.
    ///
    /// Alerts are printed to standard output, a progress line to standard error.
    /// Stops when every source has ended (a file read to its end, a generator
    /// with a count) or on Ctrl-C, after emitting open windows (windows over
    /// Kafka are saved for the next start instead) and flushing sinks.
    Run {
        /// The .rules file.
        file: PathBuf,
        /// Config file (TOML) for connector settings such as [kafka]; see
        /// docs/operations.md. Default: ./weir.toml when it exists.
        #[arg(long, short, env = "WEIR_CONFIG")]
        config: Option<PathBuf>,
        /// Data folder: archives, dead letters.
        #[arg(long, default_value = "weir-data", env = "WEIR_DATA_DIR")]
        data_dir: PathBuf,
        /// Print alerts as JSON lines instead of text.
        #[arg(long)]
        json: bool,
        /// Never print the progress line.
        #[arg(long, short)]
        quiet: bool,
        /// Serve Prometheus metrics at http://ADDR/metrics while running
        /// (e.g. 127.0.0.1:9100); the same metrics as `weir serve`.
        #[arg(long, value_name = "ADDR", env = "WEIR_METRICS")]
        metrics: Option<std::net::SocketAddr>,
    },
    /// Run SQL over the archive.
    ///
    /// Every stream is a table (`SELECT service, count(*) FROM app GROUP BY 1`),
    /// with `date` and `hour` partition columns. Runs against a server with
    /// --server, otherwise directly against the archive (--archive, or the one
    /// in --config / --data-dir).
    Query {
        /// The SQL statement.
        sql: String,
        /// Output format.
        #[arg(long, short, value_enum, default_value = "table")]
        format: crate::query::format::Format,
        /// A running `weir serve` to ask, e.g. http://127.0.0.1:8080.
        #[arg(long, env = "WEIR_SERVER", conflicts_with = "archive")]
        server: Option<String>,
        /// The API token to send to --server.
        #[arg(long, env = "WEIR_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// CA certificate (PEM) to trust for an https:// --server (default:
        /// the Mozilla roots).
        #[arg(long, env = "WEIR_CA")]
        ca: Option<PathBuf>,
        /// Run directly against the archive as a user with this scope would
        /// (e.g. 'service="checkout"'): to check what a scope lets through.
        #[arg(long, conflicts_with = "server")]
        scope: Option<String>,
        #[command(flatten)]
        archive: ArchiveArgs,
        /// Only events at or after this time (RFC 3339).
        #[arg(long)]
        start: Option<String>,
        /// Only events before this time (RFC 3339).
        #[arg(long)]
        end: Option<String>,
        /// Time travel: read the archive's tables as of this table version
        /// (a number) or this time (RFC 3339: each table's last version
        /// committed by then).
        #[arg(long, value_name = "VERSION|TIME")]
        as_of: Option<String>,
        /// Rows returned at most.
        #[arg(long, default_value_t = 100_000)]
        max_rows: usize,
        /// Seconds before the query is cancelled.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
        /// Run the query this many times (directly against the archive) and
        /// print the fastest run's wall time to standard error: for benchmarks.
        #[arg(long, default_value_t = 1, hide = true)]
        repeat: u32,
    },
    /// Archive upkeep: retention, compaction, vacuum, migration.
    Archive {
        #[command(subcommand)]
        action: ArchiveAction,
        /// Config file: [[retention]] policies, [storage], the archive.
        /// Default: ./weir.toml when it exists.
        #[arg(long, short, global = true, env = "WEIR_CONFIG")]
        config: Option<PathBuf>,
        /// Data folder whose archive/ is used by default.
        #[arg(
            long,
            default_value = "weir-data",
            env = "WEIR_DATA_DIR",
            global = true
        )]
        data_dir: PathBuf,
        /// Archive URL: a folder, file://..., or s3://bucket/prefix.
        #[arg(long, global = true)]
        archive: Option<String>,
    },
    /// Run rule unit tests on a simulated clock.
    ///
    /// Each FILE.test.toml names a .rules file, input events with times, and
    /// the window rows, alerts and notifications expected at given times (see
    /// docs/alerts.md). Prints a diff for every unmet expectation; exits 1
    /// when any test fails.
    Test {
        /// The test files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Run a file's pipelines over archived events of a time range.
    ///
    /// Replays each source's stream from the archive as the live engine saw
    /// it (each partition in arrival order, partitions interleaved by event
    /// time), with the live engine's windows, lateness and alert lifecycle
    /// on a clock that follows event time. Notifies nothing, writes no output;
    /// prints the window rows and alert transitions as JSON lines.
    Backtest {
        /// The .rules file.
        file: PathBuf,
        /// Start of the range (RFC 3339), inclusive.
        #[arg(long)]
        from: String,
        /// End of the range (RFC 3339), exclusive.
        #[arg(long)]
        to: String,
        /// Read source NAME from archived stream STREAM (NAME=STREAM);
        /// by default each source reads the stream of its own name.
        #[arg(long)]
        source: Vec<String>,
        #[command(flatten)]
        archive: ArchiveArgs,
        /// Also write the JSON lines to this file.
        #[arg(long)]
        report: Option<PathBuf>,
    },
    /// Manage the users who log in to `weir serve`.
    ///
    /// Users live in DATA/auth.json, written atomically; a running server
    /// sees changes at once.
    User {
        #[command(subcommand)]
        action: UserAction,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Manage API tokens for `weir serve` (scripts, shippers, CI).
    Token {
        #[command(subcommand)]
        action: TokenAction,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Deploy, list, delete pipelines on a running server, and run new
    /// versions as shadows of live ones: compare, promote, discard.
    Pipeline {
        #[command(subcommand)]
        action: PipelineAction,
        /// An API token (editor or admin to change pipelines).
        #[arg(long, env = "WEIR_TOKEN", global = true, hide_env_values = true)]
        token: Option<String>,
        /// CA certificate (PEM) to trust for an https:// server.
        #[arg(long, env = "WEIR_CA", global = true)]
        ca: Option<PathBuf>,
        /// The `weir serve` to talk to.
        #[arg(
            long,
            env = "WEIR_SERVER",
            default_value = "http://127.0.0.1:8080",
            global = true
        )]
        server: String,
    },
    /// Create, list and expire alert silences on a running server.
    Silence {
        #[command(subcommand)]
        action: SilenceAction,
        /// An API token (editor or admin to change silences).
        #[arg(long, env = "WEIR_TOKEN", global = true, hide_env_values = true)]
        token: Option<String>,
        /// CA certificate (PEM) to trust for an https:// server.
        #[arg(long, env = "WEIR_CA", global = true)]
        ca: Option<PathBuf>,
        /// The `weir serve` to talk to.
        #[arg(
            long,
            env = "WEIR_SERVER",
            default_value = "http://127.0.0.1:8080",
            global = true
        )]
        server: String,
    },
    /// Ship logs to Kafka: the producer agent.
    ///
    /// Tails files (globs, rotation, multi-line), reads stdin, syslog
    /// (TCP/UDP) and JSON lines over HTTP, turns every line into a structured
    /// JSON event and ships it to Kafka, spooling to disk while the broker is
    /// away. Reloads its config when the file changes or on SIGHUP. See
    /// docs/ship.md.
    Ship {
        /// The agent's config (YAML).
        #[arg(long, short, default_value = "ship.yaml")]
        config: PathBuf,
        /// Only check the config and exit (0 valid, 1 not).
        #[arg(long)]
        check: bool,
    },
    /// Run the engine and its HTTP API.
    ///
    /// Serves on 127.0.0.1:8080 by default, with data in ./weir-data. With
    /// --demo, a generator of realistic logs and example rules start at once.
    Serve {
        /// Config file (TOML); see docs/operations.md. Default: ./weir.toml
        /// when it exists; the log says which file was read.
        #[arg(long, short, env = "WEIR_CONFIG")]
        config: Option<PathBuf>,
        /// Also run the demo: generated multi-service logs and example rules.
        #[arg(long)]
        demo: bool,
        /// Address of the HTTP API.
        #[arg(long, env = "WEIR_LISTEN")]
        listen: Option<SocketAddr>,
        /// Data folder.
        #[arg(long, env = "WEIR_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// .rules files to run at start.
        rules: Vec<PathBuf>,
    },
}

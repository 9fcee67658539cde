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
    #[command(subcommand)]
    pub command: Command,
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
    },
    /// Run the pipelines of a .rules file in the foreground.
    ///
    /// Alerts are printed to standard output, a progress line to standard error.
    /// Stops when every source has ended (a file read to its end, a generator
    /// with a count) or on Ctrl-C, after emitting open windows and flushing sinks.
    Run {
        /// The .rules file.
        file: PathBuf,
        /// Config file (TOML) for connector settings such as [kafka]; see
        /// docs/operations.md.
        #[arg(long, short)]
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
    },
    /// Run the engine and its HTTP API.
    ///
    /// Serves on 127.0.0.1:8080 by default, with data in ./weir-data. With
    /// --demo, a generator of realistic logs and example rules start at once.
    Serve {
        /// Config file (TOML); see docs/operations.md.
        #[arg(long, short)]
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

//! `weir backtest FILE.rules --from T1 --to T2`: see [`crate::backtest`].
//! Prints the window rows and alert transitions as JSON lines, a summary on
//! standard error, and with `--report FILE` keeps the lines in a file.

use crate::auth::Scope;
use crate::backtest::Request;
use crate::config::Config;
use crate::query::QueryEngine;
use crate::rules;
use anyhow::Context;
use serde_json::Value;
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// What the command line says.
pub struct Options {
    pub file: PathBuf,
    pub from: String,
    pub to: String,
    /// `SOURCE=STREAM`: read a source from a stream of another name.
    pub sources: Vec<String>,
    pub archive: Option<String>,
    pub config: Option<PathBuf>,
    pub data_dir: PathBuf,
    pub report: Option<PathBuf>,
}

/// An RFC 3339 time in microseconds, or an error naming `what`.
pub fn time(what: &str, t: &str) -> anyhow::Result<i64> {
    Ok(chrono::DateTime::parse_from_rfc3339(t)
        .with_context(|| format!("{what} `{t}`: write RFC 3339, e.g. 2026-03-01T00:00:00Z"))?
        .timestamp_micros())
}

/// `SOURCE=STREAM` pairs as a map.
pub fn stream_map(pairs: &[String]) -> anyhow::Result<HashMap<String, String>> {
    pairs
        .iter()
        .map(|m| {
            m.split_once('=')
                .map(|(s, t)| (s.trim().to_string(), t.trim().to_string()))
                .ok_or_else(|| anyhow::anyhow!("source `{m}`: write SOURCE=STREAM"))
        })
        .collect()
}

pub async fn run(o: Options) -> anyhow::Result<ExitCode> {
    let text = rules::read(&o.file)?;
    let name = o.file.display().to_string();
    let program = match rules::compile(&name, &text) {
        Ok(p) => p,
        Err(e) => {
            eprint!("{}", e.render());
            return Ok(ExitCode::from(1));
        }
    };
    let cfg = Config::load_or_default(o.config.as_deref(), o.data_dir)?;
    let engine = QueryEngine::new(
        cfg.archive_location(o.archive.as_deref())?,
        cfg.query.clone(),
    )?;
    let mut report: Box<dyn Write> = match &o.report {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot write {}", path.display()))?,
        )),
        None => Box::new(std::io::sink()),
    };
    let mut out = std::io::stdout().lock();
    let mut emit = |line: Value| -> anyhow::Result<()> {
        let text = line.to_string();
        writeln!(out, "{text}")?;
        writeln!(report, "{text}")?;
        Ok(())
    };
    let req = Request {
        program: &program,
        base_dir: o.file.parent().map(PathBuf::from).unwrap_or_default(),
        from_us: time("--from", &o.from)?,
        to_us: time("--to", &o.to)?,
        streams: stream_map(&o.sources)?,
    };
    let s = crate::backtest::run(&engine, &Scope::everything(), req, &mut emit)
        .await
        .map_err(|e| anyhow::anyhow!("{}", e))?;
    eprintln!(
        "backtest: {} archived events in {:.2} s ({:.0} events/s), {} alert transitions",
        s.events,
        s.seconds,
        s.events as f64 / s.seconds.max(1e-9),
        s.transitions
    );
    Ok(ExitCode::SUCCESS)
}

//! `weir query "SQL"`: runs SQL over the archive, directly or through a
//! running server's `POST /api/v1/query`, and prints the result.

use crate::config::Config;
use crate::query::format::{encode, Format};
use crate::query::{Limits, QueryEngine, QueryRequest};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Where the query runs.
pub enum Target {
    /// A server to ask.
    Server(super::client::Connection),
    Archive {
        url: Option<String>,
        config: Option<PathBuf>,
        data_dir: PathBuf,
    },
}

/// The CLI's flags as a request.
pub struct Request {
    pub sql: String,
    pub start: Option<String>,
    pub end: Option<String>,
    /// Time travel: a table version or an RFC 3339 time.
    pub as_of: Option<String>,
    pub max_rows: usize,
    pub timeout_s: u64,
    /// Runs (directly against an archive) whose fastest time is printed.
    pub repeat: u32,
    /// Query as a user with this scope would (directly against an archive).
    pub scope: Option<String>,
}

pub async fn run(target: Target, req: Request, format: Format) -> anyhow::Result<ExitCode> {
    let request = QueryRequest {
        sql: req.sql,
        start: req.start,
        end: req.end,
        max_rows: Some(req.max_rows),
        timeout_ms: Some(req.timeout_s.saturating_mul(1000)),
        as_of: req.as_of,
    };
    let out = match target {
        Target::Server(connection) => {
            tokio::task::spawn_blocking(move || ask_server(connection, &request, format)).await??
        }
        Target::Archive {
            url,
            config,
            data_dir,
        } => {
            let cfg = Config::load_or_default(config.as_deref(), data_dir)?;
            let location = cfg.archive_location(url.as_deref())?;
            let engine = QueryEngine::new(location, cfg.query.clone())?;
            let limits = request.limits(Limits {
                max_rows: usize::MAX,
                timeout: Duration::from_secs(u64::MAX / 4),
                ..Limits::default()
            });
            let scope = crate::auth::Scope::parse(req.scope.as_deref().unwrap_or(""))
                .map_err(|e| anyhow::anyhow!("--scope: {e}"))?;
            let mut best = Duration::MAX;
            let mut result = Err(crate::query::QueryError::Internal("not run".into()));
            for _ in 0..req.repeat.max(1) {
                let t = std::time::Instant::now();
                result = match request.range() {
                    Ok(range) => engine.run(&request.sql, range, limits, &scope).await,
                    Err(e) => Err(e),
                };
                best = best.min(t.elapsed());
            }
            if req.repeat > 1 {
                eprintln!(
                    "best of {}: {:.3} ms",
                    req.repeat,
                    best.as_secs_f64() * 1000.0
                );
            }
            match result {
                Ok(r) => encode(format, &r.schema, &r.batches, r.truncated)?,
                Err(e) => {
                    eprintln!("error: {e}");
                    return Ok(ExitCode::from(1));
                }
            }
        }
    };
    std::io::stdout().write_all(&out)?;
    Ok(ExitCode::SUCCESS)
}

/// POSTs the query to a server, asking for `format`.
fn ask_server(
    connection: super::client::Connection,
    req: &QueryRequest,
    format: Format,
) -> anyhow::Result<Vec<u8>> {
    let client = super::client::Client::new(connection)?;
    let (status, body) = client.post_json("/api/v1/query", req, format.content_type())?;
    if !(200..300).contains(&status) {
        anyhow::bail!("{}", super::client::error_text(status, &body));
    }
    Ok(body)
}

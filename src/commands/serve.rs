//! `weir serve`: the engine plus the HTTP API, with an embedded default (data in
//! ./weir-data) and an optional demo.

use crate::api;
use crate::auth::audit::AuditLog;
use crate::auth::{Auth, AuthStore};
use crate::cli::LogFormat;
use crate::config::Config;
use crate::engine_host::EngineHost;
use crate::query::QueryEngine;
use crate::rules;
use anyhow::Context;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

/// The demo rules, run by `weir serve --demo`.
pub const DEMO_RULES: &str = include_str!("../../rules/examples/demo.rules");
/// The lookup table the demo rules read.
const DEMO_TEAMS: &str = include_str!("../../rules/examples/teams.csv");

/// How often `weir serve` compacts the archive.
const COMPACT_EVERY: std::time::Duration = std::time::Duration::from_secs(600);
/// How often (in compaction rounds) it applies retention and vacuums: hourly.
const RETENTION_ROUNDS: u32 = 6;
/// Partitions are compacted once their time ended this long ago (late
/// events still arriving go in new small files, merged next round).
const COMPACT_GRACE: std::time::Duration = std::time::Duration::from_secs(600);

/// Every 10 minutes compacts the archive's finished hours (the small files
/// frequent commits leave — the archive commits every few seconds so fresh
/// events are queryable — are bin-packed into files up to
/// [`weir_connectors::maintenance::COMPACT_TARGET_BYTES`]); now and then
/// every hour applies the retention policies (each deleted or moved file
/// is logged and counted in `weir_archive_retention_files_total`) and
/// vacuums: data files no longer in their table for longer than
/// [`weir_connectors::maintenance::VACUUM_GRACE`] are deleted.
async fn maintenance_loop(
    cfg: Config,
    location: weir_connectors::store::ArchiveLocation,
    host: Arc<EngineHost>,
) {
    let cold = match cfg.retention.iter().find_map(|p| p.cold.as_deref()) {
        Some(c) => match cfg.archive_location(Some(c)) {
            Ok(l) => Some(l),
            Err(e) => {
                tracing::error!(error = %e, "retention: the cold location cannot be opened; retention is off");
                return;
            }
        },
        None => None,
    };
    let mut tick = tokio::time::interval(COMPACT_EVERY);
    let mut round = 0u32;
    loop {
        tick.tick().await;
        let now = chrono::Utc::now().timestamp_micros();
        match weir_connectors::maintenance::compact(&location, now, COMPACT_GRACE).await {
            Ok(done) if !done.is_empty() => {
                let files: usize = done.iter().map(|c| c.files_in).sum();
                tracing::info!(files, merged = done.len(), "archive compacted");
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "compaction failed"),
        }
        round += 1;
        if round % RETENTION_ROUNDS != 1 {
            continue;
        }
        let retained = if cfg.retention.is_empty() {
            Ok(Vec::new())
        } else {
            weir_connectors::maintenance::retain(
                &location,
                &cfg.retention,
                cold.as_ref(),
                now,
                false,
            )
            .await
        };
        match retained {
            Ok(actions) => {
                for a in &actions {
                    host.metrics
                        .retention_files
                        .with_label_values(&[&a.stream, a.action])
                        .inc();
                }
                if !cfg.retention.is_empty() {
                    tracing::info!(files = actions.len(), "retention applied");
                }
            }
            Err(e) => tracing::error!(error = %e, "retention failed"),
        }
        match weir_connectors::maintenance::vacuum(
            &location,
            now,
            weir_connectors::maintenance::VACUUM_GRACE,
        )
        .await
        {
            Ok(v) if v.files > 0 => {
                tracing::info!(files = v.files, bytes = v.bytes, "archive vacuumed")
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "vacuum failed"),
        }
    }
}

/// On a first start (no users), creates `admin` with `$WEIR_ADMIN_PASSWORD`
/// or a random password; returns the random one, to be shown once.
fn first_admin(store: &AuthStore) -> anyhow::Result<Option<String>> {
    if store.has_users()? {
        return Ok(None);
    }
    let given = std::env::var("WEIR_ADMIN_PASSWORD")
        .ok()
        .filter(|p| !p.is_empty());
    let password = given
        .clone()
        .unwrap_or_else(|| crate::auth::secret::random_hex(12));
    store.add_user(
        "admin",
        &password,
        crate::auth::Role::Admin,
        crate::auth::Scope::everything(),
    )?;
    tracing::info!(store = %store.path().display(), "first start: user `admin` created");
    Ok(given.is_none().then_some(password))
}

/// Writes `text` to a file only its owner may read.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.create(true).write(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    writeln!(f, "{text}")?;
    Ok(())
}

/// What the command line says to `weir serve`.
pub struct Options {
    pub config: Option<PathBuf>,
    pub demo: bool,
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub rules: Vec<PathBuf>,
}

pub async fn serve(opts: Options, log_format: LogFormat) -> anyhow::Result<ExitCode> {
    let Options {
        config,
        demo,
        listen,
        data_dir,
        rules: rules_files,
    } = opts;
    let mut cfg = Config::discover(config.as_deref())?;
    if let Some(l) = listen {
        cfg.listen = l;
    }
    if let Some(d) = data_dir {
        cfg.data_dir = d;
    }
    cfg.rules.extend(rules_files);
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("cannot create data folder {}", cfg.data_dir.display()))?;
    let store = AuthStore::open(&cfg.data_dir);
    let first_password = first_admin(&store)?;
    let tls = cfg.tls.as_ref().map(|t| t.acceptor()).transpose()?;
    let mut host = EngineHost::new(&cfg, true)?;
    host.ingest_auth = Some(Arc::new(store.clone()));
    let host = Arc::new(host);

    let mut failed = false;
    for path in &cfg.rules {
        let text = rules::read(path)?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        match host
            .deploy(&path.display().to_string(), &text, base, true, None)
            .await
        {
            Ok(names) => {
                tracing::info!(file = %path.display(), pipelines = ?names, "rules running")
            }
            Err(e) => {
                eprint!("{}", e.render());
                failed = true;
            }
        }
    }
    if failed {
        return Ok(ExitCode::from(1));
    }
    if demo {
        // The demo runs from any folder: its lookup table goes to the data folder.
        let base = cfg.data_dir.join("demo");
        std::fs::create_dir_all(&base)?;
        std::fs::write(base.join("teams.csv"), DEMO_TEAMS)?;
        match host
            .deploy("demo.rules", DEMO_RULES, base, true, None)
            .await
        {
            Ok(names) => {
                tracing::info!(pipelines = ?names, "demo running: generated logs from six services")
            }
            Err(e) => {
                eprint!("{}", e.render());
                return Ok(ExitCode::from(1));
            }
        }
    }

    // Before the port opens: a stop asked for from then on is graceful.
    let stop = super::shutdown_signal();
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let audit = AuditLog::open(&cfg.data_dir, &host.registry)?;
    let auth = Arc::new(Auth::new(
        store,
        audit,
        cfg.security.clone(),
        addr,
        tls.is_some(),
    ));
    if addr.ip().is_unspecified() && cfg.security.public_url.is_none() {
        tracing::warn!(
            "listening on every address without [security] public_url: requests naming any Host are answered (set it to refuse DNS-rebinding pages)"
        );
    }
    if log_format == LogFormat::Json {
        // Machine-read logs: the address as a log event, no banner.
        tracing::info!(address = %format!("{scheme}://{addr}"), data = %cfg.data_dir.display(), "serving");
        if let Some(pw) = &first_password {
            // Never into the log: a file only its owner reads (as Jenkins'
            // initialAdminPassword).
            let file = cfg.data_dir.join(crate::auth::store::INITIAL_PASSWORD_FILE);
            write_private(&file, pw)?;
            tracing::warn!(file = %file.display(), "first start: user `admin` created; its password is in this file (read it, then delete it)");
        }
    } else {
        eprintln!(
            "weir is serving on {scheme}://{addr}  (data in {})",
            cfg.data_dir.display()
        );
        if let Some(pw) = &first_password {
            eprintln!(
                "  first start: user `admin` created with password {pw}\n  (shown once; change it with `weir user passwd admin`)"
            );
        }
        let d = cfg.data_dir.display();
        eprintln!("  a token:   TOKEN=$(weir token create --data-dir {d} --name me --role admin)");
        eprintln!(
            "  alerts:    curl -H \"Authorization: Bearer $TOKEN\" {scheme}://{addr}/api/v1/alerts"
        );
        eprintln!("  login:     curl -c cookies -H 'Content-Type: application/json' -d '{{\"user\":\"admin\",\"password\":\"...\"}}' {scheme}://{addr}/api/v1/login");
        eprintln!("  submit:    curl -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/x-weir-rules' --data-binary @my.rules {scheme}://{addr}/api/v1/pipelines");
        eprintln!("  query:     WEIR_TOKEN=$TOKEN weir query --server {scheme}://{addr} \"SELECT count(*) FROM STREAM\"");
        eprintln!("  metrics:   curl {scheme}://{addr}/metrics");
    }
    let location = cfg.archive_location(None)?;
    tokio::spawn(maintenance_loop(
        cfg.clone(),
        location.clone(),
        host.clone(),
    ));
    let query = Arc::new(QueryEngine::new(location, cfg.query.clone())?);
    weir_connectors::http_server::serve_tls(
        listener,
        api::router(api::AppState {
            host: host.clone(),
            query,
            auth,
            owners: Default::default(),
        }),
        &cfg.http,
        tls,
        stop,
    )
    .await
    .context("HTTP server failed")?;
    tracing::info!("stopping: flushing sinks; open windows are emitted, or saved for the next start when they read Kafka");
    host.shutdown().await?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

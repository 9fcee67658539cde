//! `weir archive retain|compact|vacuum|migrate`: archive upkeep from the
//! command line.

use crate::cli::ArchiveAction;
use crate::config::Config;
use std::path::PathBuf;
use std::process::ExitCode;
use weir_connectors::maintenance::{compact, migrate, retain, vacuum};

pub async fn run(
    action: ArchiveAction,
    config: Option<PathBuf>,
    data_dir: PathBuf,
    url: Option<String>,
) -> anyhow::Result<ExitCode> {
    let cfg = Config::load_or_default(config.as_deref(), data_dir)?;
    let location = cfg.archive_location(url.as_deref())?;
    let now = chrono::Utc::now().timestamp_micros();
    match action {
        ArchiveAction::Retain { dry_run } => {
            if cfg.retention.is_empty() {
                eprintln!("no [[retention]] policies in the config: nothing to do");
                return Ok(ExitCode::SUCCESS);
            }
            // One cold location for all policies that move data.
            let cold = match cfg.retention.iter().find_map(|p| p.cold.as_deref()) {
                Some(c) => Some(cfg.archive_location(Some(c))?),
                None => None,
            };
            let actions = retain(&location, &cfg.retention, cold.as_ref(), now, dry_run).await?;
            let verb = if dry_run { "would " } else { "" };
            for a in &actions {
                println!("{verb}{} {} ({} bytes)", a.action, a.path, a.bytes);
            }
            let bytes: u64 = actions.iter().map(|a| a.bytes).sum();
            eprintln!(
                "{} files, {bytes} bytes {}",
                actions.len(),
                if dry_run {
                    "would be affected (dry run)"
                } else {
                    "affected"
                }
            );
        }
        ArchiveAction::Compact { grace } => {
            let done = compact(&location, now, grace).await?;
            for c in &done {
                println!(
                    "{}: {} files -> {} ({} rows, {} bytes)",
                    c.folder, c.files_in, c.path_out, c.rows, c.bytes_out
                );
            }
            eprintln!("{} partitions compacted", done.len());
        }
        ArchiveAction::Vacuum { grace } => {
            let v = vacuum(&location, now, grace).await?;
            println!("{} files, {} bytes deleted", v.files, v.bytes);
        }
        ArchiveAction::Migrate { dry_run } => {
            let done = migrate(&location, dry_run).await?;
            let verb = if dry_run { "would add" } else { "added" };
            for m in &done {
                println!(
                    "{}: {verb} {} files ({} rows) as a Delta table; {} superseded files left out",
                    m.stream, m.files, m.rows, m.superseded
                );
            }
            if done.is_empty() {
                println!("no folder streams to migrate: every stream is a Delta table already");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

//! The audit log: one JSON object per line in `DATA/audit.log`, appended
//! and never rewritten, saying who did what from where and whether it
//! worked — logins, logouts, pipeline submits and deletes, silences,
//! user and token changes, and every SQL query (its text and the rows it
//! returned). Passwords and tokens are never written. Each entry also counts
//! in `weir_audit_events_total{action, outcome}`.

use serde_json::{json, Value};
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The audit file's name in the data folder.
pub const FILE: &str = "audit.log";

pub struct AuditLog {
    path: PathBuf,
    file: Mutex<Option<std::fs::File>>,
    counter: prometheus::IntCounterVec,
}

/// One thing done.
pub struct Entry<'a> {
    /// Who: a user, `token:NAME`, `anonymous`, or the name tried at a
    /// failed login.
    pub actor: &'a str,
    pub address: Option<IpAddr>,
    /// `login`, `logout`, `pipeline.submit`, `query`, ...
    pub action: &'a str,
    /// What it acted on (a pipeline, a silence id, a user).
    pub target: &'a str,
    /// `ok`, `denied`, `failed`.
    pub outcome: &'a str,
    pub detail: Value,
}

impl AuditLog {
    pub fn open(data_dir: &Path, registry: &prometheus::Registry) -> anyhow::Result<AuditLog> {
        let counter = prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                "weir_audit_events_total",
                "Entries written to the audit log, by action and outcome.",
            ),
            &["action", "outcome"],
        )?;
        registry.register(Box::new(counter.clone()))?;
        Ok(AuditLog {
            path: data_dir.join(FILE),
            file: Mutex::new(None),
            counter,
        })
    }

    /// Appends an entry; a write that fails is logged, never fatal.
    pub fn record(&self, e: Entry<'_>) {
        self.counter.with_label_values(&[e.action, e.outcome]).inc();
        let mut line = json!({
            "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "actor": e.actor,
            "address": e.address.map(|a| a.to_string()),
            "action": e.action,
            "target": e.target,
            "outcome": e.outcome,
        });
        if !e.detail.is_null() {
            line["detail"] = e.detail;
        }
        let mut text = line.to_string();
        text.push('\n');
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if file.is_none() {
            let mut opts = std::fs::OpenOptions::new();
            opts.create(true).append(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            match opts.open(&self.path) {
                Ok(f) => *file = Some(f),
                Err(err) => {
                    tracing::error!(file = %self.path.display(), error = %err, "cannot open the audit log");
                    return;
                }
            }
        }
        if let Some(f) = file.as_mut() {
            if let Err(err) = f.write_all(text.as_bytes()) {
                tracing::error!(file = %self.path.display(), error = %err, "cannot write the audit log");
                *file = None;
            }
        }
    }
}

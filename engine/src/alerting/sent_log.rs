//! The notifications delivered lately, in a folder the processes of a
//! group share (the state folder): so that a transition replayed after a
//! crash — by the same process or by the one that took its partitions
//! over — is not notified again.
//!
//! A transition notified after the last checkpoint is not in the saved
//! state; after a crash the events behind it are read again and it happens
//! again. Before notifying it, the manager looks here: a delivery of the
//! same transition (channel, pipeline, rule, fingerprint, firing or
//! resolved, and the event time its run of matches began) is not repeated.
//! Entries are written once the channel confirmed delivery, so a transition
//! lost in a crash before delivery is notified after the restart; a crash
//! between the delivery and the entry (microseconds) can still repeat it.
//!
//! Each process appends to files of its own (`PROCESS-SLOT.log`, a new one
//! every [`SLOT`]); files older than [`RETAIN`] are removed, by whichever
//! process reads the folder — a replay comes within a restart or a
//! rebalance, well inside it.

use super::tracker::{Alert, AlertState};
use std::collections::HashSet;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// How long a delivery is remembered.
pub const RETAIN: Duration = Duration::from_secs(3600);
/// How long a process appends to one file.
const SLOT: Duration = Duration::from_secs(600);

/// See the module docs.
pub struct SentLog {
    dir: PathBuf,
    /// This process's file names start with it.
    me: String,
}

impl SentLog {
    pub fn new(dir: PathBuf) -> SentLog {
        SentLog {
            dir,
            me: crate::checkpoint::process_token(),
        }
    }

    /// What identifies one transition's delivery to one channel.
    pub fn key(channel: &str, a: &Alert, status: AlertState) -> String {
        format!(
            "{channel}\t{}\t{}\t{}\t{}\t{}",
            a.pipeline,
            a.rule,
            a.fingerprint,
            status.as_str(),
            a.active_since_us
        )
    }

    /// Records deliveries.
    pub fn record(&self, keys: &[String]) -> std::io::Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        std::fs::create_dir_all(&self.dir)?;
        let slot = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs() / SLOT.as_secs())
            .unwrap_or_default();
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("{}-{slot}.log", self.me)))?;
        let mut text = String::new();
        for k in keys {
            text.push_str(k);
            text.push('\n');
        }
        // One write: a reader sees whole lines (a cut last line is ignored).
        f.write_all(text.as_bytes())
    }

    /// Every delivery remembered, by any process (and expired files
    /// removed).
    pub fn known(&self) -> HashSet<String> {
        let mut out = HashSet::new();
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return out;
        };
        let now = SystemTime::now();
        for e in entries.flatten() {
            let path = e.path();
            if path.extension().is_none_or(|x| x != "log") {
                continue;
            }
            let age = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| now.duration_since(t).ok())
                .unwrap_or_default();
            if age > RETAIN {
                let _ = std::fs::remove_file(&path);
                continue;
            }
            if let Ok(text) = std::fs::read_to_string(&path) {
                // A line without its end was being written.
                let whole = text.rfind('\n').map_or("", |end| &text[..end]);
                out.extend(whole.lines().map(String::from));
            }
        }
        out
    }
}

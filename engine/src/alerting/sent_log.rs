//! The notifications delivered lately, in the state files the processes of
//! a group share (a folder or an object store): so that a transition replayed after a
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
//! Each process writes files of its own in the state files' `notified/`
//! (`PROCESS-SLOT.log`, a new one every [`SLOT`], rewritten whole at each
//! delivery); files older than [`RETAIN`] are removed, by whichever
//! process reads the folder — a replay comes within a restart or a
//! rebalance, well inside it.

use super::tracker::{Alert, AlertState};
use crate::state_files::StateFiles;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// How long a delivery is remembered.
pub const RETAIN: Duration = Duration::from_secs(3600);
/// How long a process writes to one file.
const SLOT: Duration = Duration::from_secs(600);
/// The folder of the state files the log is in.
const FOLDER: &str = "notified";

/// See the module docs.
pub struct SentLog {
    files: Arc<dyn StateFiles>,
    /// This process's file names start with it.
    me: String,
    /// This process's current file: its slot and its lines (written whole
    /// at each record: an object store cannot append).
    current: Mutex<(u64, String)>,
}

impl SentLog {
    pub fn new(files: Arc<dyn StateFiles>) -> SentLog {
        SentLog {
            files,
            me: crate::checkpoint::process_token(),
            current: Mutex::new((0, String::new())),
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
        let slot = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs() / SLOT.as_secs())
            .unwrap_or_default();
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if current.0 != slot {
            *current = (slot, String::new());
        }
        for k in keys {
            current.1.push_str(k);
            current.1.push('\n');
        }
        self.files.write(
            &format!("{FOLDER}/{}-{slot}.log", self.me),
            current.1.as_bytes(),
        )
    }

    /// Every delivery remembered, by any process (and expired files
    /// removed).
    pub fn known(&self) -> HashSet<String> {
        let mut out = HashSet::new();
        let entries = match self.files.list(FOLDER) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, location = %self.files.location(), "the delivered notifications cannot be listed (a replay after a crash may repeat some)");
                return out;
            }
        };
        let now = SystemTime::now();
        for (name, modified) in entries {
            if !name.ends_with(".log") {
                continue;
            }
            let path = format!("{FOLDER}/{name}");
            let age = now.duration_since(modified).unwrap_or_default();
            if age > RETAIN {
                let _ = self.files.remove(&path);
                continue;
            }
            if let Ok(Some(bytes)) = self.files.read(&path) {
                let text = String::from_utf8_lossy(&bytes);
                // Files are written whole; a line without its end is not
                // one (files of earlier versions were appended to).
                let whole = text.rfind('\n').map_or("", |end| &text[..end]);
                out.extend(whole.lines().map(String::from));
            }
        }
        out
    }
}

//! Alert state on disk: open alerts, silences and recent history in one JSON
//! file in the data folder, replaced atomically (write, fsync, rename), so a
//! restart neither re-notifies nor forgets a firing alert.

use super::manager::HistoryEntry;
use super::notify::Notification;
use super::silence::Silence;
use super::tracker::Alert;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;

/// What is saved.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Snapshot {
    pub version: u32,
    pub alerts: Vec<Alert>,
    pub silences: Vec<Silence>,
    pub history: Vec<HistoryEntry>,
    pub next_id: u64,
    /// Notifications handed to channels and not yet delivered (or given
    /// up on), by outbox id: sent again after a restart.
    #[serde(default)]
    pub outbox: Vec<(u64, Notification)>,
}

/// The saved state, or `None` when there is no file yet.
pub fn load(path: &Path) -> Result<Option<Snapshot>, String> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| format!("{}: not a Weir alert state file: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Replaces the file with `snapshot`.
pub fn save(path: &Path, snapshot: &Snapshot) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("json.tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        serde_json::to_writer(&mut f, snapshot)?;
        f.flush()?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

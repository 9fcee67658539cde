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
    // A temporary file of its own: every pipeline with alerts saves the
    // shared state when it flushes, and two saves at once through one
    // temporary name had the second rename find it gone (`weir serve --demo`
    // stopped with an error when its two pipelines flushed together).
    static SAVES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = SAVES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!("json.{}-{n}.tmp", std::process::id()));
    {
        let mut f = std::fs::File::create(&tmp)?;
        serde_json::to_writer(&mut f, snapshot)?;
        f.flush()?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Saves from several threads at once all succeed, and the file holds
    /// one whole snapshot.
    #[test]
    fn saves_at_the_same_time_do_not_collide() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("alerts/state.json");
        let snap = Snapshot {
            version: 1,
            alerts: Vec::new(),
            silences: Vec::new(),
            history: Vec::new(),
            next_id: 7,
            outbox: Vec::new(),
        };
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        for _ in 0..50 {
                            save(&path, &snap).unwrap_or_else(|e| panic!("{e}"));
                        }
                    })
                })
                .collect();
            for h in handles {
                h.join()
                    .unwrap_or_else(|_| panic!("a saving thread panicked"));
            }
        });
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(text.contains("\"next_id\":7"), "{text}");
        let left: Vec<_> = std::fs::read_dir(path.parent().unwrap_or(dir.path()))
            .unwrap_or_else(|e| panic!("{e}"))
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name() != "state.json")
            .collect();
        assert!(left.is_empty(), "temporary files left: {left:?}");
    }
}

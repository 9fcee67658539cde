//! Pipeline state across restarts: at each checkpoint barrier a pipeline
//! reading a replayable source (Kafka) with windows writes a snapshot —
//! every window's state, tagged with the last source offset per partition
//! the state includes — to `STATE_DIR/PIPELINE.state`, atomically (a new
//! file, synced, renamed over the old one: a crash leaves the old snapshot
//! or the new one, never half of one). On start the pipeline restores it
//! and drops the replayed events the state already holds, so a crash
//! (SIGKILL included) neither loses the open windows nor counts an event
//! twice.
//!
//! A pipeline whose windows keep state per source partition (their keys
//! each come from one partition: a source `keyed_by` the fields they group
//! by) writes one snapshot per partition instead, to
//! `STATE_DIR/PIPELINE/PARTITION.state`, and reads a partition's when the
//! partition is assigned to it: processes sharing the state folder hand a
//! partition's windows on with the partition.
//!
//! A snapshot is restored per window, by definition (see
//! [`weir_dsl::plan::definition`]): a rules change that leaves a window
//! alone keeps its state; a changed window starts empty, with the reason
//! logged.

use crate::error::{EngineError, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The snapshot format; a file of another format is not restored.
const FORMAT: u32 = 1;

/// One pipeline's state at a checkpoint.
#[derive(Debug, Serialize, Deserialize)]
pub struct Snapshot {
    pub format: u32,
    pub pipeline: String,
    pub source: String,
    /// Per source partition, the last offset the state includes.
    pub positions: HashMap<i64, i64>,
    /// Per stateful step, in order: its definition and its state.
    pub states: Vec<(String, Vec<u8>)>,
    /// When it was taken (ms since the epoch).
    pub taken_at_ms: i64,
    /// The source partition it is of (a per-partition snapshot).
    #[serde(default)]
    pub partition: Option<i64>,
}

impl Snapshot {
    pub fn new(
        pipeline: &str,
        source: &str,
        positions: HashMap<i64, i64>,
        states: Vec<(String, Vec<u8>)>,
    ) -> Snapshot {
        Snapshot {
            format: FORMAT,
            pipeline: pipeline.to_string(),
            source: source.to_string(),
            positions,
            states,
            taken_at_ms: chrono::Utc::now().timestamp_millis(),
            partition: None,
        }
    }

    /// Bytes of state it holds (for logs and metrics).
    pub fn size(&self) -> usize {
        self.states.iter().map(|(_, s)| s.len()).sum()
    }
}

/// Where pipeline snapshots live: a folder (the data folder's `state/`).
#[derive(Debug, Clone)]
pub struct StateStore {
    dir: PathBuf,
}

impl StateStore {
    pub fn new(dir: impl Into<PathBuf>) -> StateStore {
        StateStore { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, pipeline: &str) -> PathBuf {
        self.dir.join(format!("{pipeline}.state"))
    }

    fn partition_path(&self, pipeline: &str, partition: i64) -> PathBuf {
        self.dir.join(pipeline).join(format!("{partition}.state"))
    }

    /// The pipeline's latest snapshot; `None` when there is none (or it is
    /// of another format: logged).
    pub fn load(&self, pipeline: &str) -> Result<Option<Snapshot>> {
        self.load_from(self.path(pipeline))
    }

    /// The latest snapshot of one source partition of a pipeline keeping
    /// state per partition.
    pub fn load_partition(&self, pipeline: &str, partition: i64) -> Result<Option<Snapshot>> {
        self.load_from(self.partition_path(pipeline, partition))
    }

    /// Drops the pipeline's whole snapshot (it keeps state per partition
    /// now); `true` when there was one.
    pub fn remove_whole(&self, pipeline: &str) -> Result<bool> {
        match std::fs::remove_file(self.path(pipeline)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(EngineError::io(
                format!("removing {}", self.path(pipeline).display()),
                e,
            )),
        }
    }

    fn load_from(&self, path: PathBuf) -> Result<Option<Snapshot>> {
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(EngineError::io(format!("reading {}", path.display()), e)),
        };
        let snap: Snapshot = ciborium::from_reader(bytes.as_slice()).map_err(|e| {
            EngineError::Checkpoint(format!("{} is not a snapshot: {e}", path.display()))
        })?;
        if snap.format != FORMAT {
            tracing::warn!(
                snapshot = %path.display(),
                format = snap.format,
                "a snapshot of another Weir version: starting with empty windows"
            );
            return Ok(None);
        }
        Ok(Some(snap))
    }

    /// Writes a snapshot in place of the last one, atomically and durably.
    /// A per-partition snapshot (see [`Snapshot::partition`]) goes to its
    /// partition's file.
    pub fn save(&self, snap: &Snapshot) -> Result<()> {
        let (dir, path) = match snap.partition {
            None => (self.dir.clone(), self.path(&snap.pipeline)),
            Some(p) => (
                self.dir.join(&snap.pipeline),
                self.partition_path(&snap.pipeline, p),
            ),
        };
        let io = |what: &str, e| EngineError::io(format!("{what} in {}", dir.display()), e);
        std::fs::create_dir_all(&dir).map_err(|e| io("creating the state folder", e))?;
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("state");
        // Unique per process: processes sharing the folder never write one
        // temporary file together.
        let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let mut bytes = Vec::with_capacity(snap.size() + 256);
        ciborium::into_writer(snap, &mut bytes)
            .map_err(|e| EngineError::Checkpoint(format!("encoding the snapshot: {e}")))?;
        let mut f = std::fs::File::create(&tmp).map_err(|e| io("writing a snapshot", e))?;
        f.write_all(&bytes)
            .and_then(|()| f.sync_all())
            .map_err(|e| io("writing a snapshot", e))?;
        std::fs::rename(&tmp, &path).map_err(|e| io("replacing a snapshot", e))?;
        // The rename itself must survive a power cut.
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_snapshot_loads_back_and_replaces_the_last() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(dir.path().join("state"));
        assert!(store.load("p").unwrap().is_none());
        let snap = Snapshot::new(
            "p",
            "app",
            HashMap::from([(0, 41), (3, 7)]),
            vec![("def".into(), vec![1, 2, 3])],
        );
        store.save(&snap).unwrap();
        let mut next = snap;
        next.positions.insert(0, 99);
        store.save(&next).unwrap();
        let back = store.load("p").unwrap().unwrap();
        assert_eq!(back.positions, HashMap::from([(0, 99), (3, 7)]));
        assert_eq!(back.states, vec![("def".to_string(), vec![1, 2, 3])]);
        // Only the snapshot is left: no temporary file.
        assert_eq!(std::fs::read_dir(store.dir()).unwrap().count(), 1);
    }

    #[test]
    fn a_damaged_snapshot_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(dir.path());
        std::fs::write(dir.path().join("p.state"), b"\xff\x00not cbor").unwrap();
        assert!(store.load("p").is_err());
    }
}

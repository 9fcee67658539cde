//! Pipeline state across restarts: at each checkpoint barrier a pipeline
//! reading a replayable source (Kafka) with windows writes a snapshot —
//! every window's state, tagged with the last source offset per partition
//! the state includes — to `STATE/PIPELINE.state` in the state files
//! ([`crate::state_files`]: a folder or an object store), atomically (a
//! crash leaves the old snapshot or the new one, never half of one). On start the pipeline restores it
//! and drops the replayed events the state already holds, so a crash
//! (SIGKILL included) neither loses the open windows nor counts an event
//! twice.
//!
//! A pipeline whose windows keep state per source partition (their keys
//! each come from one partition: a source `keyed_by` the fields they group
//! by) writes one snapshot per partition instead, to
//! `STATE/PIPELINE/PARTITION.state`, and reads a partition's when the
//! partition is assigned to it: processes sharing the state folder hand a
//! partition's windows on with the partition.
//!
//! A process fences a partition it was assigned: it writes its owner token
//! to `STATE/PIPELINE/PARTITION.owner` before reading the snapshot, and
//! before each save of the partition it checks that the token is still its
//! own. A process that paused past its session timeout (a zombie: its
//! partitions went to another process meanwhile) finds another token there
//! and does not overwrite the new owner's snapshot with its stale one
//! ([`Saved::Fenced`]).
//!
//! A snapshot is restored per window, by definition (see
//! [`weir_dsl::plan::definition`]): a rules change that leaves a window
//! alone keeps its state; a changed window starts empty, with the reason
//! logged.

use crate::error::{EngineError, Result};
use crate::state_files::{Folder, StateFiles};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

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

/// What became of a save.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Saved {
    Written,
    /// Not written: another process claimed the snapshot's partition since
    /// this one did (its token is `owner`).
    Fenced {
        partition: i64,
        owner: String,
    },
}

/// Where pipeline snapshots live: state files (see
/// [`crate::state_files`]) — the data folder's `state/` by default, or an
/// object store every process of a group reaches.
#[derive(Clone)]
pub struct StateStore {
    files: Arc<dyn StateFiles>,
    /// This process's token in the partitions' owner files: unique per
    /// store (one per deployment), across processes and machines.
    owner: Arc<str>,
}

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateStore")
            .field("location", &self.files.location())
            .field("owner", &self.owner)
            .finish()
    }
}

impl StateStore {
    pub fn new(files: Arc<dyn StateFiles>) -> StateStore {
        StateStore {
            files,
            owner: process_token().into(),
        }
    }

    /// A store in a folder.
    pub fn in_folder(dir: impl Into<PathBuf>) -> StateStore {
        StateStore::new(Arc::new(Folder::new(dir)))
    }

    /// This store's owner token (what its claims write).
    pub fn owner(&self) -> &str {
        &self.owner
    }

    fn io(&self, what: &str, name: &str, e: std::io::Error) -> EngineError {
        EngineError::io(format!("{what} {name} in {}", self.files.location()), e)
    }

    fn name(pipeline: &str) -> String {
        format!("{pipeline}.state")
    }

    fn partition_name(pipeline: &str, partition: i64) -> String {
        format!("{pipeline}/{partition}.state")
    }

    fn owner_name(pipeline: &str, partition: i64) -> String {
        format!("{pipeline}/{partition}.owner")
    }

    /// Makes this process the owner of a pipeline's source partition (it
    /// was assigned to it): saves of the partition by any earlier owner are
    /// fenced from now on. Call before loading the partition's snapshot.
    pub fn claim(&self, pipeline: &str, partition: i64) -> Result<()> {
        let name = Self::owner_name(pipeline, partition);
        self.files
            .write(&name, self.owner.as_bytes())
            .map_err(|e| self.io("writing", &name, e))
    }

    /// The partition's current owner token, if any process claimed it.
    fn owner_of(&self, pipeline: &str, partition: i64) -> Result<Option<String>> {
        let name = Self::owner_name(pipeline, partition);
        let bytes = self
            .files
            .read(&name)
            .map_err(|e| self.io("reading", &name, e))?;
        Ok(bytes.map(|b| String::from_utf8_lossy(&b).into_owned()))
    }

    /// The pipeline's latest snapshot; `None` when there is none (or it is
    /// of another format: logged).
    pub fn load(&self, pipeline: &str) -> Result<Option<Snapshot>> {
        self.load_from(&Self::name(pipeline))
    }

    /// The latest snapshot of one source partition of a pipeline keeping
    /// state per partition.
    pub fn load_partition(&self, pipeline: &str, partition: i64) -> Result<Option<Snapshot>> {
        self.load_from(&Self::partition_name(pipeline, partition))
    }

    /// Drops the pipeline's whole snapshot (it keeps state per partition
    /// now); `true` when there was one.
    pub fn remove_whole(&self, pipeline: &str) -> Result<bool> {
        let name = Self::name(pipeline);
        self.files
            .remove(&name)
            .map_err(|e| self.io("removing", &name, e))
    }

    fn load_from(&self, name: &str) -> Result<Option<Snapshot>> {
        let Some(bytes) = self
            .files
            .read(name)
            .map_err(|e| self.io("reading", name, e))?
        else {
            return Ok(None);
        };
        let snap: Snapshot = ciborium::from_reader(bytes.as_slice()).map_err(|e| {
            EngineError::Checkpoint(format!(
                "{name} in {} is not a snapshot: {e}",
                self.files.location()
            ))
        })?;
        if snap.format != FORMAT {
            tracing::warn!(
                snapshot = %name,
                format = snap.format,
                "a snapshot of another Weir version: starting with empty windows"
            );
            return Ok(None);
        }
        Ok(Some(snap))
    }

    /// Writes a snapshot in place of the last one, atomically and durably.
    /// A per-partition snapshot (see [`Snapshot::partition`]) goes to its
    /// partition's file — unless another process claimed the partition
    /// after this one ([`Saved::Fenced`]; a partition nobody claimed is
    /// written).
    pub fn save(&self, snap: &Snapshot) -> Result<Saved> {
        let name = match snap.partition {
            None => Self::name(&snap.pipeline),
            Some(p) => {
                if let Some(owner) = self.owner_of(&snap.pipeline, p)? {
                    if owner != *self.owner {
                        return Ok(Saved::Fenced {
                            partition: p,
                            owner,
                        });
                    }
                }
                Self::partition_name(&snap.pipeline, p)
            }
        };
        let mut bytes = Vec::with_capacity(snap.size() + 256);
        ciborium::into_writer(snap, &mut bytes)
            .map_err(|e| EngineError::Checkpoint(format!("encoding the snapshot: {e}")))?;
        self.files
            .write(&name, &bytes)
            .map_err(|e| self.io("writing", &name, e))?;
        Ok(Saved::Written)
    }
}

/// A token no other process has, across the machines sharing a state
/// folder: the host, the process id, the time and a sequence number (two
/// stores of one process differ). Usable in file names.
pub(crate) fn process_token() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{host}-{}-{nanos:x}-{seq}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_snapshot_loads_back_and_replaces_the_last() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::in_folder(dir.path().join("state"));
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
        assert_eq!(
            std::fs::read_dir(dir.path().join("state")).unwrap().count(),
            1
        );
    }

    #[test]
    fn a_process_that_lost_a_partition_cannot_overwrite_its_new_owners_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        // Two processes sharing the state folder.
        let (a, b) = (
            StateStore::in_folder(dir.path()),
            StateStore::in_folder(dir.path()),
        );
        assert_ne!(a.owner(), b.owner());
        let snap = |offset: i64| {
            let mut s = Snapshot::new(
                "p",
                "app",
                HashMap::from([(2, offset)]),
                vec![("def".into(), vec![offset as u8])],
            );
            s.partition = Some(2);
            s
        };
        // A partition nobody claimed is written (state of older versions).
        assert_eq!(a.save(&snap(5)).unwrap(), Saved::Written);
        a.claim("p", 2).unwrap();
        assert_eq!(a.save(&snap(10)).unwrap(), Saved::Written);
        // B is assigned the partition (A paused past its session timeout).
        b.claim("p", 2).unwrap();
        assert_eq!(b.load_partition("p", 2).unwrap().unwrap().positions[&2], 10);
        assert_eq!(b.save(&snap(20)).unwrap(), Saved::Written);
        // A wakes up with its stale state: fenced, B's snapshot stays.
        assert_eq!(
            a.save(&snap(12)).unwrap(),
            Saved::Fenced {
                partition: 2,
                owner: b.owner().to_string()
            }
        );
        assert_eq!(a.load_partition("p", 2).unwrap().unwrap().positions[&2], 20);
        // Whole-pipeline snapshots are not fenced; other partitions neither.
        let mut other = snap(1);
        other.partition = Some(3);
        assert_eq!(a.save(&other).unwrap(), Saved::Written);
        // Assigned again later, A claims it back.
        a.claim("p", 2).unwrap();
        assert_eq!(a.save(&snap(30)).unwrap(), Saved::Written);
        assert!(matches!(b.save(&snap(21)).unwrap(), Saved::Fenced { .. }));
    }

    #[test]
    fn a_damaged_snapshot_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::in_folder(dir.path());
        std::fs::write(dir.path().join("p.state"), b"\xff\x00not cbor").unwrap();
        assert!(store.load("p").is_err());
    }
}

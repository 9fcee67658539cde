//! Where checkpointed state is kept: small named files — window snapshots,
//! the partitions' owner tokens, the log of delivered notifications — in
//! one place every process of a consumer group shares. A folder here
//! ([`Folder`]); an object store (S3, GCS, Azure) through the connectors
//! (`weir_connectors::state_store`), for processes on several machines.
//!
//! Names are relative paths with `/` between folders
//! (`per_service/3.state`). The calls block (a file read, or a request to
//! the store): callers run them off the async workers where they may take
//! long (a checkpoint's saves), like any file access.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// See the module docs.
pub trait StateFiles: Send + Sync + std::fmt::Debug {
    /// A file's bytes; `None` when there is none.
    fn read(&self, name: &str) -> std::io::Result<Option<Vec<u8>>>;
    /// Replaces a file (or creates it), atomically — a reader sees the old
    /// bytes or the new, never part of them — and durably.
    fn write(&self, name: &str, bytes: &[u8]) -> std::io::Result<()>;
    /// Removes a file; `false` when there was none.
    fn remove(&self, name: &str) -> std::io::Result<bool>;
    /// The files directly in `folder` (not in its sub-folders): each one's
    /// name in the folder and when it was last written. An absent folder
    /// holds none.
    fn list(&self, folder: &str) -> std::io::Result<Vec<(String, SystemTime)>>;
    /// Where the files are, for messages (a folder, `s3://bucket/prefix`).
    fn location(&self) -> String;
}

/// State files in a folder of the file system (the data folder's `state/`
/// by default; shared by the processes of a group on one machine or over a
/// network file system).
#[derive(Debug, Clone)]
pub struct Folder {
    dir: PathBuf,
}

impl Folder {
    pub fn new(dir: impl Into<PathBuf>) -> Folder {
        Folder { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, name: &str) -> PathBuf {
        name.split('/')
            .fold(self.dir.clone(), |p, part| p.join(part))
    }
}

impl StateFiles for Folder {
    fn read(&self, name: &str) -> std::io::Result<Option<Vec<u8>>> {
        match std::fs::read(self.path(name)) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn write(&self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        write_atomically(&self.path(name), bytes)
    }

    fn remove(&self, name: &str) -> std::io::Result<bool> {
        match std::fs::remove_file(self.path(name)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn list(&self, folder: &str) -> std::io::Result<Vec<(String, SystemTime)>> {
        let entries = match std::fs::read_dir(self.path(folder)) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for e in entries.flatten() {
            let Ok(meta) = e.metadata() else { continue };
            let Some(name) = e.file_name().to_str().map(String::from) else {
                continue;
            };
            // Temporary files of writes under way are not state.
            if meta.is_file() && !name.starts_with('.') {
                out.push((name, meta.modified().unwrap_or(SystemTime::UNIX_EPOCH)));
            }
        }
        Ok(out)
    }

    fn location(&self) -> String {
        self.dir.display().to_string()
    }
}

/// Writes `bytes` to `path` atomically and durably: a new file, synced,
/// renamed over the old one (a crash leaves the old file or the new one,
/// never half of one), then the folder synced.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("state");
    // Unique per process: processes sharing the folder never write one
    // temporary file together.
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes).and_then(|()| f.sync_all())?;
    std::fs::rename(&tmp, path)?;
    // The rename itself must survive a power cut.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

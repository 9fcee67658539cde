//! A file followed by path, as `tail -F` does: the engine's `file(follow:
//! true)` source and the shipper's `type: file` tailer both read through
//! [`TailedFile`].
//!
//! - A file is known by device and inode ([`FileId`]), not by name.
//! - **Truncation** (copytruncate): the file is shorter than what was read;
//!   reading starts over at byte 0.
//! - **Rotation** (`mv app.log app.log.1`, a new `app.log`): the path names
//!   another file. The old one is read to its end through the open handle
//!   first, then the path is opened again from byte 0. A generation that
//!   sat at the path only between two looks (rotated twice meanwhile) is
//!   found beside it ([`rotated_siblings`]) and read before the new file.
//!
//! - **Inode reuse**: a deleted file's inode may be given to a new file. A
//!   [`Fingerprint`] of the first bytes, saved with a position, tells a new
//!   file on an old inode from the one the position belongs to (as Vector
//!   does), so the new file is read from its start.
//!
//! Reads are blocking `std::fs` reads of a regular file; async callers run
//! them off the reactor (see the engine's line reader).

use std::fs::{File, Metadata};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// How many earlier generations a followed file remembers, so a rotated
/// sibling already read is not read again.
const REMEMBERED_GENERATIONS: usize = 16;

/// A file's identity: device and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

impl FileId {
    #[cfg(unix)]
    pub fn of(m: &Metadata) -> FileId {
        use std::os::unix::fs::MetadataExt;
        FileId {
            dev: m.dev(),
            ino: m.ino(),
        }
    }

    /// Without inodes every file is the same one: rotation is not detected,
    /// truncation still is.
    #[cfg(not(unix))]
    pub fn of(_: &Metadata) -> FileId {
        FileId { dev: 0, ino: 0 }
    }
}

/// `DEV:INODE`, the key under which positions are saved.
impl std::fmt::Display for FileId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.dev, self.ino)
    }
}

/// A file's first [`FINGERPRINT_BYTES`] bytes, hashed (FNV-1a, stable across
/// builds: it is saved with positions).
pub type Fingerprint = u64;

/// How many leading bytes identify a file; a shorter file has no
/// fingerprint yet.
pub const FINGERPRINT_BYTES: usize = 256;

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// What the followed path turned out to be at the end of the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The path names another file now; the old one was read to its end and
    /// the new one is read from its start.
    Rotated,
    /// The file shrank below what was read: read again from its start.
    Truncated,
}

/// An open file, its identity, and how far it has been read.
#[derive(Debug)]
pub struct TailedFile {
    path: PathBuf,
    file: File,
    id: FileId,
    pos: u64,
    /// When the path was last seen naming the file being read.
    verified_at: SystemTime,
    /// Generations read before this one (most recent last).
    read_before: Vec<FileId>,
}

impl TailedFile {
    /// Opens `path` and positions it at `at`, or at 0 when the file is
    /// shorter than that (it was truncated since `at` was saved).
    pub fn open(path: impl Into<PathBuf>, at: u64) -> std::io::Result<TailedFile> {
        let path = path.into();
        let file = File::open(&path)?;
        let id = FileId::of(&file.metadata()?);
        let mut t = TailedFile {
            path,
            file,
            id,
            pos: 0,
            verified_at: SystemTime::now(),
            read_before: Vec::new(),
        };
        t.skip_to(at)?;
        Ok(t)
    }

    /// Reads on from `at`, or from 0 when the file is shorter than that.
    pub fn skip_to(&mut self, at: u64) -> std::io::Result<()> {
        let pos = if at <= self.file.metadata()?.len() {
            at
        } else {
            0
        };
        self.file.seek(SeekFrom::Start(pos))?;
        self.pos = pos;
        Ok(())
    }

    pub fn id(&self) -> FileId {
        self.id
    }

    /// A second handle on the file being read (the same open file, so the
    /// same one after a rename), for reads at offsets of its own.
    pub fn handle(&self) -> std::io::Result<File> {
        self.file.try_clone()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path this file was last seen under (after a rename, say).
    pub fn set_path(&mut self, path: PathBuf) {
        self.path = path;
    }

    /// Bytes read so far: the offset of the next byte.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// The fingerprint of this file's first bytes, without moving the read
    /// position; none while it is shorter than [`FINGERPRINT_BYTES`].
    pub fn fingerprint(&self) -> std::io::Result<Option<Fingerprint>> {
        let mut head = [0u8; FINGERPRINT_BYTES];
        let mut got = 0;
        while got < head.len() {
            let n = read_at(&self.file, &mut head[got..], got as u64)?;
            if n == 0 {
                return Ok(None);
            }
            got += n;
        }
        Ok(Some(fnv1a(&head)))
    }

    /// Reads what follows; 0 at the end of the data written so far.
    pub fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read(buf)?;
        self.pos += n as u64;
        Ok(n)
    }

    /// Whether the file was truncated below what was read; if so, reading
    /// starts over at byte 0.
    pub fn check_truncated(&mut self) -> std::io::Result<bool> {
        if self.file.metadata()?.len() >= self.pos {
            return Ok(false);
        }
        self.file.seek(SeekFrom::Start(0))?;
        self.pos = 0;
        Ok(true)
    }

    /// At the end of the data: whether the file was truncated or the path
    /// rotated to another file, and reading starts over (from byte 0 of the
    /// same or of the new file). A rotated file with data left to read is
    /// read first; a path missing for a moment (between the rename and the
    /// new file) is waited for.
    pub fn check(&mut self) -> std::io::Result<Option<Change>> {
        if self.check_truncated()? {
            return Ok(Some(Change::Truncated));
        }
        let named = match std::fs::metadata(&self.path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let named_id = FileId::of(&named);
        if named_id == self.id {
            self.verified_at = SystemTime::now();
            return Ok(None);
        }
        // The rotated file may have got a last write after our read.
        if self.file.metadata()?.len() > self.pos {
            return Ok(None);
        }
        if self.read_before.len() == REMEMBERED_GENERATIONS {
            self.read_before.remove(0);
        }
        self.read_before.push(self.id);
        // A generation never seen at the path comes first; the path's file
        // is read from its start after it.
        let unseen = rotated_siblings(&self.path, self.verified_at)
            .into_iter()
            .map(|(p, m)| (p, FileId::of(&m)))
            .find(|(_, id)| *id != named_id && !self.read_before.contains(id));
        let file = match &unseen {
            Some((p, _)) => File::open(p)?,
            None => File::open(&self.path)?,
        };
        self.id = FileId::of(&file.metadata()?);
        self.file = file;
        self.pos = 0;
        if unseen.is_none() {
            self.verified_at = SystemTime::now();
        }
        Ok(Some(Change::Rotated))
    }
}

/// Files beside `path` named like its rotated generations (`app.log.1`,
/// `app.log-20261203`, `app.log_old`; compressed ones skipped) and written
/// since `since` (less a second for coarse clocks), oldest first: the
/// candidates for a generation that was rotated away before a reader saw it
/// at `path`. Callers skip the generations they have read.
pub fn rotated_siblings(path: &Path, since: SystemTime) -> Vec<(PathBuf, Metadata)> {
    const COMPRESSED: [&str; 5] = [".gz", ".bz2", ".xz", ".zst", ".zip"];
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return Vec::new();
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let since = since.checked_sub(Duration::from_secs(1)).unwrap_or(since);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(PathBuf, Metadata)> = entries
        .flatten()
        .filter_map(|e| {
            let file = e.file_name();
            let file = file.to_str()?;
            let rest = file.strip_prefix(name)?;
            if !rest.starts_with(['.', '-', '_']) || COMPRESSED.iter().any(|c| file.ends_with(c)) {
                return None;
            }
            let meta = std::fs::metadata(e.path()).ok()?;
            (meta.is_file() && meta.modified().ok()? >= since).then(|| (e.path(), meta))
        })
        .collect();
    out.sort_by_key(|(_, m)| m.modified().ok());
    out
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

#[cfg(not(unix))]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, offset)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn read_all(t: &mut TailedFile) -> String {
        let mut out = Vec::new();
        let mut buf = [0u8; 7];
        loop {
            let n = t.read(&mut buf).unwrap_or_else(|e| panic!("{e}"));
            if n == 0 {
                return String::from_utf8_lossy(&out).into_owned();
            }
            out.extend_from_slice(&buf[..n]);
        }
    }

    fn append(path: &Path, text: &str) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap_or_else(|e| panic!("{e}"));
        f.write_all(text.as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn follows_truncation_and_rotation_without_losing_a_line() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("app.log");
        append(&path, "one\ntwo\n");
        let mut t = TailedFile::open(&path, 0).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read_all(&mut t), "one\ntwo\n");
        assert_eq!(t.check().ok(), Some(None));

        // copytruncate, then a shorter write: starts over.
        std::fs::write(&path, "").unwrap_or_else(|e| panic!("{e}"));
        append(&path, "three\n");
        assert_eq!(t.check().ok(), Some(Some(Change::Truncated)));
        assert_eq!(read_all(&mut t), "three\n");

        // Rotation with a last write to the old file after the rename: the
        // old file's tail comes first, then the new file from its start.
        let old = dir.path().join("app.log.1");
        std::fs::rename(&path, &old).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.check().ok(), Some(None), "path missing for a moment");
        append(&path, "five\n");
        append(&old, "four\n");
        assert_eq!(t.check().ok(), Some(None), "old file has data left");
        assert_eq!(read_all(&mut t), "four\n");
        assert_eq!(t.check().ok(), Some(Some(Change::Rotated)));
        assert_eq!(t.position(), 0);
        assert_eq!(read_all(&mut t), "five\n");
        assert_eq!(t.position(), 5);
    }

    #[test]
    fn a_generation_rotated_away_between_two_looks_is_read_before_the_new_file() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("app.log");
        // An old generation, written long ago: never read again.
        let ancient = dir.path().join("app.log.9");
        append(&ancient, "ancient\n");
        std::fs::File::options()
            .write(true)
            .open(&ancient)
            .and_then(|f| f.set_modified(SystemTime::now() - Duration::from_secs(3600)))
            .unwrap_or_else(|e| panic!("{e}"));
        append(&path, "one\n");
        let mut t = TailedFile::open(&path, 0).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read_all(&mut t), "one\n");
        assert_eq!(t.check().ok(), Some(None));
        // Two rotations before the next look; a compressed copy beside.
        let rename = |to: &str| {
            std::fs::rename(&path, dir.path().join(to)).unwrap_or_else(|e| panic!("{e}"))
        };
        append(&path, "two\n");
        rename("app.log.1");
        append(&path, "three\n");
        rename("app.log.2");
        append(&path, "four\n");
        append(&dir.path().join("app.log.3.gz"), "zipped\n");
        assert_eq!(read_all(&mut t), "two\n");
        assert_eq!(t.check().ok(), Some(Some(Change::Rotated)));
        assert_eq!(read_all(&mut t), "three\n", "the unseen generation");
        assert_eq!(t.check().ok(), Some(Some(Change::Rotated)));
        assert_eq!(read_all(&mut t), "four\n", "then the path's file");
        assert_eq!(t.check().ok(), Some(None));
        append(&path, "five\n");
        assert_eq!(read_all(&mut t), "five\n");
        assert_eq!(t.check().ok(), Some(None), "nothing read twice");
    }

    #[test]
    fn a_saved_position_past_the_end_starts_over() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("a.log");
        append(&path, "abc\ndef\n");
        let mut t = TailedFile::open(&path, 4).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read_all(&mut t), "def\n");
        let mut t = TailedFile::open(&path, 100).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.position(), 0);
        assert_eq!(read_all(&mut t), "abc\ndef\n");
        let meta = std::fs::metadata(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.id(), FileId::of(&meta));
        assert_eq!(t.id().to_string(), format!("{}:{}", t.id().dev, t.id().ino));
    }

    #[test]
    fn fingerprints_tell_files_apart_without_moving_the_position() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (a, b) = (dir.path().join("a.log"), dir.path().join("b.log"));
        append(&a, "short\n");
        let mut t = TailedFile::open(&a, 0).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.fingerprint().ok(), Some(None), "too short to tell");
        append(&a, &"x".repeat(300));
        append(&b, &format!("short\n{}", "x".repeat(300)));
        let mut buf = [0u8; 3];
        assert_eq!(t.read(&mut buf).ok(), Some(3));
        let fa = t.fingerprint().ok().flatten();
        assert!(fa.is_some());
        assert_eq!(t.position(), 3);
        assert_eq!(read_all(&mut t).len(), 303, "reading goes on where it was");
        let tb = TailedFile::open(&b, 0).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(tb.fingerprint().ok().flatten(), fa, "same first bytes");
        std::fs::write(&b, "other\n".repeat(60)).unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(tb.fingerprint().ok().flatten(), fa);
    }
}

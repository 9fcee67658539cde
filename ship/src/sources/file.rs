//! `type: file`: tails every file matching the source's glob patterns.
//!
//! - Files are read through the engine's [`TailedFile`] (in `weir-formats`)
//!   and tracked by device and inode, so a **rename rotation**
//!   (`app.log` → `app.log.1`, new `app.log`) keeps reading the old file to
//!   its end through the open handle and starts the new one from byte 0;
//!   a generation rotated away before a scan saw it is found beside the path.
//! - A file that shrinks was **truncated** (copytruncate): reading restarts at
//!   byte 0 (lines written between the copy and the truncation are the
//!   rotating tool's to keep).
//! - **Positions** are saved per inode in `STATE_DIR/positions-NAME.json`, and
//!   only up to lines whose events are confirmed by Kafka or in the spool: a
//!   restart neither loses nor repeats lines (except those in flight at a
//!   crash, which are sent again).
//! - **Multi-line** events are joined before shipping (see [`Multiline`]).

use super::multiline::Multiline;
use super::SourceCtx;
use crate::config::ReadFrom;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::oneshot;
use weir_formats::tail::{rotated_siblings, FileId, Fingerprint, TailedFile};

/// Largest read per file per round (about 2,000 typical lines: one batch).
const READ_CHUNK: usize = 512 << 10;
/// A file gone from the globs is forgotten after this long without data.
const FORGET_AFTER: Duration = Duration::from_secs(5);

#[derive(Debug, Default, Serialize, Deserialize)]
struct Positions {
    /// By `DEV:INODE`.
    files: BTreeMap<String, Saved>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Saved {
    path: String,
    offset: u64,
    /// The file's first bytes, hashed (see `weir_formats::tail`): a new file
    /// on a reused inode does not take this position.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fingerprint: Option<Fingerprint>,
}

/// Where reading a newly found file starts: at its saved position, unless
/// the file shrank below it or is another file on the same inode (its
/// fingerprint differs, or it is now too short to have one); a file never
/// seen starts at its end only on the first scan with `read_from: end`.
fn start_offset(
    saved: Option<&Saved>,
    len: u64,
    fingerprint: Option<Fingerprint>,
    first_scan: bool,
    read_from: ReadFrom,
) -> u64 {
    match saved {
        Some(s) if s.fingerprint.is_some() && s.fingerprint != fingerprint => 0,
        Some(s) if s.offset <= len => s.offset,
        Some(_) => 0,
        None if first_scan && read_from == ReadFrom::End => len,
        None => 0,
    }
}

struct Tracked {
    tail: TailedFile,
    /// Of the file's first bytes, once it has enough of them (again after a
    /// truncation).
    fingerprint: Option<Fingerprint>,
    /// Offset of the first byte of `partial` (the file's read position is
    /// this plus `partial`'s length).
    read_at: u64,
    partial: Vec<u8>,
    /// Sent batches: (offset up to which lines are in the batch, its ack).
    pending: VecDeque<(u64, Option<oneshot::Receiver<bool>>)>,
    committed: u64,
    last_data: Instant,
    in_globs: bool,
    multiline: Option<Multiline>,
    /// Offset where the pending multi-line event starts.
    multiline_start: u64,
}

pub async fn run(mut ctx: SourceCtx) -> Result<(), crate::ShipError> {
    let name = ctx.cfg.name.clone();
    std::fs::create_dir_all(&ctx.state_dir).map_err(|e| {
        crate::ShipError::io(format!("cannot create {}", ctx.state_dir.display()), e)
    })?;
    let pos_path = ctx.state_dir.join(format!(
        "positions-{}.json",
        name.replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_")
    ));
    let mut saved: Positions = std::fs::read(&pos_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let mut tracked: HashMap<String, Tracked> = HashMap::new();
    let mut first_scan = true;
    let mut dirty = false;
    let mut last_save = Instant::now();
    let mut previous_scan = SystemTime::now();
    loop {
        let stopping = ctx.cancel.is_cancelled();
        let scan = SystemTime::now();
        discover(&ctx, &mut tracked, &saved, first_scan, previous_scan);
        previous_scan = scan;
        first_scan = false;
        let mut got_data = false;
        for (key, t) in tracked.iter_mut() {
            match read_some(t) {
                Ok(Some(lines)) => {
                    got_data = true;
                    send(&mut ctx, t, lines).await;
                }
                Ok(None) => {}
                Err(e) => {
                    ctx.metrics.errors.with_label_values(&[&name, "read"]).inc();
                    tracing::warn!(source = %name, file = %t.tail.path().display(), "read failed: {e}");
                }
            }
            let flush = if stopping {
                t.multiline.as_mut().and_then(Multiline::flush)
            } else {
                t.multiline.as_mut().and_then(Multiline::stale)
            };
            if let Some(ev) = flush {
                let rx = ctx.send_lines([ev.as_str()], true).await;
                t.pending.push_back((t.read_at, rx));
            }
            if commit_acks(t, &name) {
                saved.files.insert(key.clone(), t.saved());
                dirty = true;
            }
        }
        // Forget files rotated away and read to their end.
        let gone: Vec<String> = tracked
            .iter()
            .filter(|(_, t)| {
                !t.in_globs
                    && t.pending.is_empty()
                    && t.partial.is_empty()
                    && !t.multiline.as_ref().is_some_and(Multiline::is_pending)
                    && t.last_data.elapsed() >= FORGET_AFTER
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in gone {
            tracked.remove(&k);
            saved.files.remove(&k);
            dirty = true;
        }
        if dirty && (last_save.elapsed() >= Duration::from_secs(1) || stopping) {
            save(&pos_path, &saved);
            dirty = false;
            last_save = Instant::now();
        }
        if stopping {
            return finish(&mut tracked, &mut saved, &pos_path, &name).await;
        }
        if !got_data {
            tokio::select! {
                _ = ctx.cancel.cancelled() => {}
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
    }
}

/// Finds files matching the globs; opens new ones at their saved position.
/// A file new at a glob path after the first scan means a rotation: its
/// rotated siblings written since the previous scan are read too, so a
/// generation that lived at the path only between two scans (rotated twice
/// while the agent was busy) is not lost. Older generations were written
/// before the previous scan (a file is forgotten only [`FORGET_AFTER`] after
/// its last data), so they do not match.
fn discover(
    ctx: &SourceCtx,
    tracked: &mut HashMap<String, Tracked>,
    saved: &Positions,
    first_scan: bool,
    previous_scan: SystemTime,
) {
    for t in tracked.values_mut() {
        t.in_globs = false;
    }
    for pattern in &ctx.cfg.paths {
        let Ok(paths) = glob::glob(pattern) else {
            continue;
        };
        for path in paths.flatten() {
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            let key = FileId::of(&meta).to_string();
            if let Some(t) = tracked.get_mut(&key) {
                t.in_globs = true;
                t.tail.set_path(path);
                continue;
            }
            if track(ctx, tracked, saved, &path, &meta, first_scan, true) && !first_scan {
                for (sibling, meta) in rotated_siblings(&path, previous_scan) {
                    let key = FileId::of(&meta).to_string();
                    if !tracked.contains_key(&key)
                        && track(ctx, tracked, saved, &sibling, &meta, false, false)
                    {
                        tracing::info!(source = %ctx.cfg.name, file = %sibling.display(), "a generation rotated away before it was seen: reading it too");
                    }
                }
            }
        }
    }
}

/// Starts tailing `path` at its saved position (`in_globs`: found by the
/// globs, not beside them); false when it cannot be opened (or was replaced
/// meanwhile: seen next round).
fn track(
    ctx: &SourceCtx,
    tracked: &mut HashMap<String, Tracked>,
    saved: &Positions,
    path: &Path,
    meta: &std::fs::Metadata,
    first_scan: bool,
    in_globs: bool,
) -> bool {
    let key = FileId::of(meta).to_string();
    let mut tail = match TailedFile::open(path, 0) {
        Ok(t) if t.id().to_string() != key => return false,
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(file = %path.display(), "cannot open: {e}");
            return false;
        }
    };
    let fingerprint = tail.fingerprint().ok().flatten();
    let previous = saved.files.get(&key);
    let start = start_offset(
        previous,
        meta.len(),
        fingerprint,
        first_scan,
        ctx.cfg.read_from,
    );
    if previous.is_some_and(|p| p.offset > 0 && start == 0 && p.offset <= meta.len()) {
        tracing::info!(source = %ctx.cfg.name, file = %path.display(), "a new file on a reused inode: reading from its start");
    }
    if let Err(e) = tail.skip_to(start) {
        tracing::warn!(file = %path.display(), "cannot seek: {e}");
        return false;
    }
    let start = tail.position();
    tracing::info!(source = %ctx.cfg.name, file = %path.display(), offset = start, "tailing");
    tracked.insert(
        key,
        Tracked {
            tail,
            fingerprint,
            read_at: start,
            partial: Vec::new(),
            pending: VecDeque::new(),
            committed: start,
            last_data: Instant::now(),
            in_globs,
            multiline: ctx.cfg.multiline.as_ref().and_then(Multiline::new),
            multiline_start: start,
        },
    );
    true
}

impl Tracked {
    /// Its position to save, with the fingerprint (taken once the file has
    /// enough bytes).
    fn saved(&mut self) -> Saved {
        if self.fingerprint.is_none() {
            self.fingerprint = self.tail.fingerprint().ok().flatten();
        }
        Saved {
            path: self.tail.path().display().to_string(),
            offset: self.committed,
            fingerprint: self.fingerprint,
        }
    }
}

/// Complete lines read since last time, each with its start offset.
fn read_some(t: &mut Tracked) -> std::io::Result<Option<Vec<(u64, String)>>> {
    if t.tail.check_truncated()? {
        t.fingerprint = None;
        tracing::info!(file = %t.tail.path().display(), "truncated: reading from the start");
        t.read_at = 0;
        t.partial.clear();
        t.pending.clear();
        t.committed = 0;
        t.multiline_start = 0;
        if let Some(m) = t.multiline.as_mut() {
            m.flush();
        }
    }
    // Read straight after the partial line (the buffer is reused).
    let start = t.partial.len();
    t.partial.resize(start + READ_CHUNK, 0);
    let n = t.tail.read(&mut t.partial[start..]);
    t.partial.truncate(start + *n.as_ref().unwrap_or(&0));
    let n = n?;
    if n == 0 {
        return Ok(None);
    }
    t.last_data = Instant::now();
    let mut lines = Vec::new();
    let mut consumed = 0usize;
    while let Some(nl) = memchr::memchr(b'\n', &t.partial[consumed..]) {
        let raw = &t.partial[consumed..consumed + nl];
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let text = match std::str::from_utf8(raw) {
            Ok(s) => s.to_string(),
            Err(_) => String::from_utf8_lossy(raw).into_owned(),
        };
        lines.push((t.read_at + consumed as u64, text));
        consumed += nl + 1;
    }
    t.partial.drain(..consumed);
    t.read_at += consumed as u64;
    Ok(Some(lines))
}

/// Sends lines as events; positions move only up to whole events.
async fn send(ctx: &mut SourceCtx, t: &mut Tracked, lines: Vec<(u64, String)>) {
    if lines.is_empty() {
        return;
    }
    let (texts, safe) = match t.multiline.as_mut() {
        Some(m) => {
            let mut out = Vec::new();
            for (start, line) in lines {
                if m.starts(&line) || !m.is_pending() {
                    t.multiline_start = start;
                }
                if let Some(done) = m.push(&line) {
                    out.push(done);
                }
            }
            let safe = if m.is_pending() {
                t.multiline_start
            } else {
                t.read_at
            };
            (out, safe)
        }
        None => (lines.into_iter().map(|(_, l)| l).collect(), t.read_at),
    };
    if texts.is_empty() {
        return;
    }
    let rx = ctx.send_lines(texts.iter().map(String::as_str), true).await;
    t.pending.push_back((safe, rx));
}

/// Moves `committed` over acknowledged batches; true when it moved.
fn commit_acks(t: &mut Tracked, source: &str) -> bool {
    let mut moved = false;
    while let Some((offset, rx)) = t.pending.front_mut() {
        let done = match rx.as_mut() {
            None => Some(false),
            Some(rx) => match rx.try_recv() {
                Ok(ok) => Some(ok),
                Err(oneshot::error::TryRecvError::Empty) => None,
                Err(oneshot::error::TryRecvError::Closed) => Some(false),
            },
        };
        match done {
            None => break,
            Some(ok) => {
                if !ok {
                    tracing::error!(source, file = %t.tail.path().display(), "events up to offset {offset} were neither delivered nor spooled");
                }
                t.committed = *offset;
                moved = true;
                t.pending.pop_front();
            }
        }
    }
    moved
}

async fn finish(
    tracked: &mut HashMap<String, Tracked>,
    saved: &mut Positions,
    pos_path: &Path,
    source: &str,
) -> Result<(), crate::ShipError> {
    let deadline = Instant::now() + Duration::from_secs(30);
    for (key, t) in tracked.iter_mut() {
        while !t.pending.is_empty() && Instant::now() < deadline {
            commit_acks(t, source);
            if !t.pending.is_empty() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        saved.files.insert(key.clone(), t.saved());
    }
    save(pos_path, saved);
    Ok(())
}

fn save(path: &Path, p: &Positions) {
    let tmp = path.with_extension("json.tmp");
    let res = serde_json::to_vec(p)
        .map_err(std::io::Error::other)
        .and_then(|b| std::fs::write(&tmp, b))
        .and_then(|_| std::fs::rename(&tmp, path));
    if let Err(e) = res {
        tracing::error!("cannot save positions to {}: {e}", path.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved(offset: u64, fingerprint: Option<Fingerprint>) -> Saved {
        Saved {
            path: "a.log".into(),
            offset,
            fingerprint,
        }
    }

    #[test]
    fn saved_positions_hold_only_for_the_same_file() {
        let same = saved(500, Some(7));
        assert_eq!(
            start_offset(Some(&same), 900, Some(7), false, ReadFrom::Beginning),
            500
        );
        // Another file on the same inode, or one too short to tell: its start.
        assert_eq!(
            start_offset(Some(&same), 900, Some(8), false, ReadFrom::Beginning),
            0
        );
        assert_eq!(
            start_offset(Some(&same), 100, None, false, ReadFrom::Beginning),
            0
        );
        // Positions saved before fingerprints: as before.
        let old = saved(500, None);
        assert_eq!(
            start_offset(Some(&old), 900, Some(8), false, ReadFrom::Beginning),
            500
        );
        assert_eq!(
            start_offset(Some(&old), 100, Some(8), false, ReadFrom::Beginning),
            0
        );
        assert_eq!(start_offset(None, 900, None, true, ReadFrom::End), 900);
        assert_eq!(start_offset(None, 900, None, false, ReadFrom::End), 0);
    }
}

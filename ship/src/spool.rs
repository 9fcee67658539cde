//! The outage spool: events Kafka did not confirm in time are appended (and
//! fsynced) to segment files in a folder; a drainer sends the oldest segment
//! again once the broker answers, and deletes it when every event of it is
//! confirmed. Beyond `max_bytes` the oldest segment is dropped and counted.

use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// One spooled message.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Spooled {
    pub topic: String,
    pub source: String,
    pub payload: String,
}

const SEGMENT_BYTES: u64 = 16 << 20;

pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    state: Mutex<State>,
}

struct State {
    current: Option<(u64, File, u64)>,
    next_seq: u64,
}

impl Spool {
    pub fn open(dir: &Path, max_bytes: u64) -> std::io::Result<Spool> {
        std::fs::create_dir_all(dir)?;
        let next_seq = segments(dir)?.last().map(|(s, _)| s + 1).unwrap_or(1);
        Ok(Spool {
            dir: dir.to_path_buf(),
            max_bytes,
            state: Mutex::new(State {
                current: None,
                next_seq,
            }),
        })
    }

    /// Appends and fsyncs. Returns how many events older segments lost to
    /// the size limit, and the bytes now waiting.
    pub fn append(&self, items: &[Spooled]) -> std::io::Result<(u64, u64)> {
        let mut st = self
            .state
            .lock()
            .map_err(|_| std::io::Error::other("spool lock"))?;
        if st.current.as_ref().is_none_or(|c| c.2 >= SEGMENT_BYTES) {
            let seq = st.next_seq;
            st.next_seq += 1;
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.join(format!("segment-{seq:010}.ndjson")))?;
            st.current = Some((seq, f, 0));
        }
        let mut buf = Vec::new();
        for i in items {
            serde_json::to_writer(&mut buf, i)?;
            buf.push(b'\n');
        }
        if let Some((_, f, size)) = st.current.as_mut() {
            f.write_all(&buf)?;
            f.sync_data()?;
            *size += buf.len() as u64;
        }
        drop(st);
        self.enforce_limit()
    }

    /// The oldest segment, closing it for appends first if it is the current one.
    pub fn oldest(&self) -> std::io::Result<Option<(PathBuf, Vec<Spooled>)>> {
        let segs = segments(&self.dir)?;
        let Some((seq, path)) = segs.into_iter().next() else {
            return Ok(None);
        };
        if let Ok(mut st) = self.state.lock() {
            if st.current.as_ref().is_some_and(|c| c.0 == seq) {
                st.current = None;
            }
        }
        let f = File::open(&path)?;
        let mut items = Vec::new();
        for line in BufReader::new(f).lines() {
            let line = line?;
            if let Ok(i) = serde_json::from_str(&line) {
                items.push(i);
            }
        }
        Ok(Some((path, items)))
    }

    pub fn remove(&self, path: &Path) -> std::io::Result<()> {
        std::fs::remove_file(path)
    }

    /// Bytes waiting.
    pub fn bytes(&self) -> u64 {
        segments(&self.dir)
            .unwrap_or_default()
            .iter()
            .filter_map(|(_, p)| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }

    /// Drops the oldest segments (never the newest) while over `max_bytes`.
    fn enforce_limit(&self) -> std::io::Result<(u64, u64)> {
        let mut lost = 0;
        let segs = segments(&self.dir)?;
        let sizes: Vec<u64> = segs
            .iter()
            .map(|(_, p)| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
            .collect();
        let mut bytes: u64 = sizes.iter().sum();
        for ((_, oldest), size) in segs.iter().zip(&sizes).take(segs.len().saturating_sub(1)) {
            if bytes <= self.max_bytes {
                break;
            }
            lost += BufReader::new(File::open(oldest)?).lines().count() as u64;
            std::fs::remove_file(oldest)?;
            bytes -= size;
            tracing::error!(
                "the spool is over its limit of {} bytes: dropped {}",
                self.max_bytes,
                oldest.display()
            );
        }
        Ok((lost, bytes))
    }
}

fn segments(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        let seq = p
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("segment-"))
            .and_then(|n| n.strip_suffix(".ndjson"))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(s) = seq {
            out.push((s, p));
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_reads_back_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let item = |n: u32| Spooled {
            topic: "logs".into(),
            source: "app".into(),
            payload: format!("{{\"n\":{n}}}"),
        };
        {
            let s = Spool::open(dir.path(), 1 << 20).unwrap();
            s.append(&[item(1), item(2)]).unwrap();
        }
        let s = Spool::open(dir.path(), 1 << 20).unwrap();
        s.append(&[item(3)]).unwrap();
        let (p1, first) = s.oldest().unwrap().unwrap();
        assert_eq!(first, vec![item(1), item(2)]);
        s.remove(&p1).unwrap();
        let (p2, second) = s.oldest().unwrap().unwrap();
        assert_eq!(second, vec![item(3)]);
        s.remove(&p2).unwrap();
        assert!(s.oldest().unwrap().is_none());
        assert_eq!(s.bytes(), 0);
    }
}

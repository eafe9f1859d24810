//! The embedded store: an append-only journal plus a snapshot file, in `--data-dir`.
//!
//! Why our own and not an embedded database: the registry already batches writes (one batch per
//! writer turn), so group commit is one `write` + one `fdatasync` per batch; the data is a small
//! map of JSON records that the registry holds in memory anyway; and a journal of checksummed
//! frames has one recovery rule anyone can read: replay frames until the first one that is
//! short or fails its CRC (a torn write from a crash), cut the file there. No extra dependency,
//! no second copy of the data in a B-tree, nothing to tune.
//!
//! Files:
//! - `snapshot.json`: `{ "version": V, "records": [...] }`, written to a temp file, fsynced and
//!   renamed over the old one (atomic), then the directory fsynced.
//! - `journal.log`: frames `[len: u32 LE][crc32: u32 LE][json Batch]`. A frame whose version is
//!   not above the snapshot's is already in the snapshot and is skipped, so a crash between
//!   writing a snapshot and truncating the journal loses and duplicates nothing.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::{Batch, Committed, Loaded, Store, StoreError};
use crate::model::Stored;

/// Journal size past which the writer is asked to compact.
const COMPACT_BYTES: u64 = 64 << 20;
const SNAPSHOT: &str = "snapshot.json";
const JOURNAL: &str = "journal.log";

pub struct Journal {
    dir: PathBuf,
    file: File,
    len: u64,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct SnapshotFile {
    version: u64,
    records: Vec<Stored>,
}

impl Journal {
    /// Opens (creating if needed) the store in `dir` and reads everything it holds. A torn
    /// frame at the end of the journal, left by a crash mid-write, is cut off.
    pub fn open(dir: &Path) -> Result<(Journal, Loaded), StoreError> {
        let io = |source| StoreError::Io { path: dir.to_path_buf(), source };
        std::fs::create_dir_all(dir).map_err(io)?;
        let (mut version, mut records) = read_snapshot(dir)?;

        let path = dir.join(JOURNAL);
        let mut file = OpenOptions::new().read(true).append(true).create(true).open(&path).map_err(io)?;
        let snapshot_version = version;
        let mut good = 0u64;
        {
            let mut reader = BufReader::new(&mut file);
            while let Some((batch, size)) = read_frame(&mut reader) {
                good += size;
                if batch.version <= snapshot_version {
                    continue;
                }
                version = version.max(batch.version);
                for (key, op) in batch.ops {
                    match op {
                        Some(stored) => records.insert(key, stored),
                        None => records.remove(&key),
                    };
                }
            }
        }
        let on_disk = file.metadata().map_err(io)?.len();
        if on_disk > good {
            tracing::warn!(dir = %dir.display(), kept = good, dropped = on_disk - good, "journal ends in a torn write (crash during a write that was never acknowledged); cutting it off");
            file.set_len(good).map_err(io)?;
            file.sync_all().map_err(io)?;
        }
        file.seek(SeekFrom::End(0)).map_err(io)?;
        let loaded = Loaded { version, records: records.into_values().collect() };
        Ok((Journal { dir: dir.to_path_buf(), file, len: good }, loaded))
    }

    fn io(&self, source: std::io::Error) -> StoreError {
        StoreError::Io { path: self.dir.clone(), source }
    }
}

impl Store for Journal {
    fn commit(&mut self, batch: &Batch) -> Result<Committed, StoreError> {
        let body = serde_json::to_vec(batch).expect("records serialize");
        let mut frame = Vec::with_capacity(body.len() + 8);
        frame.extend_from_slice(&(body.len() as u32).to_le_bytes());
        frame.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
        frame.extend_from_slice(&body);
        self.file.write_all(&frame).map_err(|e| self.io(e))?;
        self.file.sync_data().map_err(|e| self.io(e))?;
        self.len += frame.len() as u64;
        Ok(Committed::at(batch.version))
    }

    fn wants_compaction(&self) -> bool {
        self.len > COMPACT_BYTES
    }

    fn compact(&mut self, version: u64, records: Vec<Stored>) -> Result<(), StoreError> {
        let io = |source| StoreError::Io { path: self.dir.clone(), source };
        let tmp = self.dir.join(format!("{SNAPSHOT}.tmp"));
        let mut f = File::create(&tmp).map_err(io)?;
        serde_json::to_writer(&mut f, &SnapshotFile { version, records })
            .map_err(|e| StoreError::Io { path: self.dir.clone(), source: e.into() })?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, self.dir.join(SNAPSHOT)).map_err(io)?;
        sync_dir(&self.dir).map_err(io)?;
        // Everything in the journal is now in the snapshot.
        self.file.set_len(0).map_err(io)?;
        self.file.sync_all().map_err(io)?;
        self.len = 0;
        Ok(())
    }
}

fn read_snapshot(dir: &Path) -> Result<(u64, BTreeMap<String, Stored>), StoreError> {
    let path = dir.join(SNAPSHOT);
    match File::open(&path) {
        Ok(f) => {
            let snap: SnapshotFile = serde_json::from_reader(BufReader::new(f))
                .map_err(|e| StoreError::Corrupt { path: path.clone(), message: e.to_string() })?;
            let records = snap.records.into_iter().map(|s| (crate::model::id_key(&s.instance.id), s)).collect();
            Ok((snap.version, records))
        }
        Err(e) if e.kind() == ErrorKind::NotFound => Ok((0, BTreeMap::new())),
        Err(source) => Err(StoreError::Io { path, source }),
    }
}

/// The next whole, intact frame and its size on disk; `None` at the end or at a torn frame.
fn read_frame(r: &mut impl Read) -> Option<(Batch, u64)> {
    let mut head = [0u8; 8];
    r.read_exact(&mut head).ok()?;
    let len = u32::from_le_bytes(head[..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(head[4..].try_into().ok()?);
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    if crc32fast::hash(&body) != crc {
        return None;
    }
    let batch = serde_json::from_slice(&body).ok()?;
    Some((batch, 8 + len as u64))
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Address, Health, Instance, Source};

    fn stored(id: &str) -> Stored {
        Stored {
            instance: Instance {
                id: id.into(),
                service: "web".into(),
                address: Address::Ip("10.0.0.1".parse().unwrap()),
                port: 80,
                tags: vec![],
                weight: 1,
                region: None,
                meta: Default::default(),
                checks: vec![],
                policy: Default::default(),
                source: Source::Api,
                node: None,
            },
            health: Health::default(),
        }
    }

    fn ids(l: &Loaded) -> Vec<String> {
        l.records.iter().map(|s| s.instance.id.clone()).collect()
    }

    #[test]
    fn commits_survive_reopen_and_deletes_stick() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, loaded) = Journal::open(dir.path()).unwrap();
        assert_eq!(loaded.records.len(), 0);
        j.commit(&Batch {
            version: 2,
            ops: vec![("a".into(), Some(stored("a"))), ("b".into(), Some(stored("b")))],
            ..Batch::default()
        })
        .unwrap();
        j.commit(&Batch { version: 3, ops: vec![("a".into(), None)], ..Batch::default() }).unwrap();
        drop(j);
        let (_, loaded) = Journal::open(dir.path()).unwrap();
        assert_eq!(ids(&loaded), ["b"]);
        assert_eq!(loaded.version, 3);
    }

    #[test]
    fn a_torn_tail_is_cut_and_what_came_before_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, _) = Journal::open(dir.path()).unwrap();
        j.commit(&Batch { version: 2, ops: vec![("a".into(), Some(stored("a")))], ..Batch::default() }).unwrap();
        drop(j);
        // A crash in the middle of the next frame: a header and half a body.
        let mut f = OpenOptions::new().append(true).open(dir.path().join(JOURNAL)).unwrap();
        f.write_all(&[200, 0, 0, 0, 1, 2, 3, 4, b'{']).unwrap();
        drop(f);
        let (mut j, loaded) = Journal::open(dir.path()).unwrap();
        assert_eq!(ids(&loaded), ["a"]);
        // The journal stays usable after the cut.
        j.commit(&Batch { version: 3, ops: vec![("c".into(), Some(stored("c")))], ..Batch::default() }).unwrap();
        drop(j);
        let (_, loaded) = Journal::open(dir.path()).unwrap();
        assert_eq!(ids(&loaded), ["a", "c"]);
    }

    #[test]
    fn compaction_keeps_everything_and_old_frames_are_not_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, _) = Journal::open(dir.path()).unwrap();
        j.commit(&Batch { version: 2, ops: vec![("a".into(), Some(stored("a")))], ..Batch::default() }).unwrap();
        j.commit(&Batch { version: 3, ops: vec![("b".into(), Some(stored("b")))], ..Batch::default() }).unwrap();
        j.compact(3, vec![stored("a"), stored("b")]).unwrap();
        j.commit(&Batch { version: 4, ops: vec![("a".into(), None)], ..Batch::default() }).unwrap();
        drop(j);
        let (_, loaded) = Journal::open(dir.path()).unwrap();
        assert_eq!(ids(&loaded), ["b"]);
        assert_eq!(loaded.version, 4);
    }
}

//! An in-memory [`SpoolFs`] for tests that a real disk cannot be made to
//! do on demand: each file has its live bytes (the page cache) and its
//! durable bytes (what an fsync forced to the disk); a directory entry is
//! durable once the directory was synced. A machine crash keeps only the
//! durable bytes of durable entries (plus, torn, part of what was not yet
//! synced); writes and fsyncs fail with the errno set ([`Faults`]); a bit can
//! be flipped on "disk". Modelled on the test file system of Vector's disk
//! buffer (live contents, durable snapshot, durable names).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::fs::{SpoolFile, SpoolFs};

/// Failures to inject; each stays until changed.
#[derive(Debug, Default, Clone, Copy)]
pub struct Faults {
    /// Appends, file creations and atomic writes fail with this errno.
    pub write: Option<i32>,
    /// fsyncs (of files and of the directory) fail with this errno.
    pub sync: Option<i32>,
    /// The next append writes only this many bytes, then fails with `EIO`
    /// (and so does the truncation that would undo it).
    pub tear_next_write: Option<usize>,
}

#[derive(Debug, Default)]
struct Data {
    live: Vec<u8>,
    durable: Vec<u8>,
}

#[derive(Debug, Default)]
struct Inner {
    files: HashMap<PathBuf, Arc<Mutex<Data>>>,
    durable_names: HashSet<PathBuf>,
    faults: Faults,
}

/// See the module docs; clones share one file system.
#[derive(Debug, Default, Clone)]
pub struct MemFs {
    inner: Arc<Mutex<Inner>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn errno(e: i32) -> std::io::Error {
    std::io::Error::from_raw_os_error(e)
}

impl MemFs {
    pub fn new() -> MemFs {
        MemFs::default()
    }

    pub fn set_faults(&self, faults: Faults) {
        lock(&self.inner).faults = faults;
    }

    pub fn faults(&self) -> Faults {
        lock(&self.inner).faults
    }

    /// The live bytes of `path`.
    pub fn contents(&self, path: &Path) -> Option<Vec<u8>> {
        let inner = lock(&self.inner);
        inner.files.get(path).map(|d| lock(d).live.clone())
    }

    /// Flips one bit of `path` on disk (live and durable bytes alike).
    pub fn flip(&self, path: &Path, byte: usize, bit: u8) {
        let inner = lock(&self.inner);
        if let Some(d) = inner.files.get(path) {
            let mut d = lock(d);
            if let Some(b) = d.live.get_mut(byte) {
                *b ^= 1 << (bit % 8);
            }
            if let Some(b) = d.durable.get_mut(byte) {
                *b ^= 1 << (bit % 8);
            }
        }
    }

    /// A machine crash: only durable entries survive, with their durable
    /// bytes and the first `torn` bytes of what was written but not synced.
    pub fn crash_machine(&self, torn: usize) {
        let mut inner = lock(&self.inner);
        let names = inner.durable_names.clone();
        inner.files.retain(|p, _| names.contains(p));
        for d in inner.files.values() {
            let mut d = lock(d);
            let keep = d.durable.len();
            let extra = d.live.len().saturating_sub(keep).min(torn);
            let mut kept = d.durable.clone();
            if extra > 0 && d.live.len() >= keep + extra {
                kept.extend_from_slice(&d.live[keep..keep + extra]);
            }
            d.durable.clone_from(&kept);
            d.live = kept;
        }
        inner.faults = Faults::default();
    }
}

#[derive(Debug)]
struct MemFile {
    fs: Arc<Mutex<Inner>>,
    data: Arc<Mutex<Data>>,
}

impl SpoolFile for MemFile {
    fn append(&self, bytes: &[u8]) -> std::io::Result<()> {
        let faults = {
            let mut inner = lock(&self.fs);
            let f = inner.faults;
            inner.faults.tear_next_write = None;
            f
        };
        if let Some(e) = faults.write {
            return Err(errno(e));
        }
        let mut d = lock(&self.data);
        if let Some(n) = faults.tear_next_write {
            d.live.extend_from_slice(&bytes[..n.min(bytes.len())]);
            drop(d);
            // The undoing truncation fails as well.
            lock(&self.fs).faults.tear_next_write = Some(0);
            return Err(errno(libc::EIO));
        }
        d.live.extend_from_slice(bytes);
        Ok(())
    }

    fn set_len(&self, len: u64) -> std::io::Result<()> {
        {
            let mut inner = lock(&self.fs);
            if inner.faults.tear_next_write == Some(0) {
                inner.faults.tear_next_write = None;
                return Err(errno(libc::EIO));
            }
        }
        let mut d = lock(&self.data);
        d.live.truncate(len as usize);
        let l = d.durable.len().min(len as usize);
        d.durable.truncate(l);
        Ok(())
    }

    fn sync_data(&self) -> std::io::Result<()> {
        if let Some(e) = lock(&self.fs).faults.sync {
            return Err(errno(e));
        }
        let mut d = lock(&self.data);
        d.durable = d.live.clone();
        Ok(())
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        let d = lock(&self.data);
        let at = offset as usize;
        let src = d
            .live
            .get(at..at + buf.len())
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::UnexpectedEof))?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

impl SpoolFs for MemFs {
    fn create_dir_all(&self, _dir: &Path) -> std::io::Result<()> {
        Ok(())
    }

    fn list(&self, dir: &Path) -> std::io::Result<Vec<String>> {
        let inner = lock(&self.inner);
        Ok(inner
            .files
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name()?.to_str().map(str::to_string))
            .collect())
    }

    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        self.contents(path)
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
    }

    fn create_new(&self, path: &Path) -> std::io::Result<Arc<dyn SpoolFile>> {
        let mut inner = lock(&self.inner);
        if let Some(e) = inner.faults.write {
            return Err(errno(e));
        }
        if inner.files.contains_key(path) {
            return Err(std::io::ErrorKind::AlreadyExists.into());
        }
        let data = Arc::new(Mutex::new(Data::default()));
        inner.files.insert(path.to_path_buf(), data.clone());
        Ok(Arc::new(MemFile {
            fs: self.inner.clone(),
            data,
        }))
    }

    fn open(&self, path: &Path) -> std::io::Result<Arc<dyn SpoolFile>> {
        let inner = lock(&self.inner);
        let data = inner
            .files
            .get(path)
            .cloned()
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))?;
        Ok(Arc::new(MemFile {
            fs: self.inner.clone(),
            data,
        }))
    }

    fn remove(&self, path: &Path) -> std::io::Result<()> {
        let mut inner = lock(&self.inner);
        inner.durable_names.remove(path);
        inner
            .files
            .remove(path)
            .map(|_| ())
            .ok_or_else(|| std::io::ErrorKind::NotFound.into())
    }

    fn write_atomic(&self, path: &Path, data: &[u8]) -> std::io::Result<()> {
        let mut inner = lock(&self.inner);
        if let Some(e) = inner.faults.write.or(inner.faults.sync) {
            return Err(errno(e));
        }
        let d = Data {
            live: data.to_vec(),
            durable: data.to_vec(),
        };
        inner
            .files
            .insert(path.to_path_buf(), Arc::new(Mutex::new(d)));
        inner.durable_names.insert(path.to_path_buf());
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        let mut inner = lock(&self.inner);
        if let Some(e) = inner.faults.sync {
            return Err(errno(e));
        }
        let names: Vec<PathBuf> = inner
            .files
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .cloned()
            .collect();
        inner.durable_names.extend(names);
        Ok(())
    }
}

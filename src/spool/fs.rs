//! The spool's filesystem seam: every file operation the spool makes goes
//! through [`SpoolFs`], so that tests can run the real spool on a file
//! system that loses unsynced bytes at a crash, tears writes, flips bits
//! and fails fsync or writes (`ENOSPC`, `EIO`) on demand (see the model
//! test in `spool/model.rs`). [`OsFs`] is the real one.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

/// An open segment file: appended to by the writer, read by the replayer,
/// synced by the syncer.
pub trait SpoolFile: Send + Sync + std::fmt::Debug {
    /// Appends `data` at the end (one `write(2)` where the system allows).
    fn append(&self, data: &[u8]) -> std::io::Result<()>;
    /// Cuts the file to `len` bytes.
    fn set_len(&self, len: u64) -> std::io::Result<()>;
    /// Forces the file's data to the disk.
    fn sync_data(&self) -> std::io::Result<()>;
    /// Reads exactly `buf.len()` bytes at `offset`.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()>;
}

/// The file operations of the spool.
pub trait SpoolFs: Send + Sync + std::fmt::Debug {
    fn create_dir_all(&self, dir: &Path) -> std::io::Result<()>;
    /// Names of the entries of `dir`.
    fn list(&self, dir: &Path) -> std::io::Result<Vec<String>>;
    /// The whole content of a file.
    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>>;
    /// Creates a file that must not exist yet, for appending.
    fn create_new(&self, path: &Path) -> std::io::Result<Arc<dyn SpoolFile>>;
    /// Opens an existing file for reading.
    fn open(&self, path: &Path) -> std::io::Result<Arc<dyn SpoolFile>>;
    fn remove(&self, path: &Path) -> std::io::Result<()>;
    /// Replaces `path` with `data` atomically and durably (temporary file,
    /// fsync, rename).
    fn write_atomic(&self, path: &Path, data: &[u8]) -> std::io::Result<()>;
    /// Makes the directory's entries (created, renamed, removed files)
    /// durable.
    fn sync_dir(&self, dir: &Path) -> std::io::Result<()>;
}

/// The operating system's file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsFs;

#[derive(Debug)]
struct OsFile(File);

impl SpoolFile for OsFile {
    fn append(&self, data: &[u8]) -> std::io::Result<()> {
        (&self.0).write_all(data)
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.0.set_len(len)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        self.0.sync_data()
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.0.read_exact_at(buf, offset)
    }
}

impl SpoolFs for OsFs {
    fn create_dir_all(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)
    }

    fn list(&self, dir: &Path) -> std::io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            if let Some(name) = entry?.file_name().to_str() {
                names.push(name.to_string());
            }
        }
        Ok(names)
    }

    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn create_new(&self, path: &Path) -> std::io::Result<Arc<dyn SpoolFile>> {
        let f = OpenOptions::new()
            .create_new(true)
            .append(true)
            .read(true)
            .open(path)?;
        Ok(Arc::new(OsFile(f)))
    }

    fn open(&self, path: &Path) -> std::io::Result<Arc<dyn SpoolFile>> {
        Ok(Arc::new(OsFile(File::open(path)?)))
    }

    fn remove(&self, path: &Path) -> std::io::Result<()> {
        std::fs::remove_file(path)
    }

    fn write_atomic(&self, path: &Path, data: &[u8]) -> std::io::Result<()> {
        let tmp = path.with_extension("tmp");
        let mut f = File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_data()?;
        std::fs::rename(&tmp, path)
    }

    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        File::open(dir)?.sync_all()
    }
}

/// Whether an I/O error means the disk is full (rather than failing).
pub fn is_disk_full(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::ENOSPC) || e.raw_os_error() == Some(libc::EDQUOT)
}

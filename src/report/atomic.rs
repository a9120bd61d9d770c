//! `--output FILE` written all-or-nothing, so a cron job, the textfile collector or a CI step never
//! reads half a report, and a failed or interrupted run leaves the previous report in place.
//!
//! The report goes to a hidden temp file next to FILE (same filesystem, so the rename is atomic);
//! [`AtomicFile::commit`] flushes, fsyncs and renames it over FILE, then fsyncs the directory. Dropped
//! without a commit, the temp file is removed and FILE is untouched.
//!
//! A [`ReportWriter`](super::ReportWriter) owns its output and consumes it at `finish`, so the caller
//! keeps the `AtomicFile` and hands the writer an [`AtomicFileHandle`]; both write to the same temp file:
//!
//! ```no_run
//! # use recon::report::*;
//! # fn demo(path: &std::path::Path, options: ReportOptions, run: &RunInfo) -> std::io::Result<()> {
//! let file = AtomicFile::create(path)?;
//! let report = writer(options, Box::new(file.handle()));
//! // ... report.drift(&d)? for each drifted key ...
//! report.finish(&Default::default(), &Default::default(), run)?;
//! file.commit()?; // only now does `path` change
//! # Ok(()) }
//! ```

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use tempfile::NamedTempFile;

/// The temp file, until it is committed (then `None`). Dropping the last owner of a `Some` removes it.
type Pending = Arc<Mutex<Option<BufWriter<Sink>>>>;

/// Where the bytes go: a temp file renamed over FILE at commit, or, when FILE exists and is not a
/// regular file (`/dev/null`, a FIFO, `/dev/stdout`), FILE itself. Renaming over a device would
/// replace it: `--output /dev/null` run as root once turned /dev/null into a regular file.
enum Sink {
    Temp(NamedTempFile),
    Direct(File),
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Temp(file) => file.write(buf),
            Sink::Direct(file) => file.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Temp(file) => file.flush(),
            Sink::Direct(file) => file.flush(),
        }
    }
}

pub struct AtomicFile {
    path: PathBuf,
    pending: Pending,
}

/// Writes into an [`AtomicFile`]'s temp file; cannot commit it.
pub struct AtomicFileHandle {
    pending: Pending,
}

impl AtomicFile {
    /// Creates the temp file next to `path`. An existing file's permissions carry over to the new
    /// content; a new file gets the usual `0666 & !umask` rather than a temp file's private 0600, so a
    /// textfile collector running as another user can still read it.
    pub fn create(path: &Path) -> io::Result<Self> {
        if std::fs::metadata(path).is_ok_and(|meta| !meta.is_file()) {
            if std::fs::metadata(path)?.is_dir() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{} is a directory", path.display()),
                ));
            }
            let direct = std::fs::OpenOptions::new().write(true).open(path)?;
            return Ok(AtomicFile {
                path: path.to_path_buf(),
                pending: Arc::new(Mutex::new(Some(BufWriter::with_capacity(
                    64 * 1024,
                    Sink::Direct(direct),
                )))),
            });
        }
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let name = path.file_name().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} does not name a file", path.display()),
            )
        })?;
        let mut prefix = std::ffi::OsString::from(".");
        prefix.push(name);
        prefix.push(".");
        let mut builder = tempfile::Builder::new();
        builder.prefix(&prefix).suffix(".tmp");
        let existing = std::fs::metadata(path).ok().map(|meta| meta.permissions());
        #[cfg(unix)]
        if existing.is_none() {
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(std::fs::Permissions::from_mode(0o666));
        }
        let temp = builder.tempfile_in(dir)?;
        if let Some(permissions) = existing {
            temp.as_file().set_permissions(permissions)?;
        }
        Ok(AtomicFile {
            path: path.to_path_buf(),
            pending: Arc::new(Mutex::new(Some(BufWriter::with_capacity(64 * 1024, Sink::Temp(temp))))),
        })
    }

    /// Another writer into the same temp file, for [`writer`](super::writer).
    pub fn handle(&self) -> AtomicFileHandle {
        AtomicFileHandle {
            pending: Arc::clone(&self.pending),
        }
    }

    /// Makes the written content FILE's content, durably. Writes through a handle after this fail.
    pub fn commit(self) -> io::Result<()> {
        let buffered = lock(&self.pending)
            .take()
            .ok_or_else(|| io::Error::other("report file already committed"))?;
        match buffered.into_inner().map_err(|e| e.into_error())? {
            Sink::Temp(temp) => {
                temp.as_file().sync_all()?;
                temp.persist(&self.path).map_err(|e| e.error)?;
                sync_parent(&self.path)
            }
            Sink::Direct(_) => Ok(()),
        }
    }
}

fn lock(pending: &Pending) -> MutexGuard<'_, Option<BufWriter<Sink>>> {
    // A panic while writing leaves a temp file that will never be committed; writing on is harmless.
    pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write_pending(pending: &Pending, buf: &[u8]) -> io::Result<usize> {
    match lock(pending).as_mut() {
        Some(file) => file.write(buf),
        None => Err(io::Error::other("report file already committed")),
    }
}

fn flush_pending(pending: &Pending) -> io::Result<()> {
    match lock(pending).as_mut() {
        Some(file) => file.flush(),
        None => Ok(()),
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        write_pending(&self.pending, buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        flush_pending(&self.pending)
    }
}

impl Write for AtomicFileHandle {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        write_pending(&self.pending, buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        flush_pending(&self.pending)
    }
}

/// The rename is only durable once the directory entry is.
fn sync_parent(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        File::open(dir)?.sync_all()?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leftovers(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".tmp"))
            .collect()
    }

    #[test]
    fn a_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        assert!(AtomicFile::create(&sub).is_err());
        assert!(sub.is_dir());
    }

    #[test]
    fn a_device_or_fifo_is_written_in_place_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("report.pipe");
        let status = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(status.success());
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::read_to_string(fifo).unwrap())
        };
        let file = AtomicFile::create(&fifo).unwrap();
        file.handle().write_all(b"through the pipe\n").unwrap();
        file.commit().unwrap();
        assert_eq!(reader.join().unwrap(), "through the pipe\n");
        use std::os::unix::fs::FileTypeExt;
        assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo(), "still a FIFO");
        assert!(leftovers(dir.path()).is_empty());
    }

    #[test]
    fn commit_replaces_the_file_in_one_step() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("recon.prom");
        std::fs::write(&path, "old\n").unwrap();

        let file = AtomicFile::create(&path).unwrap();
        let mut handle = file.handle();
        handle.write_all(b"new ").unwrap();
        handle.write_all(b"report\n").unwrap();
        drop(handle);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old\n");
        assert_eq!(leftovers(dir.path()).len(), 1, "the temp file sits next to FILE");

        file.commit().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new report\n");
        assert!(leftovers(dir.path()).is_empty());
    }

    #[test]
    fn dropping_without_commit_leaves_the_old_file_and_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.json");
        std::fs::write(&path, "previous").unwrap();
        {
            let mut file = AtomicFile::create(&path).unwrap();
            let mut handle = file.handle();
            file.write_all(b"half a rep").unwrap();
            handle.write_all(b"ort").unwrap();
            handle.flush().unwrap();
        }
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "previous");
        assert!(leftovers(dir.path()).is_empty());
    }

    #[test]
    fn writes_after_commit_fail_instead_of_vanishing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.md");
        let file = AtomicFile::create(&path).unwrap();
        let mut late = file.handle();
        file.commit().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
        assert!(late.write_all(b"x").is_err());
    }

    #[cfg(unix)]
    #[test]
    fn permissions_follow_the_existing_file_or_the_umask() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let kept = dir.path().join("kept.prom");
        std::fs::write(&kept, "").unwrap();
        std::fs::set_permissions(&kept, std::fs::Permissions::from_mode(0o640)).unwrap();
        AtomicFile::create(&kept).unwrap().commit().unwrap();
        let mode = std::fs::metadata(&kept).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);

        let fresh = dir.path().join("fresh.prom");
        AtomicFile::create(&fresh).unwrap().commit().unwrap();
        let mode = std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o666 & !umask(), "a fresh report gets the usual mode, not 0600");
    }

    /// The process umask, read without changing it (Linux reports it in /proc).
    #[cfg(unix)]
    fn umask() -> u32 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find_map(|l| l.strip_prefix("Umask:")).unwrap();
        u32::from_str_radix(line.trim(), 8).unwrap()
    }

    #[test]
    fn a_path_without_a_file_name_is_refused() {
        assert!(AtomicFile::create(Path::new("/")).is_err());
    }
}

//! Whole-or-nothing file writes: a temporary file beside the target,
//! synced, renamed over it, the directory synced.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use twinshield_shield_macros::diversify;

/// Temporary files made by this process so far: with the process id, a
/// name no other writer uses at the same time.
static TEMPORARIES: AtomicU64 = AtomicU64::new(0);

/// How many names are tried when a stale temporary (left by a crashed
/// process that had the same id) is in the way.
const NAME_ATTEMPTS: u32 = 16;

/// The step of a whole-or-nothing write that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteStep {
    /// Creating the temporary file beside the target (the directory is
    /// missing or not writable, the target has no file name).
    Create,
    /// Writing the bytes into the temporary file (the disk is full).
    Write,
    /// Syncing the temporary file to the disk.
    Sync,
    /// Renaming the temporary file over the target.
    Rename,
    /// Syncing the directory after the rename: the new file is in place,
    /// but a crash before the directory reaches the disk may bring the
    /// old one back.
    SyncDirectory,
}

/// Why a whole-or-nothing write failed. Up to [`WriteStep::Rename`] the
/// target is as it was and the temporary file is gone. The message shows
/// the operating system's reason, which is also the error's source.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {}: {source}", path.display())]
pub struct WriteError {
    /// The file that was to be written.
    pub path: PathBuf,
    /// The step that failed.
    pub step: WriteStep,
    /// What the operating system reported.
    #[source]
    pub source: io::Error,
}

#[diversify]
impl WriteError {
    fn new(path: &Path, step: WriteStep, source: io::Error) -> Self {
        WriteError {
            path: path.to_path_buf(),
            step,
            source,
        }
    }
}

/// Writes `bytes` to `path` whole or not at all, the file created with
/// permission bits `mode` (less the umask) when it is new. A crash at any
/// moment leaves the old file or the new one, never a mix of the two; on
/// error the temporary file is removed.
#[diversify]
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), WriteError> {
    let mut file = AtomicFile::create(path, mode)?;
    file.write_all(bytes)
        .map_err(|e| WriteError::new(path, WriteStep::Write, e))?;
    file.commit()
}

/// A file being written that replaces its target only when
/// [`AtomicFile::commit`] succeeds; dropped before, it is removed and the
/// target stays as it was. Its bytes go to `NAME.partial-PID-N` beside the
/// target (`.gitignore` knows `*.partial-*`).
#[derive(Debug)]
pub struct AtomicFile {
    target: PathBuf,
    temporary: PathBuf,
    /// `None` once committed.
    file: Option<File>,
}

#[diversify]
impl AtomicFile {
    /// Creates the temporary file for `target` in the target's directory,
    /// exclusively (it never opens a file that exists), with permission
    /// bits `mode` (less the umask; ignored where there are none).
    pub fn create(target: &Path, mode: u32) -> Result<Self, WriteError> {
        let fail = |e| WriteError::new(target, WriteStep::Create, e);
        let name = target.file_name().ok_or_else(|| {
            fail(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the path names no file",
            ))
        })?;
        let mut last = None;
        for _ in 0..NAME_ATTEMPTS {
            let n = TEMPORARIES.fetch_add(1, Ordering::Relaxed);
            let mut temp_name = name.to_os_string();
            temp_name.push(format!(".partial-{}-{n}", std::process::id()));
            let temporary = target.with_file_name(temp_name);
            match create_new(&temporary, mode) {
                Ok(file) => {
                    return Ok(AtomicFile {
                        target: target.to_path_buf(),
                        temporary,
                        file: Some(file),
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
                Err(e) => return Err(fail(e)),
            }
        }
        Err(fail(last.unwrap_or_else(|| {
            io::Error::from(io::ErrorKind::AlreadyExists)
        })))
    }

    /// Syncs the bytes written to the disk, renames the temporary file
    /// over the target and syncs the directory. On error before the
    /// rename, the temporary file is removed and the target is unchanged.
    pub fn commit(mut self) -> Result<(), WriteError> {
        let fail = |step, e| WriteError::new(&self.target, step, e);
        let Some(mut file) = self.file.take() else {
            return Ok(());
        };
        let synced = file
            .flush()
            .and_then(|()| file.sync_all())
            .map_err(|e| fail(WriteStep::Sync, e));
        drop(file);
        let renamed = synced.and_then(|()| {
            fs::rename(&self.temporary, &self.target).map_err(|e| fail(WriteStep::Rename, e))
        });
        if let Err(e) = renamed {
            let _ = fs::remove_file(&self.temporary);
            return Err(e);
        }
        sync_directory(&self.target).map_err(|e| fail(WriteStep::SyncDirectory, e))
    }
}

#[diversify]
impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.file {
            Some(f) => f.write(buf),
            None => Err(io::Error::other("the file was committed already")),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.file {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

#[diversify]
impl Drop for AtomicFile {
    fn drop(&mut self) {
        if let Some(file) = self.file.take() {
            drop(file);
            let _ = fs::remove_file(&self.temporary);
        }
    }
}

/// A new file at `path`, created exclusively with `mode`.
#[diversify]
fn create_new(path: &Path, mode: u32) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    options.open(path)
}

/// Syncs the directory holding `path`, so a rename in it is durable.
#[diversify]
fn sync_directory(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("twinshield-atrest-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    /// Names in `d` other than `keep`.
    fn others(d: &Path, keep: &str) -> Vec<String> {
        fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != keep)
            .collect()
    }

    #[test]
    fn a_write_replaces_the_file_whole_with_its_mode() {
        let d = dir("replace");
        let path = d.join("state.bin");
        write_atomic(&path, b"old", 0o600).unwrap();
        write_atomic(&path, b"new contents", 0o600).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new contents");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(others(&d, "state.bin").is_empty());
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn an_abandoned_write_leaves_the_old_file_and_no_temporary() {
        let d = dir("abandon");
        let path = d.join("out.csv");
        write_atomic(&path, b"old", 0o644).unwrap();
        {
            let mut f = AtomicFile::create(&path, 0o644).unwrap();
            f.write_all(b"half of the new").unwrap();
            assert_eq!(others(&d, "out.csv").len(), 1);
            let temp = &others(&d, "out.csv")[0];
            assert!(temp.starts_with("out.csv.partial-"), "{temp}");
        }
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert!(others(&d, "out.csv").is_empty());
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn a_failed_rename_removes_the_temporary_and_names_the_path() {
        let d = dir("rename");
        // The target is a directory that is not empty: the rename fails.
        let path = d.join("taken");
        fs::create_dir_all(path.join("inside")).unwrap();
        let e = write_atomic(&path, b"bytes", 0o600).unwrap_err();
        assert_eq!(e.step, WriteStep::Rename);
        assert_eq!(e.path, path);
        assert_eq!(
            e.to_string(),
            format!("cannot write {}: {}", path.display(), e.source)
        );
        assert!(std::error::Error::source(&e).is_some());
        assert!(others(&d, "taken").is_empty());
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn a_missing_directory_is_told_apart() {
        let d = dir("missing");
        let path = d.join("no/such/dir/file");
        let e = write_atomic(&path, b"bytes", 0o600).unwrap_err();
        assert_eq!(e.step, WriteStep::Create);
        assert_eq!(e.source.kind(), io::ErrorKind::NotFound);
        let e = write_atomic(Path::new("/"), b"bytes", 0o600).unwrap_err();
        assert_eq!(e.source.kind(), io::ErrorKind::InvalidInput);
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn a_stale_temporary_in_the_way_is_never_opened() {
        let d = dir("stale");
        let path = d.join("f");
        // Temporaries this process will try next, as a crashed process with
        // the same id could have left them.
        let next = TEMPORARIES.load(Ordering::Relaxed);
        for n in next..next + 4 {
            fs::write(
                d.join(format!("f.partial-{}-{n}", std::process::id())),
                b"stale",
            )
            .unwrap();
        }
        write_atomic(&path, b"fresh", 0o600).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"fresh");
        let _ = fs::remove_dir_all(&d);
    }

    /// The child of [`a_killed_writer_leaves_the_old_file_or_the_new`]:
    /// rewrites its target, alternating two large contents, until killed.
    #[test]
    #[ignore = "the child process of a_killed_writer_leaves_the_old_file_or_the_new"]
    fn killed_writer_child() {
        let Some(path) = std::env::var_os("TWINSHIELD_ATREST_CHILD") else {
            return;
        };
        let path = PathBuf::from(path);
        for i in 0u64.. {
            let fill = if i % 2 == 0 { b'a' } else { b'b' };
            write_atomic(&path, &vec![fill; 4 << 20], 0o600).unwrap();
        }
    }

    #[test]
    fn a_killed_writer_leaves_the_old_file_or_the_new() {
        let d = dir("killed");
        let path = d.join("big");
        write_atomic(&path, &vec![b'a'; 4 << 20], 0o600).unwrap();
        for round in 0..6u64 {
            let mut child = std::process::Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "file::tests::killed_writer_child", "--ignored"])
                .env("TWINSHIELD_ATREST_CHILD", &path)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(std::time::Duration::from_millis(40 + 37 * round));
            child.kill().unwrap();
            child.wait().unwrap();
            let bytes = fs::read(&path).unwrap();
            assert_eq!(bytes.len(), 4 << 20, "round {round}: a partial file");
            let first = bytes[0];
            assert!(first == b'a' || first == b'b');
            assert!(bytes.iter().all(|&b| b == first), "round {round}: a mix");
            // What the crash left beside it is a temporary, by its name.
            for name in others(&d, "big") {
                assert!(name.starts_with("big.partial-"), "{name}");
            }
        }
        let _ = fs::remove_dir_all(&d);
    }
}

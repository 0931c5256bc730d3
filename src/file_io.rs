//! One way to read a user's file and one way to write one, used by every loader, output and save.
//!
//! Reading: the path must name a regular file (a FIFO would block forever, a device such as
//! `/dev/zero` never ends, a folder is no file), and no more than a limit suited to the file's kind is
//! read — checked against the size the file reports *and* while reading, since some files report 0.
//!
//! Writing: into a temporary file beside the target, flushed and synced, then renamed over it. A full
//! disk, a read-only folder or a failing encoder leaves the old file as it was and no half-written one;
//! the error names the file. A target that is a link is followed, so the link stays and its target is
//! replaced; a target that is not a regular file (a device such as `/dev/full`) is refused.
//!
//! A leaf module, like `picture`: every layer may use it, it uses none of them.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// A file that could not be read or written: one line naming it and the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {reason}", path.display())]
pub struct FileError {
    pub path: PathBuf,
    pub reason: String,
}

fn fail(path: &Path, reason: impl std::fmt::Display) -> FileError {
    FileError {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// Limits on what is read from a user's file, by kind.
pub mod limit {
    /// A picture (PNG, JPEG): the decoder's own limits (16384², 1 GiB of pixels) apply after this.
    pub const PICTURE: u64 = 512 << 20;
    /// A tensor file read whole: replayed noise, a tensor image.
    pub const TENSORS: u64 = 1 << 30;
    /// A JSON configuration (`--config`, diffusers' `config.json`, `scheduler_config.json`).
    pub const CONFIG: u64 = 1 << 20;
    /// A project or the autosave (pictures embedded) and one autosaved result.
    pub const PROJECT: u64 = 1 << 30;
    /// A `.pt` checkpoint's pickle (`data.pkl`): a state dict's structure, not its tensors.
    pub const PICKLE: u64 = 256 << 20;
}

/// What kind of file `metadata` describes, for a refusal ("a FIFO", "a folder").
fn kind_of(metadata: &std::fs::Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = metadata.file_type();
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_char_device() || t.is_block_device() {
            return "a device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if metadata.is_dir() {
        "a folder"
    } else {
        "not a regular file"
    }
}

/// The error of a failed open or stat, in words (a link loop is not "no such file").
fn io_reason(e: &std::io::Error) -> String {
    #[cfg(unix)]
    if e.raw_os_error() == Some(libc::ELOOP) {
        return "a loop of symbolic links".into();
    }
    if e.kind() == std::io::ErrorKind::NotFound {
        return "no such file or folder".into();
    }
    e.to_string()
}

/// What `path` is (links followed), with a link loop said as such.
pub fn metadata(path: &Path) -> Result<std::fs::Metadata, FileError> {
    std::fs::metadata(path).map_err(|e| fail(path, io_reason(&e)))
}

/// Opens a regular file for reading; refuses anything else before it could block or run forever.
/// Returns the file and its size.
pub fn open(path: &Path) -> Result<(std::fs::File, u64), FileError> {
    let refuse = |m: &std::fs::Metadata| fail(path, format!("{}, not a file", kind_of(m)));
    let metadata = metadata(path)?;
    if !metadata.is_file() {
        return Err(refuse(&metadata));
    }
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    // Non-blocking open: a file swapped for a FIFO between the check and the open must not hang.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NONBLOCK);
    let file = options.open(path).map_err(|e| fail(path, io_reason(&e)))?;
    let metadata = file.metadata().map_err(|e| fail(path, e))?;
    if !metadata.is_file() {
        return Err(refuse(&metadata));
    }
    Ok((file, metadata.len()))
}

/// Reads a whole regular file of at most `max_bytes`.
pub fn read(path: &Path, max_bytes: u64) -> Result<Vec<u8>, FileError> {
    let (file, len) = open(path)?;
    let too_large = || {
        fail(
            path,
            format!(
                "larger than the {} this kind of file may be",
                mib(max_bytes)
            ),
        )
    };
    if len > max_bytes {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(len as usize);
    // one byte more than the limit tells a file that grew (or lied about its size) from one that fits
    file.take(max_bytes + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(path, e))?;
    if bytes.len() as u64 > max_bytes {
        return Err(too_large());
    }
    Ok(bytes)
}

/// [`read`] as UTF-8 text.
pub fn read_text(path: &Path, max_bytes: u64) -> Result<String, FileError> {
    String::from_utf8(read(path, max_bytes)?).map_err(|_| fail(path, "not UTF-8 text"))
}

fn mib(bytes: u64) -> String {
    if bytes >= 1 << 30 {
        format!("{} GiB", bytes >> 30)
    } else {
        format!("{} MiB", bytes >> 20)
    }
}

/// Writes `path` atomically (see the module docs): `write` gets a buffered writer on the temporary
/// file; on any error the target is left as it was. New files get the usual permissions (0666 less
/// the umask); a replaced file keeps its own.
pub fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> Result<(), String>,
) -> Result<(), FileError> {
    let target = resolve_target(path)?;
    let dir = target
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = target
        .file_name()
        .ok_or_else(|| fail(path, "not a file name"))?;
    // one fixed name per target: a temporary left by a killed process is replaced by the next write
    let tmp = dir.join(format!(".{}.cmpaint-tmp", name.to_string_lossy()));
    let result = write_then_rename(&tmp, &target, write);
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|e| fail(path, e))
}

/// The file a write to `path` replaces: `path`, or where its links lead. Refuses a target that
/// exists and is not a regular file.
fn resolve_target(path: &Path) -> Result<PathBuf, FileError> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(path.to_path_buf()),
        Err(e) => Err(fail(path, io_reason(&e))),
        Ok(m) if m.file_type().is_symlink() => {
            match std::fs::metadata(path) {
                Ok(m) if !m.is_file() => {
                    return Err(fail(path, format!("{}, not a file", kind_of(&m))));
                }
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(fail(path, io_reason(&e)));
                }
                _ => {}
            }
            // a dangling link is written through too: the new file appears where it points
            let mut target = path.to_path_buf();
            for _ in 0..40 {
                let next = std::fs::read_link(&target).map_err(|e| fail(path, e))?;
                target = match target.parent() {
                    Some(dir) if next.is_relative() => dir.join(next),
                    _ => next,
                };
                if !std::fs::symlink_metadata(&target).is_ok_and(|m| m.file_type().is_symlink()) {
                    return Ok(target);
                }
            }
            Err(fail(path, "a loop of symbolic links"))
        }
        Ok(m) if !m.is_file() => Err(fail(path, format!("{}, not a file", kind_of(&m)))),
        Ok(_) => Ok(path.to_path_buf()),
    }
}

fn write_then_rename(
    tmp: &Path,
    target: &Path,
    write: impl FnOnce(&mut dyn Write) -> Result<(), String>,
) -> Result<(), String> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let mode = std::fs::metadata(target).map_or(0o666, |m| m.permissions().mode() & 0o7777);
        options.mode(mode);
    }
    let file = options.open(tmp).map_err(|e| e.to_string())?;
    let mut out = std::io::BufWriter::new(file);
    write(&mut out)?;
    let file = out.into_inner().map_err(|e| e.error().to_string())?;
    file.sync_all().map_err(|e| e.to_string())?;
    drop(file);
    std::fs::rename(tmp, target).map_err(|e| e.to_string())?;
    // the rename itself is durable once the folder is synced (best effort: not every system can)
    if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty())
        && let Ok(dir) = std::fs::File::open(dir)
    {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// [`write_atomic`] of bytes already in memory.
pub fn write_bytes(path: &Path, bytes: &[u8]) -> Result<(), FileError> {
    write_atomic(path, |w| w.write_all(bytes).map_err(|e| e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_files_are_refused_before_they_block_or_run_forever() {
        let e = read(Path::new("/dev/zero"), 1 << 20)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "/dev/zero: a device, not a file");
        let dir = tempfile::tempdir().unwrap();
        let e = read(dir.path(), 1 << 20).unwrap_err().to_string();
        assert!(e.ends_with(": a folder, not a file"), "{e}");
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = read(&fifo, 1 << 20).unwrap_err().to_string();
        assert!(e.ends_with("fifo: a FIFO, not a file"), "{e}");
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::os::unix::fs::symlink(&b, &a).unwrap();
        std::os::unix::fs::symlink(&a, &b).unwrap();
        let e = read(&a, 1 << 20).unwrap_err().to_string();
        assert!(e.ends_with("a: a loop of symbolic links"), "{e}");
    }

    #[test]
    fn reads_stop_at_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, vec![1u8; 1000]).unwrap();
        assert_eq!(read(&path, 1000).unwrap().len(), 1000);
        let e = read(&path, 999).unwrap_err().to_string();
        assert!(e.contains("larger than"), "{e}");
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.png");
        std::fs::write(&path, b"the good original").unwrap();
        let e = write_atomic(&path, |w| {
            w.write_all(&[0; 100_000]).map_err(|e| e.to_string())?;
            Err("No space left on device (os error 28)".into())
        })
        .unwrap_err();
        assert!(
            e.to_string()
                .ends_with("out.png: No space left on device (os error 28)"),
            "{e}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), b"the good original");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn writes_replace_through_links_keep_permissions_and_refuse_devices() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (file, link) = (dir.path().join("file"), dir.path().join("link"));
        std::fs::write(&file, b"old").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        std::os::unix::fs::symlink("file", &link).unwrap();
        write_bytes(&link, b"new").unwrap();
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read(&file).unwrap(), b"new");
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
        // a new file gets what any program's new file gets (safetensors' own writer gave 0600)
        let (fresh, plain) = (dir.path().join("fresh"), dir.path().join("plain"));
        write_bytes(&fresh, b"x").unwrap();
        std::fs::write(&plain, b"x").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&fresh), mode(&plain));
        let full = dir.path().join("full");
        std::os::unix::fs::symlink("/dev/full", &full).unwrap();
        let e = write_bytes(&full, b"x").unwrap_err().to_string();
        assert!(e.ends_with("full: a device, not a file"), "{e}");
    }
}

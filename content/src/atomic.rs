//! Replacing a file so that a reader, or a crash, sees the old bytes or the
//! new ones, never a part.

use std::fs::{self, File};
use std::io::{self, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Write `bytes` to a temporary file beside `path` (unique to this process
/// and call), with permissions `mode`, flush it to disk and rename it over
/// `path`. The temporary file is removed on failure. The folder must exist;
/// callers that need the rename itself durable fsync the folder.
pub fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp =
        path.with_file_name(format!(".{name}.tmp.{}.{}", std::process::id(), SEQUENCE.fetch_add(1, Ordering::Relaxed)));
    let written = (|| {
        let mut file = File::options().write(true).create_new(true).mode(mode).open(&tmp)?;
        // The process umask must not narrow what the caller asked for.
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt as _;

    #[test]
    fn replaces_the_file_whole_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("entry");
        fs::write(&path, b"old").unwrap();
        write_atomically(&path, b"new bytes", 0o755).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new bytes");
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o755);
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["entry"]);
    }

    #[test]
    fn a_failed_write_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no-such-folder/entry");
        assert!(write_atomically(&missing, b"x", 0o644).is_err());
    }
}

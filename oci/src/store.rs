//! The local content-addressed store that `wasmlet pull` fills.
//!
//! Layout under its root: `blobs/sha256/<hex>` (immutable, verified before
//! they get their name), `tmp/` (downloads in progress, never read), and
//! `refs.json` (reference → image, rewritten atomically under `refs.lock`).
//! A partial download is a temp file, locked (`flock`) by its writer, that
//! disappears with it; one left by a killed writer is unlocked and swept by
//! the next [`ContentStore::open`]. So an interrupted pull restarts cleanly,
//! and a blob found corrupt on read is removed.

use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use wasmlet_content::{verify as verify_digest, Digest, DigestError};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{action} {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Digest(#[from] DigestError),
    #[error("blob {0} is not in the store")]
    Missing(String),
    #[error("the store's index {path} is unreadable: {message}")]
    Index { path: PathBuf, message: String },
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StoreError {
    let path = path.to_owned();
    move |source| StoreError::Io { action, path, source }
}

/// What the store knows about a pulled image.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredImage {
    pub manifest_digest: String,
    /// The Wasm blob: the Wasm layer, or the file taken from a plain
    /// image's rootfs (see `wasm_path`).
    pub wasm_digest: Option<String>,
    /// The Wasm layer's media type (`None` for a file from the rootfs).
    pub wasm_media_type: Option<String>,
    /// Where a plain image keeps its Wasm in its rootfs (its entrypoint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wasm_path: Option<String>,
    pub size: u64,
    /// `wasip1` / `wasip2` from a Wasm artifact's config.
    pub os: Option<String>,
    /// Seconds since the epoch.
    pub pulled_at: u64,
    /// Every blob this image keeps in the store (manifest, config, layers).
    #[serde(default)]
    pub blobs: Vec<String>,
}

impl StoredImage {
    fn uses(&self, digest: &str) -> bool {
        self.manifest_digest == digest
            || self.wasm_digest.as_deref() == Some(digest)
            || self.blobs.iter().any(|b| b == digest)
    }
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Index {
    images: BTreeMap<String, StoredImage>,
}

pub struct ContentStore {
    root: PathBuf,
}

impl ContentStore {
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        for dir in [root.join("blobs/sha256"), root.join("tmp")] {
            std::fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
        }
        let store = Self { root: root.to_owned() };
        store.sweep_abandoned_downloads();
        Ok(store)
    }

    /// Remove temp files no live writer holds: what a killed pull left.
    fn sweep_abandoned_downloads(&self) {
        let Ok(entries) = std::fs::read_dir(self.root.join("tmp")) else {
            return;
        };
        for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
            // A writer locks its file right after creating it; the age check
            // keeps this sweep out of that gap.
            let old_enough = std::fs::metadata(&path)
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().is_ok_and(|age| age >= ABANDONED_AFTER));
            let Ok(file) = std::fs::File::open(&path) else { continue };
            if old_enough && try_lock(&file) {
                tracing::info!(path = %path.display(), "removing an abandoned download");
                let _ = std::fs::remove_file(&path);
            }
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn blob_path(&self, digest: &str) -> Result<PathBuf, StoreError> {
        let digest: Digest = digest.parse().map_err(DigestError::from)?;
        Ok(self.root.join("blobs/sha256").join(digest.hex()))
    }

    pub fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest).is_ok_and(|p| p.is_file())
    }

    /// Read a blob, re-verifying it; a corrupt blob is removed and reported.
    pub fn read_blob(&self, digest: &str) -> Result<Vec<u8>, StoreError> {
        let path = self.blob_path(digest)?;
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(StoreError::Missing(digest.to_owned())),
            Err(e) => return Err(io("reading", &path)(e)),
        };
        if let Err(err) = verify_digest(&path.display().to_string(), &bytes, digest, None) {
            tracing::warn!(blob = %digest, error = %err, "removing a corrupt blob");
            let _ = std::fs::remove_file(&path);
            return Err(err.into());
        }
        Ok(bytes)
    }

    /// Store `bytes` under `digest` after checking digest and size.
    pub fn write_blob(&self, bytes: &[u8], digest: &str, size: Option<u64>) -> Result<PathBuf, StoreError> {
        let mut writer = self.blob_writer()?;
        writer.write(bytes)?;
        writer.commit(digest, size)
    }

    /// A writer for a blob arriving in pieces (a download).
    pub fn blob_writer(&self) -> Result<BlobWriter<'_>, StoreError> {
        let file = tempfile::Builder::new()
            .prefix("blob-")
            .tempfile_in(self.root.join("tmp"))
            .map_err(io("creating a temp file in", &self.root.join("tmp")))?;
        try_lock(file.as_file()); // best effort: marks the file as in use
        Ok(BlobWriter { store: self, file, hasher: Sha256::new(), written: 0 })
    }

    fn lock(&self) -> Result<std::fs::File, StoreError> {
        let path = self.root.join("refs.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io("opening", &path))?;
        // SAFETY: flock on a descriptor we own; released when `file` closes.
        if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&file), libc::LOCK_EX) } != 0 {
            return Err(io("locking", &path)(std::io::Error::last_os_error()));
        }
        Ok(file)
    }

    fn read_index(&self) -> Result<Index, StoreError> {
        let path = self.root.join("refs.json");
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| StoreError::Index { path, message: e.to_string() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Index::default()),
            Err(e) => Err(io("reading", &path)(e)),
        }
    }

    fn write_index(&self, index: &Index) -> Result<(), StoreError> {
        let path = self.root.join("refs.json");
        let bytes = serde_json::to_vec_pretty(index)
            .map_err(|e| StoreError::Index { path: path.clone(), message: e.to_string() })?;
        wasmlet_content::write_atomically(&path, &bytes, 0o644).map_err(io("writing", &path))
    }

    /// Record `image` under `reference` (replacing what was there).
    pub fn tag(&self, reference: &str, image: StoredImage) -> Result<(), StoreError> {
        let _lock = self.lock()?;
        let mut index = self.read_index()?;
        index.images.insert(reference.to_owned(), image);
        self.write_index(&index)
    }

    pub fn lookup(&self, reference: &str) -> Result<Option<StoredImage>, StoreError> {
        Ok(self.read_index()?.images.get(reference).cloned())
    }

    pub fn list(&self) -> Result<Vec<(String, StoredImage)>, StoreError> {
        Ok(self.read_index()?.images.into_iter().collect())
    }

    /// Forget `reference` and delete the blobs no other reference uses.
    /// Returns whether it was there.
    pub fn remove(&self, reference: &str) -> Result<bool, StoreError> {
        let _lock = self.lock()?;
        let mut index = self.read_index()?;
        let Some(removed) = index.images.remove(reference) else {
            return Ok(false);
        };
        self.write_index(&index)?;
        let still_used = |digest: &str| index.images.values().any(|i| i.uses(digest));
        let owned =
            std::iter::once(&removed.manifest_digest).chain(removed.wasm_digest.iter()).chain(removed.blobs.iter());
        for digest in owned {
            if !still_used(digest) {
                if let Ok(path) = self.blob_path(digest) {
                    let _ = std::fs::remove_file(path);
                }
            }
        }
        Ok(true)
    }
}

/// Temp files younger than this are never swept, locked or not.
const ABANDONED_AFTER: std::time::Duration = std::time::Duration::from_secs(2);

/// An exclusive, non-blocking `flock`; released when the file is closed.
fn try_lock(file: &std::fs::File) -> bool {
    use std::os::fd::AsRawFd as _;
    // SAFETY: flock on a descriptor this function borrows; no memory involved.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

/// A blob being written; it gets its content-addressed name only in
/// [`BlobWriter::commit`], after verification. Dropped uncommitted, it vanishes.
pub struct BlobWriter<'a> {
    store: &'a ContentStore,
    file: tempfile::NamedTempFile,
    hasher: Sha256,
    written: u64,
}

impl BlobWriter<'_> {
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        self.hasher.update(bytes);
        self.written += bytes.len() as u64;
        self.file.write_all(bytes).map_err(io("writing", self.file.path()))
    }

    pub fn written(&self) -> u64 {
        self.written
    }

    /// Verify size and digest, then move the blob into place.
    pub fn commit(self, digest: &str, size: Option<u64>) -> Result<PathBuf, StoreError> {
        let target = self.store.blob_path(digest)?;
        if let Some(size) = size {
            if size != self.written {
                return Err(DigestError::Size { what: digest.to_owned(), expected: size, actual: self.written }.into());
            }
        }
        let actual = Digest::from_bytes(self.hasher.finalize().into()).to_string();
        if actual != digest {
            return Err(
                DigestError::Mismatch { what: "downloaded blob".into(), expected: digest.to_owned(), actual }.into()
            );
        }
        self.file.as_file().sync_all().map_err(io("syncing", self.file.path()))?;
        self.file.persist(&target).map_err(|e| io("renaming into", &target)(e.error))?;
        Ok(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    fn sha256_digest(bytes: &[u8]) -> String {
        wasmlet_content::Digest::of(bytes).to_string()
    }

    #[test]
    fn blobs_are_verified_before_they_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let digest = sha256_digest(b"wasm");
        assert!(matches!(
            store.write_blob(b"wasn", &digest, Some(4)),
            Err(StoreError::Digest(DigestError::Mismatch { .. }))
        ));
        assert!(matches!(
            store.write_blob(b"wasm", &digest, Some(5)),
            Err(StoreError::Digest(DigestError::Size { .. }))
        ));
        assert!(!store.has_blob(&digest));
        assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0, "temp files left behind");
        store.write_blob(b"wasm", &digest, Some(4)).unwrap();
        assert_eq!(store.read_blob(&digest).unwrap(), b"wasm");
        // Corruption on disk is detected and the blob dropped.
        std::fs::write(store.blob_path(&digest).unwrap(), b"evil").unwrap();
        assert!(store.read_blob(&digest).is_err());
        assert!(!store.has_blob(&digest));
    }

    #[test]
    fn refs_are_listed_and_removed_with_their_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let (m, w) = (sha256_digest(b"manifest"), sha256_digest(b"wasm"));
        store.write_blob(b"manifest", &m, None).unwrap();
        store.write_blob(b"wasm", &w, None).unwrap();
        let image = StoredImage {
            manifest_digest: m.clone(),
            wasm_digest: Some(w.clone()),
            wasm_media_type: Some("application/wasm".into()),
            wasm_path: None,
            size: 4,
            os: Some("wasip1".into()),
            pulled_at: 0,
            blobs: Vec::new(),
        };
        store.tag("localhost/a:1", image.clone()).unwrap();
        store.tag("localhost/b:1", image.clone()).unwrap();
        assert_eq!(store.list().unwrap().len(), 2);
        assert!(store.remove("localhost/a:1").unwrap());
        assert!(store.has_blob(&w), "still used by b");
        assert!(store.remove("localhost/b:1").unwrap());
        assert!(!store.has_blob(&w) && !store.has_blob(&m));
        assert!(!store.remove("localhost/b:1").unwrap());
    }
}

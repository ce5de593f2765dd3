//! The compile cache on disk, shared by every wasmlet process on the node.
//!
//! Layout: `<root>/engine-<compat>/<sha256 of the Wasm>.cwasm`, where
//! `<compat>` names the engine's precompile compatibility hash (wasmtime
//! version, target, and every setting that changes code), so engines never
//! load each other's code. Beside each entry:
//! - `<hex>.sum`: CRC-32 and length of the `.cwasm`, checked before every
//!   load: a truncated or corrupt entry is removed and recompiled, never run.
//! - `<hex>.lock`: an advisory `flock`, held while checking-and-compiling, so
//!   two processes that want the same digest at once compile it once.
//!
//! Entries are written to a temporary file, fsync'd, then renamed into place;
//! the `.sum` is renamed last, so an entry without one is treated as absent.
//! Loads go through `deserialize_file`, which mmaps the entry: every process
//! running the same Wasm shares one copy of its code in the page cache.

use crate::digest::Digest;
use crate::engine::EngineKind;
use crate::error::{CacheError, LoadError};
use crate::program::Compiled;
use std::fs::{self, File};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use wasmtime::component::Component;
use wasmtime::{Engine, Module};

/// Where a loaded program came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Already loaded in this process.
    Memory,
    /// Loaded from a valid cache entry (no compilation).
    Disk,
    /// Compiled now and stored in the cache.
    Compiled,
    /// Compiled now and kept in memory only: the cache could not be
    /// written (read-only, full, not writable by this user).
    Uncached,
    /// A precompiled artifact given directly; the cache was not involved.
    Precompiled,
}

impl CacheOutcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            CacheOutcome::Memory => "memory",
            CacheOutcome::Disk => "cached",
            CacheOutcome::Compiled => "compiled",
            CacheOutcome::Uncached => "compiled (not cached)",
            CacheOutcome::Precompiled => "precompiled",
        }
    }
}

/// Counters of this process's cache activity.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    pub compiled: u64,
    pub disk_hits: u64,
    pub evicted_corrupt: u64,
}

#[derive(Default)]
struct Counters {
    compiled: AtomicU64,
    disk_hits: AtomicU64,
    evicted_corrupt: AtomicU64,
}

pub struct CompileCache {
    dir: PathBuf,
    /// The engine whose code the folder holds (compile workers build one).
    kind: EngineKind,
    counters: Counters,
}

/// An entry failed its integrity check.
struct Corrupt(String);

/// What [`CompileCache::ensure`] left.
pub(crate) enum Ensured {
    /// A checked entry ([`CacheOutcome::Disk`]) or one just stored
    /// ([`CacheOutcome::Compiled`]).
    Cached(CacheOutcome),
    /// Compiled, but the cache could not keep it: the code itself.
    Uncached(Vec<u8>),
}

impl CompileCache {
    /// Open (creating if needed) the cache folder for `engine` (of `kind`)
    /// under `root`.
    pub(crate) fn open(root: &Path, engine: &Engine, kind: EngineKind) -> Result<Self, CacheError> {
        let mut hasher = crate::digest::Sha256Hasher::default();
        std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut hasher);
        let compat = hasher.finish_digest().hex();
        let dir = root.join(format!("engine-{}", &compat[..16]));
        match fs::create_dir_all(&dir) {
            Ok(()) => {}
            // Runs go on without a cache (see `load_or_compile`).
            Err(e) if unwritable(&e) => {
                tracing::warn!(path = %dir.display(), error = %e, "compile cache cannot be created; compiling in memory");
            }
            Err(e) => return Err(CacheError::io(&dir, "create")(e)),
        }
        Ok(Self { dir, kind, counters: Counters::default() })
    }

    /// The cache's root (shared by every engine version).
    pub fn root(&self) -> &Path {
        self.dir.parent().unwrap_or(&self.dir)
    }

    /// The engine-specific folder entries live in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Path of the compiled code for `digest` (it may not exist yet).
    pub fn entry_path(&self, digest: &Digest) -> PathBuf {
        self.dir.join(format!("{}.cwasm", digest.hex()))
    }

    fn sum_path(&self, digest: &Digest) -> PathBuf {
        self.dir.join(format!("{}.sum", digest.hex()))
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            compiled: self.counters.compiled.load(Ordering::Relaxed),
            disk_hits: self.counters.disk_hits.load(Ordering::Relaxed),
            evicted_corrupt: self.counters.evicted_corrupt.load(Ordering::Relaxed),
        }
    }

    /// Load the compiled form of `bytes` (whose sha256 is `digest`), compiling
    /// and storing it if no valid entry exists. `component` says which kind
    /// the bytes are. Blocks while another process compiles the same digest.
    pub(crate) fn load_or_compile(
        &self,
        engine: &Engine,
        digest: &Digest,
        bytes: &[u8],
        component: bool,
        what: &str,
        how: crate::compile::Compile,
    ) -> Result<(Compiled, CacheOutcome), LoadError> {
        // Fast path without the lock: the common case on a warm node.
        if let Ok(Some(compiled)) = self.try_load(engine, digest, component) {
            return Ok(self.hit(digest, compiled));
        }
        let outcome = match self.ensure_locked(engine, digest, bytes, component, what, how)? {
            Ensured::Uncached(code) => return Ok((deserialize(engine, &code, component)?, CacheOutcome::Uncached)),
            Ensured::Cached(outcome) => outcome,
        };
        match self.try_load(engine, digest, component) {
            Ok(Some(compiled)) => Ok((compiled, outcome)),
            Ok(None) => Err(CacheError::Compile(format!("entry for {digest} vanished after it was checked")).into()),
            Err(Corrupt(why)) => Err(CacheError::Compile(format!(
                "entry for {digest} failed its check right after it was written: {why}"
            ))
            .into()),
        }
    }

    /// Make sure a valid entry for `bytes` exists, compiling and storing it
    /// if not, without loading it: for a process that hands the running to
    /// another (the shim's guest process maps the entry itself). Blocks
    /// while another process compiles the same digest.
    pub(crate) fn ensure(
        &self,
        engine: &Engine,
        digest: &Digest,
        bytes: &[u8],
        component: bool,
        what: &str,
        how: crate::compile::Compile,
    ) -> Result<Ensured, LoadError> {
        // Fast path without the lock: the common case on a warm node.
        if let Ok(true) = self.check(digest) {
            self.count_hit(digest);
            return Ok(Ensured::Cached(CacheOutcome::Disk));
        }
        self.ensure_locked(engine, digest, bytes, component, what, how)
    }

    /// [`CompileCache::ensure`] after its fast path missed: check again
    /// under the digest's lock, then compile and store.
    fn ensure_locked(
        &self,
        engine: &Engine,
        digest: &Digest,
        bytes: &[u8],
        component: bool,
        what: &str,
        how: crate::compile::Compile,
    ) -> Result<Ensured, LoadError> {
        // A cache that cannot be written never blocks a run: compile in
        // memory, say so once per program.
        let lock = match self.lock(digest) {
            Ok(lock) => Some(lock),
            Err(err) => {
                self.keep_going(err)?;
                None
            }
        };
        match self.check(digest) {
            Ok(true) => {
                self.count_hit(digest);
                return Ok(Ensured::Cached(CacheOutcome::Disk));
            }
            Ok(false) => {}
            Err(Corrupt(why)) => self.evict(digest, &why).or_else(|e| self.keep_going(e))?,
        }
        let started = std::time::Instant::now();
        let code = crate::compile::precompile(engine, self.kind, bytes, component, what, how)?;
        if lock.is_none() {
            return Ok(self.in_memory(digest, code, "cannot take its lock"));
        }
        if let Err(err) = self.store(digest, &code) {
            self.keep_going(err)?;
            return Ok(self.in_memory(digest, code, "cannot store the entry"));
        }
        self.counters.compiled.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            %digest,
            path = %self.entry_path(digest).display(),
            bytes = code.len(),
            elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
            "compiled and cached"
        );
        Ok(Ensured::Cached(CacheOutcome::Compiled))
    }

    /// An error the run survives (an unwritable cache), or the error.
    fn keep_going(&self, err: CacheError) -> Result<(), CacheError> {
        match &err {
            CacheError::Io { source, .. } if unwritable(source) => Ok(()),
            _ => Err(err),
        }
    }

    /// `code`, just compiled by this process, kept in memory only.
    fn in_memory(&self, digest: &Digest, code: Vec<u8>, why: &str) -> Ensured {
        tracing::warn!(%digest, path = %self.dir.display(), why, "compile cache not writable; the compiled code stays in memory");
        // Leave no partial entry behind (a full disk may have cut one short).
        for path in [self.sum_path(digest), self.entry_path(digest)] {
            let _ = fs::remove_file(path);
        }
        self.counters.compiled.fetch_add(1, Ordering::Relaxed);
        Ensured::Uncached(code)
    }

    fn hit(&self, digest: &Digest, compiled: Compiled) -> (Compiled, CacheOutcome) {
        self.count_hit(digest);
        (compiled, CacheOutcome::Disk)
    }

    fn count_hit(&self, digest: &Digest) {
        self.counters.disk_hits.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(%digest, "cache hit");
    }

    fn lock(&self, digest: &Digest) -> Result<File, CacheError> {
        let path = self.dir.join(format!("{}.lock", digest.hex()));
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(CacheError::io(&path, "open lock"))?;
        file.lock().map_err(CacheError::io(&path, "lock"))?;
        Ok(file)
    }

    /// The compiled code for `digest` as the process that stored (or
    /// checked) it moments ago left it, without re-reading it for the
    /// checksum: for a guest process whose shim just checked the entry.
    /// `Ok(None)` when there is no entry.
    pub(crate) fn load_trusted(&self, engine: &Engine, digest: &Digest) -> Result<Option<Compiled>, LoadError> {
        let entry = self.entry_path(digest);
        let what = entry.display().to_string();
        let kind = match Engine::detect_precompiled_file(&entry) {
            Ok(kind) => kind,
            Err(_) if !entry.exists() => return Ok(None),
            Err(e) => return Err(LoadError::IncompatiblePrecompiled { what, message: format!("{e:#}") }),
        };
        // SAFETY: a root-owned cache entry, written by `store` and checked
        // against its checksum by the caller's shim when it loaded it.
        let loaded = unsafe {
            match kind {
                Some(wasmtime::Precompiled::Component) => {
                    Component::deserialize_file(engine, &entry).map(Compiled::Component)
                }
                Some(wasmtime::Precompiled::Module) => Module::deserialize_file(engine, &entry).map(Compiled::Module),
                None => return Err(LoadError::IncompatiblePrecompiled { what, message: "not compiled code".into() }),
            }
        };
        loaded.map(Some).map_err(|e| LoadError::IncompatiblePrecompiled { what, message: format!("{e:#}") })
    }

    /// `Ok(false)`: no complete entry. `Err(Corrupt)`: an entry that must
    /// not be used. `Ok(true)`: the entry's bytes are those its checksum,
    /// recorded when it was written, describes.
    fn check(&self, digest: &Digest) -> Result<bool, Corrupt> {
        let expected = match fs::read_to_string(self.sum_path(digest)) {
            Ok(sum) => sum,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(Corrupt(format!("unreadable checksum: {e}"))),
        };
        let code = match File::open(self.entry_path(digest)) {
            Ok(code) => code,
            Err(e) if e.kind() == ErrorKind::NotFound => return Err(Corrupt("checksum without code".into())),
            Err(e) => return Err(Corrupt(format!("unreadable entry: {e}"))),
        };
        wasmlet_content::matches_sum_line_read(expected.as_bytes(), code)
            .map_err(|e| Corrupt(format!("unreadable entry: {e}")))?
            .map_err(Corrupt)?;
        Ok(true)
    }

    /// `Ok(None)`: no complete entry. `Err(Corrupt)`: an entry that must not be used.
    fn try_load(&self, engine: &Engine, digest: &Digest, component: bool) -> Result<Option<Compiled>, Corrupt> {
        if !self.check(digest)? {
            return Ok(None);
        }
        let entry = self.entry_path(digest);
        // SAFETY: this file was written by `store` (ours, root-owned cache,
        // atomically renamed) and its bytes match the checksum recorded at
        // write time, so it is exactly what this engine produced.
        let loaded = unsafe {
            if component {
                Component::deserialize_file(engine, &entry).map(Compiled::Component)
            } else {
                Module::deserialize_file(engine, &entry).map(Compiled::Module)
            }
        };
        loaded.map(Some).map_err(|e| Corrupt(format!("engine rejected entry: {e:#}")))
    }

    fn evict(&self, digest: &Digest, why: &str) -> Result<(), CacheError> {
        tracing::warn!(%digest, reason = why, "removing corrupt compile-cache entry; recompiling");
        for path in [self.sum_path(digest), self.entry_path(digest)] {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(CacheError::io(path, "remove corrupt entry")(e)),
            }
        }
        self.counters.evicted_corrupt.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn store(&self, digest: &Digest, code: &[u8]) -> Result<(), CacheError> {
        write_atomically(&self.entry_path(digest), code)?;
        write_atomically(&self.sum_path(digest), wasmlet_content::sum_line(code).as_bytes())?;
        let dir = File::open(&self.dir).map_err(CacheError::io(&self.dir, "open"))?;
        dir.sync_all().map_err(CacheError::io(&self.dir, "fsync"))
    }
}

/// Compiled code this process produced (or was handed by its shim), from memory.
pub(crate) fn deserialize(engine: &Engine, code: &[u8], component: bool) -> Result<Compiled, LoadError> {
    // SAFETY: `code` is what this engine's configuration produced moments
    // ago (in this process or its shim), never bytes from elsewhere.
    let loaded = unsafe {
        if component {
            Component::deserialize(engine, code).map(Compiled::Component)
        } else {
            Module::deserialize(engine, code).map(Compiled::Module)
        }
    };
    loaded.map_err(|e| LoadError::IncompatiblePrecompiled { what: "compiled code".into(), message: format!("{e:#}") })
}

/// An error that means the cache cannot be written here (ENOENT: its
/// folder could not be made, or went away).
fn unwritable(err: &std::io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EROFS | libc::ENOSPC | libc::EDQUOT | libc::EACCES | libc::EPERM | libc::ENOENT)
    )
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), CacheError> {
    wasmlet_content::write_atomically(path, bytes, 0o644).map_err(CacheError::io(path, "write"))
}

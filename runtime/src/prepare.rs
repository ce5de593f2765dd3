//! Preparing a program for another process to run: compiled into the
//! cache (once per node), its kind known, but not loaded here.
//!
//! The shim's daemon decides at Create what a container's Wasm is and makes
//! sure its code is cached; the confined guest process maps the entry,
//! links it and runs it. Loading it in the daemon as well (mmap, symbol
//! registration, a linker per WASI flavour) cost ~1 ms of every container's
//! start for a result the daemon threw away.

use crate::cache::{CacheOutcome, Ensured};
use crate::compile::Compile;
use crate::digest::Digest;
use crate::engine::EngineKind;
use crate::error::LoadError;
use crate::program::{ProgramKind, WasmFormat};
use crate::run::Runtime;
use std::path::Path;

/// A program ready for a process of the same engine configuration to run.
#[derive(Debug)]
pub struct Prepared {
    /// The sha256 of its Wasm binary: its cache key.
    pub digest: Digest,
    pub kind: ProgramKind,
    /// The engine it was compiled for (the runner loads it for that one).
    pub engine: EngineKind,
    /// [`CacheOutcome::Disk`], [`CacheOutcome::Compiled`] or [`CacheOutcome::Uncached`].
    pub outcome: CacheOutcome,
    /// The compiled code, when the cache could not keep it.
    pub code: Option<Vec<u8>>,
}

impl Runtime {
    /// Prepare the Wasm in a file (a module, a component or WAT text, never
    /// a precompiled artifact), compiling it as `how` says when the cache
    /// has no valid entry for it.
    pub fn prepare_file_compiling(&self, path: &Path, how: Compile) -> Result<Prepared, LoadError> {
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read { path: path.to_owned(), source })?;
        let what = path.display().to_string();
        match WasmFormat::of(&bytes, &what)? {
            WasmFormat::Module => self.prepare_binary(&bytes, Digest::of(&bytes), false, &what, how),
            WasmFormat::Component => self.prepare_binary(&bytes, Digest::of(&bytes), true, &what, how),
            WasmFormat::Text => {
                let (binary, component) = crate::program::assemble(&bytes, &what)?;
                self.prepare_binary(&binary, Digest::of(&binary), component, &what, how)
            }
            WasmFormat::PrecompiledModule | WasmFormat::PrecompiledComponent => {
                Err(LoadError::PrecompiledNotAllowed { what })
            }
        }
    }

    /// Prepare a Wasm binary whose digest the caller already verified (a
    /// layer read from a content store).
    pub fn prepare_verified_compiling(
        &self,
        bytes: &[u8],
        digest: Digest,
        what: &str,
        how: Compile,
    ) -> Result<Prepared, LoadError> {
        match WasmFormat::detect(bytes) {
            Some(WasmFormat::Module) => self.prepare_binary(bytes, digest, false, what, how),
            Some(WasmFormat::Component) => self.prepare_binary(bytes, digest, true, what, how),
            _ => Err(LoadError::not_wasm(bytes, what)),
        }
    }

    fn prepare_binary(
        &self,
        bytes: &[u8],
        digest: Digest,
        component: bool,
        what: &str,
        how: Compile,
    ) -> Result<Prepared, LoadError> {
        // Compiled first: what compiles is valid, so its exports parse.
        let engine = EngineKind::of_binary(bytes, component);
        let slot = self.slot(engine)?;
        let (outcome, code) = match slot.cache.ensure(&slot.engine, &digest, bytes, component, what, how)? {
            Ensured::Cached(outcome) => (outcome, None),
            Ensured::Uncached(code) => (CacheOutcome::Uncached, Some(code)),
        };
        let kind = ProgramKind::of_binary(bytes, component).ok_or_else(|| LoadError::Invalid {
            what: what.to_owned(),
            message: "its component exports cannot be read".into(),
        })?;
        Ok(Prepared { digest, kind, engine, outcome, code })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RuntimeConfig;

    fn runtime(cache: &Path) -> Runtime {
        Runtime::new(RuntimeConfig { cache_dir: cache.to_owned(), pool: None, ..RuntimeConfig::default() }).unwrap()
    }

    const HTTP: &str = r#"(component
        (core module $m (func (export "handle")))
        (core instance $i (instantiate $m))
        (func $f (canon lift (core func $i "handle")))
        (instance $h (export "handle" (func $f)))
        (export "wasi:http/incoming-handler@0.2.6" (instance $h)))"#;

    #[test]
    fn prepares_once_then_finds_the_entry_and_tells_the_kind_as_a_load_would() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("m.wat");
        std::fs::write(&file, "(module (func (export \"_start\")))").unwrap();
        let rt = runtime(&dir.path().join("cache"));
        let first = rt.prepare_file_compiling(&file, Compile::InProcess).unwrap();
        assert_eq!(
            (first.kind, first.outcome, first.code.is_some()),
            (ProgramKind::Module, CacheOutcome::Compiled, false)
        );
        let again = rt.prepare_file_compiling(&file, Compile::InProcess).unwrap();
        assert_eq!((again.digest, again.outcome), (first.digest, CacheOutcome::Disk));
        // The entry is what a guest process loads.
        assert_eq!(rt.load_cached(first.digest, first.engine).unwrap().kind(), ProgramKind::Module);

        let http = wat::parse_str(HTTP).unwrap();
        let digest = Digest::of(&http);
        let prepared = rt.prepare_verified_compiling(&http, digest, "http", Compile::InProcess).unwrap();
        assert_eq!(prepared.kind, ProgramKind::HttpProxy);
        assert_eq!(prepared.engine, EngineKind::Standard);
        assert_eq!(rt.load_cached(digest, prepared.engine).unwrap().kind(), ProgramKind::HttpProxy);
        let other = wat::parse_str("(component (core module $m))").unwrap();
        let prepared = rt.prepare_verified_compiling(&other, Digest::of(&other), "other", Compile::InProcess).unwrap();
        assert_eq!(prepared.kind, ProgramKind::OtherComponent);
    }

    #[test]
    fn a_corrupt_entry_is_replaced_and_bad_input_names_its_cause() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("m.wat");
        std::fs::write(&file, "(module)").unwrap();
        let rt = runtime(&dir.path().join("cache"));
        let first = rt.prepare_file_compiling(&file, Compile::InProcess).unwrap();
        let entry = rt.cache().entry_path(&first.digest);
        let mut code = std::fs::read(&entry).unwrap();
        let middle = code.len() / 2;
        code[middle] ^= 0xff;
        std::fs::write(&entry, &code).unwrap();
        let again = rt.prepare_file_compiling(&file, Compile::InProcess).unwrap();
        assert_eq!(again.outcome, CacheOutcome::Compiled);
        assert_eq!(rt.cache().stats().evicted_corrupt, 1);

        std::fs::write(&file, "not wasm").unwrap();
        let err = rt.prepare_file_compiling(&file, Compile::InProcess).unwrap_err().to_string();
        assert!(err.contains("not a WebAssembly file"), "{err}");
        std::fs::write(&file, b"\0asm\x01\0\0\0\x01\xff").unwrap();
        let err = rt.prepare_file_compiling(&file, Compile::InProcess).unwrap_err().to_string();
        assert!(err.contains("invalid WebAssembly") || err.contains("compiling"), "{err}");
    }
}

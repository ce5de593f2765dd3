//! Typed errors of the runtime. Each names its cause so callers can show it as is.

use std::path::PathBuf;

/// Why Wasm could not be turned into a runnable [`crate::Program`].
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("not a WebAssembly file: {what} starts with {magic:02x?}, expected the `\\0asm` magic, WAT text or a wasmlet-precompiled artifact")]
    NotWasm { what: String, magic: Vec<u8> },
    #[error("invalid WebAssembly text in {what}: {message}")]
    InvalidText { what: String, message: String },
    #[error("invalid WebAssembly in {what}: {message}")]
    Invalid { what: String, message: String },
    #[error("{what} is valid WebAssembly but uses {feature}, which this build of wasmlet does not support ({detail})")]
    Unsupported { what: String, feature: &'static str, detail: String },
    #[error(
        "{what} is a precompiled artifact; running one requires --allow-precompiled (only load artifacts you produced)"
    )]
    PrecompiledNotAllowed { what: String },
    #[error("precompiled artifact {what} is not compatible with this engine: {message}")]
    IncompatiblePrecompiled { what: String, message: String },
    #[error("compiling {what}: {why}")]
    Compile { what: String, why: String },
    #[error("{what}: {reason}")]
    OverBudget { what: String, reason: crate::compile::OverBudget },
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("creating the engine for component-model async (WASI 0.3): {0}")]
    Engine(String),
}

impl LoadError {
    /// `what` is not Wasm: named with its first bytes.
    pub(crate) fn not_wasm(bytes: &[u8], what: &str) -> Self {
        LoadError::NotWasm { what: what.to_owned(), magic: bytes.iter().take(8).copied().collect() }
    }
}

/// Failures of the compile cache's storage (never a reason to serve bad code).
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("compile cache at {path}: {action}: {source}")]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("compiling for the cache failed: {0}")]
    Compile(String),
}

impl CacheError {
    pub(crate) fn io(path: impl Into<PathBuf>, action: &'static str) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| CacheError::Io { path, action, source }
    }
}

/// Why a loaded program could not be started (the guest never ran).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("unknown import: {0}")]
    UnknownImport(String),
    #[error("export `{name}` not found (the module exports: {available})")]
    MissingExport { name: String, available: String },
    #[error("export `{name}` cannot be invoked: {why}")]
    UninvokableExport { name: String, why: String },
    #[error("{0} is not a command: it exports neither `_start` nor `wasi:cli/run` (use an explicit export to invoke)")]
    NotACommand(String),
    #[error("{0} is not an HTTP function: it does not export `wasi:http/incoming-handler`, so it cannot be served")]
    NotAnHttpFunction(String),
    #[error("preopen {host} (as {guest}): {source}")]
    Preopen {
        host: PathBuf,
        guest: String,
        #[source]
        source: anyhow::Error,
    },
    #[error("cannot set up stdio: {0}")]
    Stdio(#[source] std::io::Error),
    #[error("instantiation failed: {0}")]
    Instantiate(String),
    #[error("cannot serve: {0}")]
    Serve(#[source] std::io::Error),
}

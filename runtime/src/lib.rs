//! wasmlet's engine: everything between "here are some Wasm bytes and a set of
//! capabilities" and "the guest ran and exited with status N".
//!
//! Owns: the warm [`wasmtime::Engine`]s of a process (pooling allocator,
//! epoch interruption, async, component model; component-model concurrency
//! only in the second, built for the first WASI 0.3 program: see
//! [`EngineKind`]), the on-disk compile cache
//! shared by every process on the node, the translation of capabilities into
//! a WASI context, per-run limits (memory, deadline, kill) and exit statuses,
//! and (in `serve`) serving `wasi:http/proxy` (0.2) and `wasi:http/service`
//! (0.3) components.
//!
//! Must not touch: containerd, OCI bundles, registries, cgroups or signals of
//! the host process. Callers (the shim, the CLI) translate those into
//! [`Capabilities`], [`Limits`] and [`KillSwitch`] calls.

mod async_features;
mod blocking;
mod cache;
mod capabilities;
pub mod compile;
mod config;
mod digest;
mod engine;
mod error;
mod execute;
mod exit;
mod kill;
mod limits;
mod module_run;
mod prepare;
mod program;
mod run;
mod serve;
mod service_workers;
mod state;
mod ticker;

pub use blocking::STOP_GRACE;
pub use cache::{CacheOutcome, CacheStats, CompileCache};
pub use capabilities::{Capabilities, Preopen, StdinSource, StdoutSink};
pub use compile::{Compile, CompileBudget, OverBudget};
pub use config::{PoolConfig, RuntimeConfig};
pub use digest::Digest;
pub use engine::{AllocationStrategy, EngineKind};
pub use error::{CacheError, LoadError, RunError};
pub use exit::{ExitStatus, Outcome};
pub use kill::KillSwitch;
pub use limits::{Limits, MemoryCap};
pub use prepare::Prepared;
pub use program::{Program, ProgramKind, WasmFormat};
pub use run::{Entry, RunRequest, Runtime};
pub use serve::{serve_executor, HttpServer, ServeConfig, ServeStats};
pub use service_workers::{InstanceReuse, ReuseError};

//! The [`Runtime`]: load programs through the cache and run them under limits.

use crate::cache::{CacheOutcome, CompileCache};
use crate::capabilities::Capabilities;
use crate::compile::Compile;
use crate::config::RuntimeConfig;
use crate::digest::Digest;
use crate::engine::{build_engine, AllocationStrategy, EngineKind};
use crate::error::{LoadError, RunError};
use crate::exit::{ExitStatus, Outcome};
use crate::kill::KillSwitch;
use crate::limits::Limits;
use crate::program::{Compiled, Program, ProgramKind, WasmFormat};
use crate::state::{ComponentState, ModuleState};
use crate::ticker::EpochTicker;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use wasmtime::component::Component;
use wasmtime::{Engine, ExternType, Module, Store, UpdateDeadline, Val};
use wasmtime_wasi::I32Exit;

/// What to call in a program.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Entry {
    /// `_start` of a module, `wasi:cli/run` of a component.
    #[default]
    Default,
    /// A named export of a core module taking no parameters.
    Export(String),
}

/// One run of a program: what to call, with which capabilities, under
/// which limits, stopped by which kill switch.
pub struct RunRequest {
    pub program: Program,
    pub entry: Entry,
    pub caps: Capabilities,
    pub limits: Limits,
    pub kill: KillSwitch,
}

impl RunRequest {
    /// `program`'s default entry with no capabilities, no limits and a
    /// fresh kill switch; set the fields that differ.
    pub fn new(program: Program) -> Self {
        Self {
            program,
            entry: Entry::Default,
            caps: Capabilities::default(),
            limits: Limits::default(),
            kill: KillSwitch::new(),
        }
    }
}

/// One engine with the cache folder its code lives in.
pub(crate) struct EngineSlot {
    pub(crate) engine: Engine,
    strategy: AllocationStrategy,
    pub(crate) cache: CompileCache,
}

impl EngineSlot {
    fn build(kind: EngineKind, config: &RuntimeConfig) -> anyhow::Result<Self> {
        let (engine, strategy) = build_engine(kind, config.pool.as_ref())
            .map_err(|e| anyhow::anyhow!("creating the wasmtime engine: {e:#}"))?;
        let cache = CompileCache::open(&config.cache_dir, &engine, kind)?;
        tracing::debug!(?kind, ?strategy, cache = %cache.dir().display(), "engine ready");
        Ok(Self { engine, strategy, cache })
    }
}

/// One per process: the warm engines, their linkers, the compile cache, and
/// the programs loaded so far (by digest).
pub struct Runtime {
    config: RuntimeConfig,
    /// WASI 0.1 and 0.2: built with the runtime.
    standard: EngineSlot,
    /// Component-model async (WASI 0.3): built for the first program that
    /// needs it, so a process that runs none never reserves its pool.
    concurrent: OnceLock<EngineSlot>,
    /// Held while the concurrent engine is built (once).
    building: Mutex<()>,
    /// Ticks both engines.
    ticker: EpochTicker,
    // The linkers are built on first use: a process runs one kind of
    // program, and building all of them costs more than the run of a small one.
    module_linker: OnceLock<wasmtime::Linker<ModuleState>>,
    /// WASI preview 1 with synchronous host calls: [`Runtime::run_blocking`].
    module_linker_sync: OnceLock<wasmtime::Linker<ModuleState>>,
    component_linker: OnceLock<wasmtime::component::Linker<ComponentState>>,
    /// WASI 0.2 and 0.3, on the concurrent engine.
    async_command_linker: OnceLock<wasmtime::component::Linker<ComponentState>>,
    programs: Mutex<HashMap<Digest, Program>>,
    http_linker: OnceLock<wasmtime::component::Linker<crate::state::HttpState>>,
    /// wasi:http 0.2 and 0.3, on the concurrent engine.
    http_service_linker: OnceLock<wasmtime::component::Linker<crate::state::HttpState>>,
}

/// The trap the epoch callback raises to stop a guest for a kill or deadline.
#[derive(Debug)]
pub(crate) struct Interrupted;

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted by a kill or deadline")
    }
}

impl std::error::Error for Interrupted {}

/// How a guest ended, before classification.
pub(crate) enum GuestEnd {
    Instantiate(wasmtime::Error),
    Returned(Vec<Val>),
    CommandFailed,
    Failed(wasmtime::Error),
}

impl Runtime {
    pub fn new(config: RuntimeConfig) -> anyhow::Result<Self> {
        let standard = EngineSlot::build(EngineKind::Standard, &config)?;
        let ticker = EpochTicker::new(standard.engine.clone(), config.epoch_tick);
        Ok(Self {
            config,
            standard,
            concurrent: OnceLock::new(),
            building: Mutex::new(()),
            ticker,
            module_linker: OnceLock::new(),
            module_linker_sync: OnceLock::new(),
            component_linker: OnceLock::new(),
            async_command_linker: OnceLock::new(),
            programs: Mutex::new(HashMap::new()),
            http_linker: OnceLock::new(),
            http_service_linker: OnceLock::new(),
        })
    }

    /// The engine of core modules and of components without component-model
    /// async (WASI 0.1 and 0.2).
    pub fn engine(&self) -> &Engine {
        &self.standard.engine
    }

    /// The standard engine's allocation strategy (the concurrent one's is
    /// logged when it is built).
    pub fn allocation_strategy(&self) -> AllocationStrategy {
        self.standard.strategy
    }

    /// The standard engine's cache folder; [`Runtime::entry_path`] names a
    /// program's own entry.
    pub fn cache(&self) -> &CompileCache {
        &self.standard.cache
    }

    /// Where the compiled code of `program` lives in the cache (it may not
    /// exist when the cache could not be written).
    pub fn entry_path(&self, program: &Program) -> Result<PathBuf, LoadError> {
        Ok(self.slot(program.engine_kind())?.cache.entry_path(&program.digest()))
    }

    /// The engine of `kind`, building the concurrent one on first use.
    pub(crate) fn slot(&self, kind: EngineKind) -> Result<&EngineSlot, LoadError> {
        if kind == EngineKind::Standard {
            return Ok(&self.standard);
        }
        if let Some(slot) = self.concurrent.get() {
            return Ok(slot);
        }
        let _building = self.building.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = self.concurrent.get() {
            return Ok(slot);
        }
        let slot = EngineSlot::build(kind, &self.config).map_err(|e| LoadError::Engine(format!("{e:#}")))?;
        self.ticker.add(slot.engine.clone());
        Ok(self.concurrent.get_or_init(|| slot))
    }

    /// Read and load a file: a module, a component, WAT text, or (with
    /// `allow_precompiled`) an artifact precompiled by this engine.
    pub fn load_file(&self, path: &Path, allow_precompiled: bool) -> Result<(Program, CacheOutcome), LoadError> {
        let what = path.display().to_string();
        if allow_precompiled && Engine::detect_precompiled_file(path).ok().flatten().is_some() {
            return self.load_precompiled_file(path, &what);
        }
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read { path: path.to_owned(), source })?;
        self.load_bytes(&bytes, &what, allow_precompiled)
    }

    /// [`Runtime::load_file`] of Wasm (never a precompiled artifact) that,
    /// when not cached, is compiled as `how` says (e.g. within a budget).
    pub fn load_file_compiling(&self, path: &Path, how: Compile) -> Result<(Program, CacheOutcome), LoadError> {
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read { path: path.to_owned(), source })?;
        self.load_bytes_compiling(&bytes, &path.display().to_string(), false, how)
    }

    /// Load Wasm from memory (see [`Runtime::load_file`]); `what` names it in errors.
    pub fn load_bytes(
        &self,
        bytes: &[u8],
        what: &str,
        allow_precompiled: bool,
    ) -> Result<(Program, CacheOutcome), LoadError> {
        self.load_bytes_compiling(bytes, what, allow_precompiled, Compile::InProcess)
    }

    fn load_bytes_compiling(
        &self,
        bytes: &[u8],
        what: &str,
        allow_precompiled: bool,
        how: Compile,
    ) -> Result<(Program, CacheOutcome), LoadError> {
        let format = WasmFormat::of(bytes, what)?;
        match format {
            WasmFormat::Module | WasmFormat::Component => {
                let digest = Digest::of(bytes);
                self.load_binary(bytes, digest, format == WasmFormat::Component, what, how)
            }
            WasmFormat::Text => {
                let (binary, component) = crate::program::assemble(bytes, what)?;
                self.load_binary(&binary, Digest::of(&binary), component, what, how)
            }
            WasmFormat::PrecompiledModule | WasmFormat::PrecompiledComponent if !allow_precompiled => {
                Err(LoadError::PrecompiledNotAllowed { what: what.to_owned() })
            }
            WasmFormat::PrecompiledModule | WasmFormat::PrecompiledComponent => {
                let component = format == WasmFormat::PrecompiledComponent;
                // SAFETY: the caller vouched for these bytes (--allow-precompiled);
                // wasmtime still checks the engine compatibility header.
                let program = self.precompiled(Digest::of(bytes), what, |engine| unsafe {
                    if component {
                        Component::deserialize(engine, bytes).map(Compiled::Component)
                    } else {
                        Module::deserialize(engine, bytes).map(Compiled::Module)
                    }
                })?;
                Ok((program, CacheOutcome::Precompiled))
            }
        }
    }

    /// Load Wasm binary bytes whose digest the caller already verified (e.g.
    /// a registry blob), keyed in the cache by that digest.
    pub fn load_verified(
        &self,
        bytes: &[u8],
        digest: Digest,
        what: &str,
    ) -> Result<(Program, CacheOutcome), LoadError> {
        self.load_verified_compiling(bytes, digest, what, Compile::InProcess)
    }

    /// [`Runtime::load_verified`], compiling as `how` says when not cached.
    pub fn load_verified_compiling(
        &self,
        bytes: &[u8],
        digest: Digest,
        what: &str,
        how: Compile,
    ) -> Result<(Program, CacheOutcome), LoadError> {
        match WasmFormat::detect(bytes) {
            Some(WasmFormat::Module) => self.load_binary(bytes, digest, false, what, how),
            Some(WasmFormat::Component) => self.load_binary(bytes, digest, true, what, how),
            _ => Err(LoadError::not_wasm(bytes, what)),
        }
    }

    /// The program for `digest` from the compile cache, trusting the entry
    /// (see `CompileCache::load_trusted`): how a confined guest process
    /// gets the code its shim compiled.
    pub fn load_cached(&self, digest: Digest, engine: EngineKind) -> Result<Program, LoadError> {
        let slot = self.slot(engine)?;
        let compiled = slot.cache.load_trusted(&slot.engine, &digest)?.ok_or_else(|| {
            LoadError::from(crate::error::CacheError::Compile(format!("{digest} is not in the compile cache")))
        })?;
        Ok(Program::new(&slot.engine, engine, digest, compiled))
    }

    /// `program`'s compiled code as bytes, for a guest process of the same
    /// engine configuration when the cache could not keep it
    /// ([`Runtime::load_code`]).
    pub fn compiled_code(&self, program: &Program) -> Result<Vec<u8>, LoadError> {
        let code = match program.compiled() {
            Compiled::Module(module) => module.serialize(),
            Compiled::Component(component) => component.serialize(),
        };
        code.map_err(|e| {
            LoadError::from(crate::error::CacheError::Compile(format!("serializing {}: {e:#}", program.digest())))
        })
    }

    /// The program for `digest` from `code` its shim compiled and handed
    /// over (the cache could not keep it: see [`Runtime::compiled_code`]).
    pub fn load_code(&self, digest: Digest, code: &[u8], engine: EngineKind) -> Result<Program, LoadError> {
        let component = Engine::detect_precompiled(code) == Some(wasmtime::Precompiled::Component);
        let slot = self.slot(engine)?;
        Ok(Program::new(&slot.engine, engine, digest, crate::cache::deserialize(&slot.engine, code, component)?))
    }

    fn load_precompiled_file(&self, path: &Path, what: &str) -> Result<(Program, CacheOutcome), LoadError> {
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read { path: path.to_owned(), source })?;
        let component = Engine::detect_precompiled(&bytes) == Some(wasmtime::Precompiled::Component);
        // SAFETY: the caller vouched for this file (--allow-precompiled).
        let program = self.precompiled(Digest::of(&bytes), what, |engine| unsafe {
            if component {
                Component::deserialize_file(engine, path).map(Compiled::Component)
            } else {
                Module::deserialize_file(engine, path).map(Compiled::Module)
            }
        })?;
        Ok((program, CacheOutcome::Precompiled))
    }

    /// A precompiled artifact, on whichever of the two engines made it.
    fn precompiled(
        &self,
        digest: Digest,
        what: &str,
        deserialize: impl Fn(&Engine) -> wasmtime::Result<Compiled>,
    ) -> Result<Program, LoadError> {
        let standard = match deserialize(&self.standard.engine) {
            Ok(compiled) => return Ok(Program::new(&self.standard.engine, EngineKind::Standard, digest, compiled)),
            Err(e) => e,
        };
        let slot = self.slot(EngineKind::Concurrent)?;
        match deserialize(&slot.engine) {
            Ok(compiled) => Ok(Program::new(&slot.engine, EngineKind::Concurrent, digest, compiled)),
            Err(_) => {
                Err(LoadError::IncompatiblePrecompiled { what: what.to_owned(), message: format!("{standard:#}") })
            }
        }
    }

    fn load_binary(
        &self,
        bytes: &[u8],
        digest: Digest,
        component: bool,
        what: &str,
        how: Compile,
    ) -> Result<(Program, CacheOutcome), LoadError> {
        if let Some(program) = self.programs_lock().get(&digest) {
            return Ok((program.clone(), CacheOutcome::Memory));
        }
        let engine = EngineKind::of_binary(bytes, component);
        let slot = self.slot(engine)?;
        let (compiled, outcome) = slot.cache.load_or_compile(&slot.engine, &digest, bytes, component, what, how)?;
        let program = Program::new(&slot.engine, engine, digest, compiled);
        self.programs_lock().insert(digest, program.clone());
        Ok((program, outcome))
    }

    /// Forget the programs loaded in this process (the disk cache stays):
    /// the next load of each goes back to the cache, as a new process would.
    pub fn forget_programs(&self) {
        self.programs_lock().clear();
    }

    fn programs_lock(&self) -> std::sync::MutexGuard<'_, HashMap<Digest, Program>> {
        // A map of clones: a panic while holding it cannot leave it half-updated.
        self.programs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Link `program` against the WASI it imports (cached per program), so
    /// an unknown import is reported before anything runs.
    pub fn link(&self, program: &Program) -> Result<(), RunError> {
        let unknown = |e: wasmtime::Error| RunError::UnknownImport(link_error_message(&e));
        match (program.compiled(), program.kind()) {
            // Modules run through `run_blocking`'s synchronous linker.
            (Compiled::Module(module), _) => {
                program.module_pre_sync(self.module_linker_sync()?, module).map(drop).map_err(unknown)
            }
            (Compiled::Component(component), ProgramKind::Command) => {
                program.command_pre(self.command_linker(program.engine_kind())?, component).map(drop).map_err(unknown)
            }
            (Compiled::Component(component), ProgramKind::AsyncCommand) => program
                .async_command_pre(self.command_linker(program.engine_kind())?, component)
                .map(drop)
                .map_err(unknown),
            (Compiled::Component(component), ProgramKind::HttpProxy) => {
                program.proxy_pre(self.http_linker_for(program.engine_kind())?, component).map(drop).map_err(unknown)
            }
            (Compiled::Component(component), ProgramKind::HttpService) => {
                program.service_pre(self.http_linker_for(program.engine_kind())?, component).map(drop).map_err(unknown)
            }
            (Compiled::Component(_), _) => Err(RunError::NotACommand(format!("component {}", program.digest()))),
        }
    }

    /// WASI 0.1 with async host calls, for modules run on an executor.
    pub(crate) fn module_linker(&self) -> Result<&wasmtime::Linker<ModuleState>, RunError> {
        built_once(&self.module_linker, "the WASI 0.1 linker", || {
            let mut linker = wasmtime::Linker::new(&self.standard.engine);
            wasmtime_wasi::p1::add_to_linker_async(&mut linker, |s: &mut ModuleState| &mut s.wasi)?;
            exit_with_any_status(&mut linker)?;
            Ok(linker)
        })
    }

    /// WASI 0.1 with synchronous host calls ([`Runtime::run_blocking`]).
    pub(crate) fn module_linker_sync(&self) -> Result<&wasmtime::Linker<ModuleState>, RunError> {
        built_once(&self.module_linker_sync, "the synchronous WASI 0.1 linker", || {
            let mut linker = wasmtime::Linker::new(&self.standard.engine);
            wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |s: &mut ModuleState| &mut s.wasi)?;
            exit_with_any_status(&mut linker)?;
            Ok(linker)
        })
    }

    /// WASI 0.2, for command components.
    fn component_linker(&self) -> Result<&wasmtime::component::Linker<ComponentState>, RunError> {
        built_once(&self.component_linker, "the WASI 0.2 linker", || {
            let mut linker = wasmtime::component::Linker::new(&self.standard.engine);
            wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
            Ok(linker)
        })
    }

    /// The WASI linker for a command (0.2 or 0.3) on `engine`: a component
    /// using component-model async links against 0.3 and 0.2 both.
    pub(crate) fn command_linker(
        &self,
        engine: EngineKind,
    ) -> Result<&wasmtime::component::Linker<ComponentState>, RunError> {
        match engine {
            EngineKind::Standard => self.component_linker(),
            EngineKind::Concurrent => self.async_command_linker(),
        }
    }

    /// The wasi:http linker for an HTTP function (0.2 or 0.3) on `engine`.
    pub(crate) fn http_linker_for(
        &self,
        engine: EngineKind,
    ) -> Result<&wasmtime::component::Linker<crate::state::HttpState>, RunError> {
        match engine {
            EngineKind::Standard => self.http_linker(),
            EngineKind::Concurrent => self.http_service_linker(),
        }
    }

    /// The concurrent engine, for the linkers that live on it.
    fn concurrent_engine(&self) -> Result<&Engine, RunError> {
        Ok(&self.slot(EngineKind::Concurrent).map_err(|e| RunError::Instantiate(e.to_string()))?.engine)
    }

    /// WASI 0.3 and 0.2, for WASI 0.3 command components: a 0.3 guest
    /// built with Rust's std for wasm32-wasip2 imports some 0.2 too (as
    /// `wasmtime run -Sp3` links both).
    fn async_command_linker(&self) -> Result<&wasmtime::component::Linker<ComponentState>, RunError> {
        let engine = self.concurrent_engine()?;
        built_once(&self.async_command_linker, "the WASI 0.3 linker", || wasi_0_2_and_0_3(engine))
    }

    /// The linker for `wasi:http/service` (0.3) components: WASI 0.2 and
    /// 0.3, and wasi:http 0.3 (and 0.2, as `wasmtime serve` links them).
    fn http_service_linker(&self) -> Result<&wasmtime::component::Linker<crate::state::HttpState>, RunError> {
        let engine = self.concurrent_engine()?;
        built_once(&self.http_service_linker, "the wasi:http 0.3 linker", || {
            let mut linker = wasi_0_2_and_0_3(engine)?;
            wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
            wasmtime_wasi_http::p3::add_to_linker(&mut linker)?;
            Ok(linker)
        })
    }

    /// The linker for `wasi:http/proxy` components.
    fn http_linker(&self) -> Result<&wasmtime::component::Linker<crate::state::HttpState>, RunError> {
        built_once(&self.http_linker, "the wasi:http linker", || {
            let mut linker = wasmtime::component::Linker::new(&self.standard.engine);
            // All of WASI 0.2 (Rust's std imports `wasi:cli/environment` and
            // friends even in a proxy), then `wasi:http`, as `wasmtime serve` does.
            wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
            wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
            Ok(linker)
        })
    }

    /// Keeps the epoch ticker running while alive (a guest runs).
    pub(crate) fn ticker_running(&self) -> crate::ticker::Running {
        self.ticker.running()
    }

    /// A store on `engine` (its program's: [`Program::engine`]).
    pub(crate) fn new_store<T: 'static>(
        engine: &Engine,
        data: T,
        limits: &Limits,
        kill: &KillSwitch,
        yielding: Yielding,
    ) -> Store<T> {
        let mut store = Store::new(engine, data);
        // At every epoch tick a running guest checks for a kill or a passed
        // deadline (and traps with `Interrupted`), else yields to its executor
        // so other tasks on it make progress. The check cannot live only in
        // `race`'s timer: a guest that yields constantly keeps a current-thread
        // executor busy, and tokio then polls its timer wheel too rarely.
        kill.arm(engine);
        let kill = kill.clone();
        let deadline = limits.deadline.map(|after| std::time::Instant::now() + after);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if kill.signal().is_some() || deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                return Err(wasmtime::Error::new(Interrupted));
            }
            Ok(match yielding {
                Yielding::ToExecutor => UpdateDeadline::Yield(1),
                Yielding::Never => UpdateDeadline::Continue(1),
            })
        });
        store
    }

    /// Drive the guest until it ends, `kill` fires, or the deadline passes.
    /// Dropping the guest future unwinds its fiber, wherever it is.
    pub(crate) async fn race(
        &self,
        guest: impl std::future::Future<Output = GuestEnd>,
        limits: &Limits,
        kill: &KillSwitch,
        executor: Executor,
    ) -> Result<GuestEnd, ExitStatus> {
        // Ticks make the guest yield to the executor's other tasks and check
        // its deadline; alone on its own executor without one, it needs none
        // (a kill bumps the epoch itself), and a sleeping guest costs nothing.
        let _ticking = (executor == Executor::Shared || limits.deadline.is_some()).then(|| self.ticker.running());
        let end = tokio::select! {
            biased;
            signal = kill.signaled() => return Err(ExitStatus::Signaled(signal)),
            () = deadline_passes(limits.deadline) => return Err(ExitStatus::DeadlineExceeded),
            end = guest => end,
        };
        stopped_by_epoch(end, kill)
    }
}

/// A component linker with all of WASI 0.2 and 0.3.
fn wasi_0_2_and_0_3<T: wasmtime_wasi::WasiView + 'static>(
    engine: &Engine,
) -> wasmtime::Result<wasmtime::component::Linker<T>> {
    let mut linker = wasmtime::component::Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi::p3::add_to_linker(&mut linker)?;
    Ok(linker)
}

/// `proc_exit` with any status a process can have, as exit(2) does (the low
/// 8 bits): wasmtime-wasi traps on 126 and above, which turned a guest's
/// `exit(200)` into 134.
fn exit_with_any_status(linker: &mut wasmtime::Linker<ModuleState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    linker.func_wrap("wasi_snapshot_preview1", "proc_exit", |status: i32| -> wasmtime::Result<()> {
        Err(I32Exit(status & 0xff).into())
    })?;
    linker.allow_shadowing(false);
    Ok(())
}

/// Resolves when `deadline` (from now) passes; never without one.
pub(crate) async fn deadline_passes(deadline: Option<std::time::Duration>) {
    match deadline {
        Some(after) => tokio::time::sleep(after).await,
        None => std::future::pending().await,
    }
}

/// A guest that trapped with [`Interrupted`] was stopped: by the kill if one
/// was sent, else by its deadline.
pub(crate) fn stopped_by_epoch(end: GuestEnd, kill: &KillSwitch) -> Result<GuestEnd, ExitStatus> {
    match &end {
        GuestEnd::Failed(e) | GuestEnd::Instantiate(e) if e.is::<Interrupted>() => {
            Err(kill.signal().map_or(ExitStatus::DeadlineExceeded, ExitStatus::Signaled))
        }
        _ => Ok(end),
    }
}

/// Whom a guest's executor runs besides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Executor {
    /// The caller's: other tasks need the guest to yield now and then.
    Shared,
    /// Its own, for this run only (`Runtime::run_blocking`).
    Own,
}

/// What a running guest does at an epoch tick when it is not stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Yielding {
    /// Yield to its async executor (guests called with `call_async`).
    ToExecutor,
    /// Keep running (synchronous calls: nothing to yield to).
    Never,
}

pub(crate) fn resolve_module_entry(module: &Module, entry: &Entry) -> Result<String, RunError> {
    let name = match entry {
        Entry::Default => {
            if module.get_export("_start").is_none() {
                return Err(RunError::NotACommand(format!("module (exports: {})", export_names(module))));
            }
            "_start".to_owned()
        }
        Entry::Export(name) => name.clone(),
    };
    match module.get_export(&name) {
        None => Err(RunError::MissingExport { name, available: export_names(module) }),
        Some(ExternType::Func(ty)) if ty.params().len() == 0 => Ok(name),
        Some(ExternType::Func(ty)) => Err(RunError::UninvokableExport {
            name,
            why: format!("it takes {} parameter(s); only exports without parameters can be invoked", ty.params().len()),
        }),
        Some(_) => Err(RunError::UninvokableExport { name, why: "it is not a function".into() }),
    }
}

fn export_names(module: &Module) -> String {
    let names: Vec<_> = module.exports().map(|e| e.name()).collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

pub(crate) fn link_error_message(err: &wasmtime::Error) -> String {
    // wasmtime says "unknown import: `env::foo` has not been defined"; keep
    // the innermost, most specific part.
    let msg = format!("{err:#}");
    msg.strip_prefix("unknown import: ").unwrap_or(&msg).to_owned()
}

pub(crate) fn classify(end: Result<GuestEnd, ExitStatus>, oom: Option<&str>) -> Result<Outcome, RunError> {
    let status = match end {
        Err(stopped) => stopped,
        Ok(GuestEnd::Returned(results)) => {
            return Ok(Outcome { status: ExitStatus::Exited(0), results: results.iter().map(format_val).collect() })
        }
        Ok(GuestEnd::CommandFailed) => ExitStatus::Exited(1),
        Ok(GuestEnd::Instantiate(e)) => match oom {
            Some(why) => ExitStatus::OutOfMemory(format!("{why} (while instantiating: {e:#})")),
            None => return Err(RunError::Instantiate(format!("{e:#}"))),
        },
        Ok(GuestEnd::Failed(e)) => {
            if let Some(exit) = e.downcast_ref::<I32Exit>() {
                ExitStatus::Exited(exit.0)
            } else if let Some(why) = oom {
                ExitStatus::OutOfMemory(format!("{why}; then the guest failed: {e:?}"))
            } else {
                ExitStatus::Trapped(format!("{e:?}"))
            }
        }
    };
    Ok(Outcome { status, results: Vec::new() })
}

fn format_val(val: &Val) -> String {
    match val {
        Val::I32(v) => v.to_string(),
        Val::I64(v) => v.to_string(),
        Val::F32(v) => f32::from_bits(*v).to_string(),
        Val::F64(v) => f64::from_bits(*v).to_string(),
        other => format!("{other:?}"),
    }
}

/// `cell`'s value, built by `build` the first time (a race builds twice and
/// keeps one: building is pure).
fn built_once<'a, T>(
    cell: &'a OnceLock<T>,
    what: &str,
    build: impl FnOnce() -> wasmtime::Result<T>,
) -> Result<&'a T, RunError> {
    if let Some(value) = cell.get() {
        return Ok(value);
    }
    let value = build().map_err(|e| RunError::Instantiate(format!("building {what}: {e:#}")))?;
    Ok(cell.get_or_init(|| value))
}

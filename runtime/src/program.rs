//! What a piece of Wasm is, and the compiled form the runtime runs.

use crate::digest::Digest;
use crate::engine::EngineKind;
use crate::state::{ComponentState, HttpState, ModuleState};
use std::sync::{Arc, OnceLock};
use wasmtime::component::Component;
use wasmtime::{Engine, Module};
use wasmtime_wasi::p2::bindings::CommandPre;
use wasmtime_wasi::p3::bindings::CommandPre as AsyncCommandPre;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p3::bindings::ServicePre;

/// The encoding of some bytes, detected from their first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WasmFormat {
    /// A core module (`\0asm`, version 1).
    Module,
    /// A component (`\0asm`, layer 1).
    Component,
    /// WebAssembly text (a module or a component).
    Text,
    /// A module precompiled by this wasmtime (`wasmlet compile`).
    PrecompiledModule,
    /// A component precompiled by this wasmtime.
    PrecompiledComponent,
}

impl WasmFormat {
    pub fn detect(bytes: &[u8]) -> Option<Self> {
        const MAGIC: &[u8] = b"\0asm";
        if bytes.starts_with(MAGIC) && bytes.len() >= 8 {
            return match bytes[6..8] {
                [0, 0] => Some(WasmFormat::Module),
                [1, 0] => Some(WasmFormat::Component),
                _ => None,
            };
        }
        if bytes.starts_with(b"\x7fELF") {
            return match Engine::detect_precompiled(bytes)? {
                wasmtime::Precompiled::Module => Some(WasmFormat::PrecompiledModule),
                wasmtime::Precompiled::Component => Some(WasmFormat::PrecompiledComponent),
            };
        }
        let text = std::str::from_utf8(bytes.get(..bytes.len().min(256))?).ok();
        let first = text?.trim_start().chars().next()?;
        (first == '(' || first == ';').then_some(WasmFormat::Text)
    }
}

impl WasmFormat {
    /// The format of `bytes`, or the error naming `what` when it is none.
    pub(crate) fn of(bytes: &[u8], what: &str) -> Result<Self, crate::error::LoadError> {
        Self::detect(bytes).ok_or_else(|| crate::error::LoadError::not_wasm(bytes, what))
    }
}

/// The binary of WebAssembly text `text` (named `what` in errors), and
/// whether it is a component.
pub(crate) fn assemble(text: &[u8], what: &str) -> Result<(Vec<u8>, bool), crate::error::LoadError> {
    let binary = wat::parse_bytes(text)
        .map_err(|e| crate::error::LoadError::InvalidText { what: what.to_owned(), message: e.to_string() })?;
    let component = WasmFormat::detect(&binary) == Some(WasmFormat::Component);
    Ok((binary.into_owned(), component))
}

/// What running a program means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgramKind {
    /// A core module: WASI preview1 `_start`, or an export invoked by name.
    Module,
    /// A component exporting WASI 0.2's `wasi:cli/run`.
    Command,
    /// A component exporting WASI 0.3's `wasi:cli/run` (an async `run`,
    /// host calls that return `stream`s and `future`s).
    AsyncCommand,
    /// A component exporting `wasi:http/incoming-handler` (wasi:http 0.2):
    /// served, not run.
    HttpProxy,
    /// A component exporting `wasi:http/handler` (wasi:http 0.3's
    /// `service` world): served, not run.
    HttpService,
    /// A component exporting none of these.
    OtherComponent,
}

impl ProgramKind {
    /// Whether the program is served (an HTTP function), not run.
    pub fn is_http_function(self) -> bool {
        matches!(self, ProgramKind::HttpProxy | ProgramKind::HttpService)
    }

    /// What a component exporting `names` is. An HTTP handler wins over a
    /// command, and WASI 0.3 over 0.2 when a component exports both (Rust's
    /// std on wasm32-wasip2 adds a 0.2 `run` to a 0.3 guest).
    fn of_exports<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        names
            .into_iter()
            .filter_map(Self::of_export)
            .max_by_key(|kind| kind.precedence())
            .unwrap_or(ProgramKind::OtherComponent)
    }

    /// The kind an export named `name` makes a component, if any.
    fn of_export(name: &str) -> Option<Self> {
        let kinds = [
            ("wasi:http/handler@0.3", ProgramKind::HttpService),
            ("wasi:http/incoming-handler@0.2", ProgramKind::HttpProxy),
            ("wasi:cli/run@0.3", ProgramKind::AsyncCommand),
            ("wasi:cli/run@0.2", ProgramKind::Command),
        ];
        // Release candidates of WASI 0.3 (`@0.3.0-rc-…`) are other worlds
        // than the 0.3.0 the host implements.
        let rc = name.contains("@0.3") && name.contains("-rc");
        kinds.into_iter().find(|(prefix, _)| name.starts_with(prefix) && !rc).map(|(_, kind)| kind)
    }

    /// Which kind wins when a component's exports say more than one.
    fn precedence(self) -> u8 {
        match self {
            ProgramKind::HttpService => 4,
            ProgramKind::HttpProxy => 3,
            ProgramKind::AsyncCommand => 2,
            ProgramKind::Command => 1,
            ProgramKind::Module | ProgramKind::OtherComponent => 0,
        }
    }
}

#[derive(Clone)]
pub(crate) enum Compiled {
    Module(Module),
    Component(Component),
}

/// A compiled, ready-to-instantiate program. Cheap to clone.
#[derive(Clone)]
pub struct Program {
    inner: Arc<Inner>,
}

struct Inner {
    digest: Digest,
    kind: ProgramKind,
    /// The engine it was compiled for, which its stores must use.
    engine: Engine,
    engine_kind: EngineKind,
    compiled: Compiled,
    module_pre: OnceLock<wasmtime::InstancePre<ModuleState>>,
    module_pre_sync: OnceLock<wasmtime::InstancePre<ModuleState>>,
    /// Set once `_start` was found callable, so runs skip the export lookups.
    start_checked: OnceLock<()>,
    command_pre: OnceLock<CommandPre<ComponentState>>,
    async_command_pre: OnceLock<AsyncCommandPre<ComponentState>>,
    proxy_pre: OnceLock<ProxyPre<HttpState>>,
    service_pre: OnceLock<ServicePre<HttpState>>,
}

/// The value `link` makes, kept in `cell` after the first call: linking is
/// done once per program and reused by every run.
fn linked_once<P: Clone>(cell: &OnceLock<P>, link: impl FnOnce() -> wasmtime::Result<P>) -> wasmtime::Result<P> {
    if let Some(pre) = cell.get() {
        return Ok(pre.clone());
    }
    let pre = link()?;
    Ok(cell.get_or_init(|| pre).clone())
}

impl Program {
    pub(crate) fn new(engine: &Engine, engine_kind: EngineKind, digest: Digest, compiled: Compiled) -> Self {
        let kind = match &compiled {
            Compiled::Module(_) => ProgramKind::Module,
            Compiled::Component(component) => component_kind(engine, component),
        };
        Self {
            inner: Arc::new(Inner {
                digest,
                kind,
                engine: engine.clone(),
                engine_kind,
                compiled,
                module_pre: OnceLock::new(),
                module_pre_sync: OnceLock::new(),
                start_checked: OnceLock::new(),
                command_pre: OnceLock::new(),
                async_command_pre: OnceLock::new(),
                proxy_pre: OnceLock::new(),
                service_pre: OnceLock::new(),
            }),
        }
    }

    /// Digest of the Wasm bytes this program was compiled from.
    pub fn digest(&self) -> Digest {
        self.inner.digest
    }

    pub fn kind(&self) -> ProgramKind {
        self.inner.kind
    }

    /// The engine it runs on: with concurrency support only if it uses it.
    pub fn engine_kind(&self) -> EngineKind {
        self.inner.engine_kind
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    pub(crate) fn compiled(&self) -> &Compiled {
        &self.inner.compiled
    }

    /// Linking is done once per program and reused by every run.
    pub(crate) fn module_pre(
        &self,
        linker: &wasmtime::Linker<ModuleState>,
        module: &Module,
    ) -> wasmtime::Result<wasmtime::InstancePre<ModuleState>> {
        linked_once(&self.inner.module_pre, || linker.instantiate_pre(module))
    }

    /// Whether `_start` was already found callable by an earlier run.
    pub(crate) fn start_checked(&self) -> bool {
        self.inner.start_checked.get().is_some()
    }

    pub(crate) fn mark_start_checked(&self) {
        let _ = self.inner.start_checked.set(());
    }

    /// As [`Program::module_pre`], for the synchronous WASI linker.
    pub(crate) fn module_pre_sync(
        &self,
        linker: &wasmtime::Linker<ModuleState>,
        module: &Module,
    ) -> wasmtime::Result<wasmtime::InstancePre<ModuleState>> {
        linked_once(&self.inner.module_pre_sync, || linker.instantiate_pre(module))
    }

    pub(crate) fn command_pre(
        &self,
        linker: &wasmtime::component::Linker<ComponentState>,
        component: &Component,
    ) -> wasmtime::Result<CommandPre<ComponentState>> {
        linked_once(&self.inner.command_pre, || CommandPre::new(linker.instantiate_pre(component)?))
    }

    pub(crate) fn async_command_pre(
        &self,
        linker: &wasmtime::component::Linker<ComponentState>,
        component: &Component,
    ) -> wasmtime::Result<AsyncCommandPre<ComponentState>> {
        linked_once(&self.inner.async_command_pre, || AsyncCommandPre::new(linker.instantiate_pre(component)?))
    }
}

impl Program {
    pub(crate) fn proxy_pre(
        &self,
        linker: &wasmtime::component::Linker<HttpState>,
        component: &Component,
    ) -> wasmtime::Result<ProxyPre<HttpState>> {
        linked_once(&self.inner.proxy_pre, || ProxyPre::new(linker.instantiate_pre(component)?))
    }

    pub(crate) fn service_pre(
        &self,
        linker: &wasmtime::component::Linker<HttpState>,
        component: &Component,
    ) -> wasmtime::Result<ServicePre<HttpState>> {
        linked_once(&self.inner.service_pre, || ServicePre::new(linker.instantiate_pre(component)?))
    }
}

impl std::fmt::Debug for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Program").field("digest", &self.inner.digest).field("kind", &self.inner.kind).finish()
    }
}

impl ProgramKind {
    /// The kind of the Wasm binary `bytes` (a module, or a component when
    /// `component`), from its top-level exports alone, as
    /// [`Program::kind`] would say once compiled: for a process that only
    /// prepares a program another process runs. `None` when the binary
    /// cannot be parsed.
    pub fn of_binary(bytes: &[u8], component: bool) -> Option<Self> {
        if !component {
            return Some(ProgramKind::Module);
        }
        component_exports_kind(bytes).ok()
    }
}

/// [`component_kind`] of a component's bytes: its own export section,
/// nested modules and components skipped unparsed.
fn component_exports_kind(bytes: &[u8]) -> Result<ProgramKind, wasmparser::BinaryReaderError> {
    use wasmparser::{Chunk, Payload};
    let mut parser = wasmparser::Parser::new(0);
    let mut rest = bytes;
    let mut names = Vec::new();
    loop {
        let Chunk::Parsed { consumed, payload } = parser.parse(rest, true)? else {
            return Ok(ProgramKind::of_exports(names)); // not reachable with eof = true
        };
        rest = rest.get(consumed..).unwrap_or_default();
        match payload {
            // Their bytes follow, and are not the parent's to parse.
            Payload::ModuleSection { unchecked_range, .. } | Payload::ComponentSection { unchecked_range, .. } => {
                rest = rest.get(unchecked_range.len()..).unwrap_or_default();
            }
            Payload::ComponentExportSection(exports) => {
                for export in exports {
                    names.push(export?.name.name);
                }
            }
            Payload::End(_) => return Ok(ProgramKind::of_exports(names)),
            _ => {}
        }
    }
}

fn component_kind(engine: &Engine, component: &Component) -> ProgramKind {
    let ty = component.component_type();
    ProgramKind::of_exports(ty.exports(engine).map(|(name, _)| name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_formats_from_leading_bytes() {
        assert_eq!(WasmFormat::detect(b"\0asm\x01\0\0\0"), Some(WasmFormat::Module));
        assert_eq!(WasmFormat::detect(b"\0asm\x0d\0\x01\0"), Some(WasmFormat::Component));
        assert_eq!(WasmFormat::detect(b"  (module)"), Some(WasmFormat::Text));
        assert_eq!(WasmFormat::detect(b";; hi\n(module)"), Some(WasmFormat::Text));
        assert_eq!(WasmFormat::detect(b"#!/bin/sh\n"), None);
        assert_eq!(WasmFormat::detect(b"\x7fELF\x02\x01\x01"), None);
        assert_eq!(WasmFormat::detect(b""), None);
        assert_eq!(WasmFormat::detect(b"\0asm"), None);
    }

    #[test]
    fn kinds_from_exports_prefer_http_and_wasi_0_3() {
        let kind = |names: &[&str]| ProgramKind::of_exports(names.iter().copied());
        assert_eq!(kind(&["wasi:cli/run@0.2.6"]), ProgramKind::Command);
        assert_eq!(kind(&["wasi:cli/run@0.3.0"]), ProgramKind::AsyncCommand);
        assert_eq!(kind(&["wasi:cli/run@0.2.0", "wasi:cli/run@0.3.0"]), ProgramKind::AsyncCommand);
        assert_eq!(kind(&["wasi:cli/run@0.3.0-rc-2026-03-15"]), ProgramKind::OtherComponent);
        assert_eq!(kind(&["wasi:cli/run@0.3.0", "wasi:cli/run@0.2.0"]), ProgramKind::AsyncCommand);
        assert_eq!(kind(&["wasi:cli/run@0.2.0", "wasi:http/incoming-handler@0.2.0"]), ProgramKind::HttpProxy);
        assert_eq!(kind(&["wasi:http/handler@0.3.0", "wasi:cli/run@0.3.0"]), ProgramKind::HttpService);
        assert_eq!(kind(&["wasi:cli/run@0.1.0", "my:pkg/run@0.3.0"]), ProgramKind::OtherComponent);
        assert_eq!(kind(&[]), ProgramKind::OtherComponent);
        assert!(ProgramKind::HttpService.is_http_function() && !ProgramKind::AsyncCommand.is_http_function());
    }
}

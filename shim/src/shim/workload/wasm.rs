//! What both Wasm workloads share: the compiled program, the prepared
//! capabilities and stdio, the launch of their guest process, and the
//! guest's output relays.

use super::{HttpFunction, WasmRun, Workload};
use crate::shim::confine::Confinement;
use crate::shim::guest::protocol::{Launch, Preopen, Serve};
use crate::shim::spec::WasmTask;
use crate::shim::stdio::{HeldFifos, Relay, Stdio};
use crate::shim::task::error::{TaskError, TaskResult};
use std::sync::{Arc, Mutex};
use wasmlet_runtime::{EngineKind, Entry, Prepared, ProgramKind, Runtime};

pub struct WasmGuest {
    pub(super) id: String,
    runtime: Arc<Runtime>,
    /// Its digest and kind (the guest process loads and links it).
    digest: wasmlet_runtime::Digest,
    kind: ProgramKind,
    engine: EngineKind,
    /// What the guest process is spawned with.
    prepared: Mutex<Option<(WasmTask, Stdio)>>,
    pub(super) output: GuestOutput,
    /// The compiled code, when the compile cache could not keep it (the
    /// guest process gets it over its control socket).
    code: Option<Arc<Vec<u8>>>,
}

impl WasmGuest {
    /// A guest ready to start; `relay` already copies its output.
    pub fn new(id: &str, runtime: Arc<Runtime>, program: Prepared, task: WasmTask, stdio: Stdio, relay: Relay) -> Self {
        Self {
            id: id.to_owned(),
            runtime,
            digest: program.digest,
            kind: program.kind,
            engine: program.engine,
            code: program.code.map(Arc::new),
            prepared: Mutex::new(Some((task, stdio))),
            output: GuestOutput::new(relay),
        }
    }

    /// The workload for this program's kind, run in a guest process
    /// confined by `confinement` (a run's is spawned now, a function's at
    /// Start).
    pub fn into_workload(self, confinement: Confinement) -> TaskResult<Arc<dyn Workload>> {
        Ok(match self.kind {
            kind if kind.is_http_function() => Arc::new(HttpFunction::new(self, confinement)),
            _ => Arc::new(WasmRun::spawn(self, confinement)?),
        })
    }

    /// The task and its stdio, once.
    pub(super) fn take_prepared(&self) -> TaskResult<(WasmTask, Stdio)> {
        lock(&self.prepared).take().ok_or_else(|| TaskError::FailedPrecondition("the guest was already started".into()))
    }

    /// What the guest process runs (`serve`: as an HTTP function).
    pub(super) fn launch(&self, task: &WasmTask, serve: Option<Serve>) -> Launch {
        let caps = &task.caps;
        Launch {
            id: self.id.clone(),
            digest: self.digest.to_string(),
            concurrent_engine: self.engine == EngineKind::Concurrent,
            cache_dir: self.runtime.cache().root().to_owned(),
            export: match &task.entry {
                Entry::Default => None,
                Entry::Export(name) => Some(name.clone()),
            },
            args: caps.args.clone(),
            env: caps.env.clone(),
            cwd: caps.cwd.clone(),
            preopens: caps
                .preopens
                .iter()
                .map(|p| Preopen { host: p.host.clone(), guest: p.guest.clone(), read_only: p.read_only })
                .collect(),
            network: caps.network,
            stdin: false,
            memory: task.limits.memory,
            serve,
            code_bytes: self.code.as_ref().map(|c| c.len() as u64),
            code: self.code.clone(),
        }
    }

    /// Drop what was never handed to a guest process (its pipe ends).
    pub(super) fn discard_prepared(&self) {
        lock(&self.prepared).take();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// The guest's memory cap for new resources; `None` when they say nothing
/// about memory, `Some(None)` for no limit.
pub(super) fn guest_memory_cap(resources: &oci_spec::runtime::LinuxResources) -> Option<Option<u64>> {
    let memory = resources.memory().as_ref()?;
    Some(memory.limit().filter(|l| *l > 0).map(|l| crate::shim::guest_memory_limit(l as u64)))
}

/// The guest's output: the relays copying it to containerd, and the FIFOs'
/// read ends held from the stop until Delete.
pub struct GuestOutput {
    relay: Mutex<Option<Relay>>,
    held_fifos: Mutex<Option<HeldFifos>>,
    killed: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl GuestOutput {
    pub fn new(relay: Relay) -> Self {
        let killed = relay.killed();
        Self { relay: Mutex::new(Some(relay)), held_fifos: Mutex::new(None), killed }
    }

    /// The task is being killed (see `Relay::killed`).
    pub fn killing(&self) {
        self.killed.store(true, std::sync::atomic::Ordering::Release);
    }

    /// Pass on what the guest wrote and close the destinations, whoever
    /// still holds the guest's ends of the pipes.
    pub async fn close(&self) {
        let relay = lock(&self.relay).take();
        if let Some(relay) = relay {
            let held = relay.close().await;
            *lock(&self.held_fifos) = Some(held);
        }
    }
}

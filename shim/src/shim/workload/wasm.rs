//! What both Wasm workloads share: the compiled program, the prepared
//! capabilities and stdio, the guest's output relays and its kill switch.

use super::{Finished, HttpFunction, WasmRun, Workload};
use crate::shim::spec::WasmTask;
use crate::shim::stdio::{HeldFifos, Relay, Stdio};
use crate::shim::task::error::{TaskError, TaskResult};
use std::sync::{Arc, Mutex};
use wasmlet_runtime::{KillSwitch, MemoryCap, Outcome, Program, ProgramKind, Runtime};

pub struct WasmGuest {
    pub(super) id: String,
    pub(super) runtime: Arc<Runtime>,
    pub(super) program: Program,
    /// What Start consumes.
    prepared: Mutex<Option<(WasmTask, Stdio)>>,
    /// The guest's output relays, closed when the task stops.
    relay: Mutex<Option<Relay>>,
    /// The output FIFOs' read ends, held from the stop until Delete.
    held_fifos: Mutex<Option<HeldFifos>>,
    pub(super) kill: KillSwitch,
    /// The guest's memory cap, which Update moves with the cgroup's limit.
    memory_cap: Option<MemoryCap>,
}

impl WasmGuest {
    /// A guest ready to start; `relay` already copies its output.
    pub fn new(id: &str, runtime: Arc<Runtime>, program: Program, task: WasmTask, stdio: Stdio, relay: Relay) -> Self {
        Self {
            id: id.to_owned(),
            runtime,
            program,
            memory_cap: task.limits.memory_cap.clone(),
            prepared: Mutex::new(Some((task, stdio))),
            relay: Mutex::new(Some(relay)),
            held_fifos: Mutex::new(None),
            kill: KillSwitch::new(),
        }
    }

    /// The workload for this program's kind.
    pub fn into_workload(self) -> Arc<dyn Workload> {
        match self.program.kind() {
            ProgramKind::HttpProxy => Arc::new(HttpFunction::new(self)),
            _ => Arc::new(WasmRun::new(self)),
        }
    }

    /// The task and its stdio, once.
    pub(super) fn take_prepared(&self) -> TaskResult<(WasmTask, Stdio)> {
        lock(&self.prepared).take().ok_or_else(|| TaskError::FailedPrecondition("the guest was already started".into()))
    }

    /// Pass on what the guest wrote and close its destinations, whatever
    /// the guest's thread still holds; keep the FIFOs' read ends.
    pub(super) async fn close_stdio(&self) {
        // A guest that never started: its pipe ends go now.
        lock(&self.prepared).take();
        let relay = lock(&self.relay).take();
        if let Some(relay) = relay {
            let held = relay.close().await;
            *lock(&self.held_fifos) = Some(held);
        }
    }

    pub(super) fn update(&self, resources: &oci_spec::runtime::LinuxResources) {
        if let (Some(cap), Some(memory)) = (&self.memory_cap, resources.memory().as_ref()) {
            let limit = memory.limit().filter(|l| *l > 0).map(|l| crate::shim::guest_memory_limit(l as u64));
            cap.set(limit);
            tracing::info!(id = %self.id, guest_memory_limit = ?limit, "memory limit updated");
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// How a guest's run ended, as containerd reports it (logged once).
pub(super) fn finished(id: &str, result: Result<Outcome, String>) -> Finished {
    match result {
        Ok(outcome) => {
            match &outcome.status {
                wasmlet_runtime::ExitStatus::Exited(_) => {
                    tracing::info!(%id, status = %outcome.status, "guest finished")
                }
                other => tracing::warn!(%id, status = %other, "guest stopped"),
            }
            Finished { status: outcome.code() as u32, oom: outcome.status.is_oom() }
        }
        Err(message) => {
            tracing::error!(%id, error = %message, "guest could not start");
            Finished::status(1)
        }
    }
}

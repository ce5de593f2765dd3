//! A Wasm guest run to completion (a WASI command or a module's export).

use super::wasm::{finished, WasmGuest};
use super::{Started, Workload};
use crate::shim::spec::WasmTask;
use crate::shim::task::error::TaskResult;
use async_trait::async_trait;
use wasmlet_runtime::RunRequest;

pub struct WasmRun {
    guest: WasmGuest,
    pid: u32,
}

impl WasmRun {
    pub fn new(guest: WasmGuest) -> Self {
        Self { guest, pid: std::process::id() }
    }
}

#[async_trait]
impl Workload for WasmRun {
    fn kind(&self) -> &'static str {
        "Wasm"
    }

    fn pid(&self) -> u32 {
        self.pid
    }

    async fn start(&self) -> TaskResult<Started> {
        let (task, stdio) = self.guest.take_prepared()?;
        let WasmTask { entry, mut caps, limits, .. } = task;
        caps.stdin = stdio.stdin;
        caps.stdout = stdio.stdout;
        caps.stderr = stdio.stderr;
        let (runtime, program, kill, id) =
            (self.guest.runtime.clone(), self.guest.program.clone(), self.guest.kill.clone(), self.guest.id.clone());
        // On a thread of its own (a busy guest never delays the Task API),
        // synchronous WASI for modules. Spawned now, not when `finished` is
        // first polled.
        let run = tokio::spawn(async move {
            runtime.run_on_thread(RunRequest { program, entry, caps, limits, kill }).await.map_err(|e| e.to_string())
        });
        let finished = Box::pin(async move {
            let result = run.await.unwrap_or_else(|e| Err(format!("the guest's task failed: {e}")));
            finished(&id, result)
        });
        Ok(Started { pid: self.pid, finished })
    }

    async fn kill(&self, signal: i32, _all: bool) -> TaskResult<()> {
        self.guest.kill.kill(signal);
        Ok(())
    }

    async fn stopped(&self) {
        self.guest.close_stdio().await;
    }

    fn update(&self, resources: &oci_spec::runtime::LinuxResources) {
        self.guest.update(resources);
    }
}

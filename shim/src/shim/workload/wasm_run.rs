//! A Wasm guest run to completion (a WASI command or a module's export), in
//! a guest process of its own, confined as the spec says (`guest`,
//! `confine`): spawned at Create, released at Start once it is ready,
//! signalled by Kill.

use super::wasm::{guest_memory_cap, GuestOutput, WasmGuest};
use super::{Started, Workload};
use crate::shim::confine::Confinement;
use crate::shim::guest::GuestProcess;
use crate::shim::task::error::{TaskError, TaskResult};
use async_trait::async_trait;
use std::sync::Arc;

pub struct WasmRun {
    id: String,
    process: Arc<GuestProcess>,
    output: GuestOutput,
    /// The shim's pid, which containerd is told.
    pid: u32,
}

impl WasmRun {
    /// Spawn the guest process for `guest` (it loads and waits for Start).
    pub fn spawn(guest: WasmGuest, confinement: Confinement) -> TaskResult<Self> {
        let (task, stdio) = guest.take_prepared()?;
        let launch = guest.launch(&task, None);
        let process = GuestProcess::spawn(launch, confinement, stdio, None)
            .map_err(|e| TaskError::Internal(format!("starting the guest process: {e}")))?;
        tracing::debug!(id = %guest.id, pid = process.pid(), "guest process spawned");
        Ok(Self { id: guest.id.clone(), process: Arc::new(process), output: guest.output, pid: std::process::id() })
    }

    /// Wait, off the executor, until the guest process is confined, has
    /// loaded and linked the program, and waits for Start; else the cause
    /// (the process is reaped).
    pub async fn ready(&self) -> TaskResult<()> {
        let process = self.process.clone();
        let waited = tokio::task::spawn_blocking(move || process.wait_ready())
            .await
            .unwrap_or_else(|e| Err(format!("waiting for the guest process: {e}")));
        if let Err(why) = waited {
            self.process.discard_off_executor().await;
            return Err(TaskError::InvalidArgument(why));
        }
        Ok(())
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

    /// Once the guest process is confined and has linked the program: Start
    /// returns with the guest running as the spec says, and a program that
    /// cannot run fails Start with the cause. Its preparation overlapped
    /// with containerd's work between Create and Start, so this rarely
    /// waits (waiting at Create instead cost ~10 ms of `ctr run` on
    /// containerd 2.1: the round trips no longer overlapped).
    async fn start(&self) -> TaskResult<Started> {
        self.ready().await?;
        self.process.start().map_err(|e| TaskError::Internal(format!("starting guest {}: {e}", self.id)))?;
        Ok(Started { pid: self.pid, finished: self.process.finished() })
    }

    async fn kill(&self, signal: i32, _all: bool) -> TaskResult<()> {
        self.output.killing();
        self.process.signal(signal);
        Ok(())
    }

    async fn stopped(&self) {
        // Killed before it started: nothing waits for the process. One that
        // reported its end is exiting by itself (reaped at Delete).
        if !self.process.reported_end() {
            self.process.discard_off_executor().await;
        }
        self.output.close().await;
    }

    async fn delete(&self) {
        self.process.discard_off_executor().await;
    }

    fn update(&self, resources: &oci_spec::runtime::LinuxResources) {
        if let Some(limit) = guest_memory_cap(resources) {
            self.process.set_memory(limit);
            tracing::info!(id = %self.id, guest_memory_limit = ?limit, "memory limit updated");
        }
    }
}

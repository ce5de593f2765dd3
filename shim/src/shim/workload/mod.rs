//! What a container runs, one type per kind, behind one trait that the Task
//! lifecycle (`task::lifecycle`) drives:
//!
//! | kind | type | pid containerd sees |
//! |---|---|---|
//! | CRI pod sandbox | [`PodSandbox`]: a holder process owning the pod's namespaces | the holder's |
//! | Linux container (a sidecar) | [`LinuxContainer`]: `runc run` in the shim's foreground | the shim's |
//! | Wasm run to completion | [`WasmRun`]: the guest in a confined guest process | the shim's |
//! | Wasm HTTP function | [`HttpFunction`]: the shim's listener, served by a confined guest process, an instance per request | the shim's |
//!
//! A workload knows nothing of phases or events: the lifecycle decides
//! which verb is valid when, records the exit and tells containerd.

mod http_function;
mod linux_container;
mod pod_sandbox;
mod wasm;
mod wasm_run;

pub use http_function::HttpFunction;
pub use linux_container::LinuxContainer;
pub use pod_sandbox::PodSandbox;
pub use wasm::WasmGuest;
pub use wasm_run::WasmRun;

use super::exec::ExecProcess;
use super::task::error::{TaskError, TaskResult};
use async_trait::async_trait;
use std::future::Future;
use std::pin::Pin;

/// How a workload ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finished {
    /// The exit status containerd reports (128 + signal when killed).
    pub status: u32,
    /// Killed for running out of memory (TaskOOM, `OOMKilled`).
    pub oom: bool,
}

impl Finished {
    pub fn status(status: u32) -> Self {
        Self { status, oom: false }
    }
}

/// Resolves once the started workload has ended.
pub type FinishedFuture = Pin<Box<dyn Future<Output = Finished> + Send>>;

/// A started workload.
pub struct Started {
    /// The pid TaskStart and Start's reply carry.
    pub pid: u32,
    pub finished: FinishedFuture,
}

/// What an exec request carries (Linux containers only).
pub struct ExecRequest<'a> {
    pub exec_id: &'a str,
    /// The OCI `Process` as JSON.
    pub process: &'a [u8],
    pub stdio: (&'a str, &'a str, &'a str),
    pub terminal: bool,
}

#[async_trait]
pub trait Workload: Send + Sync + 'static {
    /// What it is, for logs.
    fn kind(&self) -> &'static str;

    /// The pid containerd is told at Create.
    fn pid(&self) -> u32;

    /// Start it. Returns once it runs (a kill right after finds it);
    /// never waits for it to end.
    async fn start(&self) -> TaskResult<Started>;

    /// Deliver `signal` to the started workload (`all`: every process of it).
    async fn kill(&self, signal: i32, all: bool) -> TaskResult<()>;

    /// It ended (or was killed before it started): let go of what it holds
    /// that containerd waits on, its stdio above all.
    async fn stopped(&self) {}

    /// Deleted: release everything else (processes, runc state).
    async fn delete(&self) {}

    /// A new window size for the init process's terminal (ResizePty);
    /// ignored by a workload without one, as runc's shim does.
    fn resize(&self, _width: u32, _height: u32) -> TaskResult<()> {
        Ok(())
    }

    /// New resources for a running workload (the cgroup is updated by the caller).
    fn update(&self, _resources: &oci_spec::runtime::LinuxResources) {}

    /// A new process in the container.
    fn exec(&self, _bundle: &std::path::Path, _request: &ExecRequest<'_>) -> TaskResult<ExecProcess> {
        Err(TaskError::Unimplemented(
            "exec is not supported by wasmlet: a Wasm container has no other processes or shell to exec into".into(),
        ))
    }
}

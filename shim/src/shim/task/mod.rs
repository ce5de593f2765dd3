//! containerd's Task API for the one container this shim process runs.
//!
//! This module is the adapter: it turns each ttrpc request into a call on
//! the [`lifecycle::Lifecycle`] (the phase state machine over one
//! [`Workload`](crate::shim::workload::Workload)) and each typed error into
//! the status code runc's shim would answer. Where the API is silent,
//! behaviour follows `containerd-shim-runc-v2`: killing a finished task is
//! NotFound, deleting a running one is FailedPrecondition, Shutdown exits
//! only once the task is gone.

mod create;
pub mod error;
mod execs;
mod lifecycle;
mod phase;

pub use lifecycle::Exit;

use super::cgroup::ContainerCgroup;
use super::events::Events;
use super::workload::ExecRequest;
use async_trait::async_trait;
use containerd_shim::protos::api;
use containerd_shim::protos::shim_async::Task;
use containerd_shim::protos::ttrpc::{self, r#async::TtrpcContext};
use containerd_shim::ExitSignal;
use error::{TaskError, TaskResult};
use lifecycle::Lifecycle;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;
use wasmlet_runtime::Runtime;

type RpcResult<T> = ttrpc::Result<T>;

/// The runtime, built once per daemon in the background while containerd
/// prepares the Create call (the Task API is served meanwhile).
#[derive(Clone)]
pub struct SharedRuntime {
    rx: watch::Receiver<Option<Built>>,
}

/// What building the runtime gave: the runtime, or why it failed.
pub type Built = Result<Arc<Runtime>, String>;

impl SharedRuntime {
    /// A runtime being built; send its outcome on the returned sender.
    pub fn building() -> (watch::Sender<Option<Built>>, Self) {
        let (tx, rx) = watch::channel(None);
        (tx, Self { rx })
    }

    /// The runtime, once built.
    async fn wait(&self) -> TaskResult<Arc<Runtime>> {
        let mut rx = self.rx.clone();
        let built = rx
            .wait_for(Option::is_some)
            .await
            .map_err(|_| TaskError::Unavailable("the Wasm runtime was never built".into()))?;
        match built.as_ref() {
            Some(Ok(runtime)) => Ok(runtime.clone()),
            Some(Err(err)) => Err(TaskError::Unavailable(format!("the Wasm runtime failed to start: {err}"))),
            None => Err(TaskError::Internal("runtime state vanished".into())),
        }
    }
}

pub struct WasmletTask {
    life: Arc<Lifecycle>,
    runtime: SharedRuntime,
    exit: Arc<ExitSignal>,
    /// The container's cgroup, for Stats and Update.
    cgroup: Mutex<Option<ContainerCgroup>>,
    /// containerd's gRPC address and namespace, for reading image content.
    containerd: (String, String),
    shim_pid: u32,
}

impl WasmletTask {
    pub fn new(
        runtime: SharedRuntime,
        events: Events,
        exit: Arc<ExitSignal>,
        cgroup: Option<ContainerCgroup>,
        containerd: (String, String),
    ) -> Self {
        Self {
            life: Arc::new(Lifecycle::new(events)),
            runtime,
            exit,
            cgroup: Mutex::new(cgroup),
            containerd,
            shim_pid: std::process::id(),
        }
    }

    fn with_cgroup<T>(
        &self,
        missing: TaskError,
        f: impl FnOnce(&ContainerCgroup) -> anyhow::Result<T>,
    ) -> TaskResult<T> {
        let guard = self.cgroup.lock().unwrap_or_else(|p| p.into_inner());
        let cgroup = guard.as_ref().ok_or(missing)?;
        f(cgroup).map_err(|e| TaskError::Internal(format!("{e:#}")))
    }
}

#[async_trait]
impl Task for WasmletTask {
    #[tracing::instrument(level = "debug", name = "create", skip_all)]
    async fn create(&self, _ctx: &TtrpcContext, req: api::CreateTaskRequest) -> RpcResult<api::CreateTaskResponse> {
        if !self.life.is_empty() {
            return Err(TaskError::AlreadyExists("this shim already runs a container".into()).into());
        }
        let ctx = create::CreateContext { runtime: &self.runtime, cgroup: &self.cgroup, containerd: &self.containerd };
        let container = create::create(&ctx, &req).await?;
        let pid = self.life.register(container).await?;
        Ok(api::CreateTaskResponse { pid, ..Default::default() })
    }

    #[tracing::instrument(level = "debug", name = "start", skip_all)]
    async fn start(&self, _ctx: &TtrpcContext, req: api::StartRequest) -> RpcResult<api::StartResponse> {
        let pid = match req.exec_id.as_str() {
            "" => self.life.start(&req.id).await?,
            exec_id => self.life.start_exec(&req.id, exec_id).await?,
        };
        Ok(api::StartResponse { pid, ..Default::default() })
    }

    #[tracing::instrument(level = "debug", name = "state", skip_all)]
    async fn state(&self, _ctx: &TtrpcContext, req: api::StateRequest) -> RpcResult<api::StateResponse> {
        Ok(match req.exec_id.as_str() {
            "" => self.life.state(&req.id)?,
            exec_id => self.life.exec_state(&req.id, exec_id)?,
        })
    }

    #[tracing::instrument(level = "debug", name = "wait", skip_all)]
    async fn wait(&self, _ctx: &TtrpcContext, req: api::WaitRequest) -> RpcResult<api::WaitResponse> {
        Ok(match req.exec_id.as_str() {
            "" => self.life.wait(&req.id).await?,
            exec_id => self.life.wait_exec(&req.id, exec_id).await?,
        })
    }

    #[tracing::instrument(level = "debug", name = "kill", skip_all)]
    async fn kill(&self, _ctx: &TtrpcContext, req: api::KillRequest) -> RpcResult<api::Empty> {
        match req.exec_id.as_str() {
            "" => self.life.kill(&req.id, req.signal, req.all).await?,
            exec_id => self.life.kill_exec(&req.id, exec_id, req.signal)?,
        }
        Ok(api::Empty::new())
    }

    #[tracing::instrument(level = "debug", name = "delete", skip_all)]
    async fn delete(&self, _ctx: &TtrpcContext, req: api::DeleteRequest) -> RpcResult<api::DeleteResponse> {
        Ok(match req.exec_id.as_str() {
            "" => self.life.delete(&req.id).await?,
            exec_id => self.life.delete_exec(&req.id, exec_id)?,
        })
    }

    async fn pids(&self, _ctx: &TtrpcContext, req: api::PidsRequest) -> RpcResult<api::PidsResponse> {
        let pid = self.life.pid(&req.id)?;
        Ok(api::PidsResponse { processes: vec![api::ProcessInfo { pid, ..Default::default() }], ..Default::default() })
    }

    async fn stats(&self, _ctx: &TtrpcContext, req: api::StatsRequest) -> RpcResult<api::StatsResponse> {
        self.life.pid(&req.id)?;
        let missing = TaskError::NotFound("container has no cgroup (the spec names none)".into());
        let stats = self.with_cgroup(missing, |cgroup| cgroup.metrics())?;
        Ok(api::StatsResponse { stats: Some(stats).into(), ..Default::default() })
    }

    #[tracing::instrument(level = "debug", name = "update", skip_all)]
    async fn update(&self, _ctx: &TtrpcContext, req: api::UpdateTaskRequest) -> RpcResult<api::Empty> {
        let resources: oci_spec::runtime::LinuxResources = serde_json::from_slice(&req.resources.value)
            .map_err(|e| TaskError::InvalidArgument(format!("invalid resources: {e}")))?;
        self.life.update(&req.id, &resources)?;
        let missing = TaskError::FailedPrecondition("container has no cgroup to update".into());
        self.with_cgroup(missing, |cgroup| cgroup.update(&resources))?;
        Ok(api::Empty::new())
    }

    #[tracing::instrument(level = "debug", name = "connect", skip_all)]
    async fn connect(&self, _ctx: &TtrpcContext, req: api::ConnectRequest) -> RpcResult<api::ConnectResponse> {
        Ok(api::ConnectResponse {
            shim_pid: self.shim_pid,
            task_pid: self.life.pid(&req.id).unwrap_or(self.shim_pid),
            ..Default::default()
        })
    }

    #[tracing::instrument(level = "debug", name = "shutdown", skip_all)]
    async fn shutdown(&self, _ctx: &TtrpcContext, _req: api::ShutdownRequest) -> RpcResult<api::Empty> {
        if self.life.is_empty() {
            tracing::info!("shutdown");
            self.exit.signal();
        }
        Ok(api::Empty::new())
    }

    async fn close_io(&self, _ctx: &TtrpcContext, req: api::CloseIORequest) -> RpcResult<api::Empty> {
        // containerd closes its end of the stdin FIFO itself; the guest then sees EOF.
        self.life.pid(&req.id)?;
        Ok(api::Empty::new())
    }

    async fn resize_pty(&self, _ctx: &TtrpcContext, req: api::ResizePtyRequest) -> RpcResult<api::Empty> {
        match req.exec_id.as_str() {
            "" => self.life.resize(&req.id, req.width, req.height)?,
            exec_id => self.life.resize_exec(&req.id, exec_id, req.width, req.height)?,
        }
        Ok(api::Empty::new())
    }

    #[tracing::instrument(level = "debug", name = "exec", skip_all)]
    async fn exec(&self, _ctx: &TtrpcContext, req: api::ExecProcessRequest) -> RpcResult<api::Empty> {
        let request = ExecRequest {
            exec_id: &req.exec_id,
            process: &req.spec.value,
            stdio: (&req.stdin, &req.stdout, &req.stderr),
            terminal: req.terminal,
        };
        self.life.add_exec(&req.id, &request).await?;
        Ok(api::Empty::new())
    }

    async fn checkpoint(&self, _ctx: &TtrpcContext, _req: api::CheckpointTaskRequest) -> RpcResult<api::Empty> {
        Err(TaskError::Unimplemented("checkpoint is not supported by wasmlet".into()).into())
    }

    async fn pause(&self, _ctx: &TtrpcContext, _req: api::PauseRequest) -> RpcResult<api::Empty> {
        Err(TaskError::Unimplemented("pause is not supported by wasmlet".into()).into())
    }

    async fn resume(&self, _ctx: &TtrpcContext, _req: api::ResumeRequest) -> RpcResult<api::Empty> {
        Err(TaskError::Unimplemented("resume is not supported by wasmlet".into()).into())
    }
}

//! A Linux container in a wasmlet pod, run by the node's runc (`runc`).

use super::{ExecRequest, Finished, Started, Workload};
use crate::shim::exec::ExecProcess;
use crate::shim::runc::RuncContainer;
use crate::shim::task::error::{blocking, TaskError, TaskResult};
use async_trait::async_trait;
use std::sync::Arc;

pub struct LinuxContainer {
    runc: Arc<RuncContainer>,
    /// The shim's pid: runc's init is not the shim's child.
    pid: u32,
}

impl LinuxContainer {
    pub fn new(runc: RuncContainer) -> Self {
        Self { runc: Arc::new(runc), pid: std::process::id() }
    }
}

#[async_trait]
impl Workload for LinuxContainer {
    fn kind(&self) -> &'static str {
        "Linux container (runc)"
    }

    fn pid(&self) -> u32 {
        self.pid
    }

    async fn start(&self) -> TaskResult<Started> {
        let runc = self.runc.clone();
        blocking(move || runc.start().map_err(TaskError::Internal)).await?;
        let runc = self.runc.clone();
        let finished = Box::pin(async move {
            let (status, oom) =
                tokio::task::spawn_blocking(move || (runc.wait(), runc.oom_killed())).await.unwrap_or((255, false));
            Finished { status, oom }
        });
        Ok(Started { pid: self.pid, finished })
    }

    async fn kill(&self, signal: i32, all: bool) -> TaskResult<()> {
        let runc = self.runc.clone();
        blocking(move || runc.kill(signal, all).map_err(TaskError::Internal)).await
    }

    async fn delete(&self) {
        let runc = self.runc.clone();
        let _ = blocking(move || {
            runc.delete();
            Ok(())
        })
        .await;
    }

    fn resize(&self, width: u32, height: u32) -> TaskResult<()> {
        self.runc.resize(width, height).map_err(TaskError::FailedPrecondition)
    }

    fn exec(&self, bundle: &std::path::Path, request: &ExecRequest<'_>) -> TaskResult<ExecProcess> {
        ExecProcess::new(bundle, request.exec_id, request.process, request.stdio, request.terminal)
            .map_err(TaskError::InvalidArgument)
    }
}

//! The Task API verbs for exec'd processes (`kubectl exec`, exec probes),
//! which only a Linux container's workload creates.

use super::error::{blocking, TaskError, TaskResult};
use super::lifecycle::{wait_for_exit, Exit, Lifecycle};
use crate::shim::exec::ExecProcess;
use crate::shim::workload::ExecRequest;
use containerd_shim::protos::api;
use std::sync::Arc;

impl Lifecycle {
    fn exec_of(&self, id: &str, exec_id: &str) -> TaskResult<Arc<ExecProcess>> {
        self.with(id, |c| {
            c.execs
                .get(exec_id)
                .cloned()
                .ok_or_else(|| TaskError::NotFound(format!("exec {exec_id} not found in container {id}")))
        })
    }

    pub async fn add_exec(&self, id: &str, request: &ExecRequest<'_>) -> TaskResult<()> {
        self.with(id, |c| {
            c.phase.check_exec().map_err(|e| TaskError::FailedPrecondition(format!("container {id}: {e}")))?;
            if c.execs.contains_key(request.exec_id) {
                return Err(TaskError::AlreadyExists(format!("exec {} already exists", request.exec_id)));
            }
            let exec = c.workload.exec(&c.bundle, request)?;
            c.execs.insert(request.exec_id.to_owned(), Arc::new(exec));
            Ok(())
        })?;
        tracing::debug!(%id, exec_id = request.exec_id, "exec added");
        self.events.exec_added(id, request.exec_id).await;
        Ok(())
    }

    pub async fn start_exec(self: &Arc<Self>, id: &str, exec_id: &str) -> TaskResult<u32> {
        let exec = self.exec_of(id, exec_id)?;
        if exec.started() {
            return Err(TaskError::FailedPrecondition(format!("exec {exec_id} was already started")));
        }
        let (starter, container) = (exec.clone(), id.to_owned());
        let pid = blocking(move || starter.start(&container).map_err(TaskError::Internal)).await?;
        self.events.exec_started(id, exec_id, pid).await;
        let (this, id) = (self.clone(), id.to_owned());
        tokio::spawn(async move {
            let waited = exec.clone();
            let status = tokio::task::spawn_blocking(move || waited.wait()).await.unwrap_or(255);
            let exit = Exit::now(status);
            exec.record_exit(exit.clone());
            this.events.process_exited(&id, &exec.exec_id, pid, status, &exit.at).await;
        });
        Ok(pid)
    }

    pub fn exec_state(&self, id: &str, exec_id: &str) -> TaskResult<api::StateResponse> {
        let exec = self.exec_of(id, exec_id)?;
        let bundle = self.with(id, |c| Ok(c.bundle.to_string_lossy().into_owned()))?;
        let exit = exec.exited();
        Ok(api::StateResponse {
            id: exec_id.to_owned(),
            bundle,
            pid: exec.pid(),
            status: match (&exit, exec.started()) {
                (Some(_), _) => api::Status::STOPPED,
                (None, true) => api::Status::RUNNING,
                (None, false) => api::Status::CREATED,
            }
            .into(),
            stdin: exec.stdio.0.clone(),
            stdout: exec.stdio.1.clone(),
            stderr: exec.stdio.2.clone(),
            exit_status: exit.as_ref().map_or(0, |e| e.status),
            exited_at: exit.map(|e| e.at).into(),
            ..Default::default()
        })
    }

    pub async fn wait_exec(&self, id: &str, exec_id: &str) -> TaskResult<api::WaitResponse> {
        let rx = self.exec_of(id, exec_id)?.subscribe();
        wait_for_exit(rx, &format!("exec {exec_id}")).await
    }

    pub fn kill_exec(&self, id: &str, exec_id: &str, signal: u32) -> TaskResult<()> {
        let exec = self.exec_of(id, exec_id)?;
        if exec.exited().is_some() {
            return Err(TaskError::NotFound(format!("exec {exec_id} already finished")));
        }
        exec.signal(signal as i32).map_err(TaskError::FailedPrecondition)
    }

    pub fn resize_exec(&self, id: &str, exec_id: &str, width: u32, height: u32) -> TaskResult<()> {
        self.exec_of(id, exec_id)?.resize(width, height).map_err(TaskError::FailedPrecondition)
    }

    pub fn delete_exec(&self, id: &str, exec_id: &str) -> TaskResult<api::DeleteResponse> {
        let exec = self.with(id, |c| match c.execs.get(exec_id) {
            Some(e) if e.started() && e.exited().is_none() => {
                Err(TaskError::FailedPrecondition(format!("exec {exec_id} is running")))
            }
            Some(_) => Ok(c.execs.remove(exec_id)),
            None => Ok(None),
        })?;
        let exec = exec.ok_or_else(|| TaskError::NotFound(format!("exec {exec_id} not found")))?;
        let exit = exec.exited();
        Ok(api::DeleteResponse {
            pid: exec.pid(),
            exit_status: exit.as_ref().map_or(0, |e| e.status),
            exited_at: exit.map(|e| e.at).into(),
            ..Default::default()
        })
    }
}

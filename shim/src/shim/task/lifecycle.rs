//! The container record and the lifecycle verbs the Task adapter calls:
//! which verb is valid in which phase ([`Phase`]), the workload doing the
//! work ([`Workload`]), the exit recorded once and the events containerd
//! expects, in its order (TaskExit before TaskDelete, TaskOOM before TaskExit).

use super::error::{TaskError, TaskResult};
use super::phase::{KillAction, Phase};
use crate::shim::events::Events;
use crate::shim::exec::ExecProcess;
use crate::shim::workload::{Finished, Started, Workload};
use containerd_shim::protos::api;
use containerd_shim::protos::protobuf::well_known_types::timestamp::Timestamp;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::watch;

/// How a process ended: its status and when.
#[derive(Clone, Debug)]
pub struct Exit {
    pub status: u32,
    pub at: Timestamp,
}

impl Exit {
    pub fn now(status: u32) -> Self {
        Self { status, at: containerd_shim::util::timestamp().unwrap_or_default() }
    }
}

/// Something to undo when the container is deleted (its mounted rootfs).
pub type Cleanup = Box<dyn FnOnce() + Send>;

/// A created container, as Create hands it over.
pub struct NewContainer {
    pub id: String,
    pub bundle: PathBuf,
    pub stdio: (String, String, String),
    /// Whether the init process has a terminal.
    pub terminal: bool,
    pub workload: Arc<dyn Workload>,
    pub cleanup: Option<Cleanup>,
}

pub(super) struct Container {
    pub id: String,
    pub bundle: PathBuf,
    pub stdio: (String, String, String),
    pub terminal: bool,
    /// The task's pid as containerd sees it.
    pub pid: u32,
    pub phase: Phase,
    pub workload: Arc<dyn Workload>,
    cleanup: Option<Cleanup>,
    exit_tx: watch::Sender<Option<Exit>>,
    /// Processes exec'd into the container, by exec id.
    pub execs: HashMap<String, Arc<ExecProcess>>,
}

/// The one container this shim runs, and containerd's events about it.
pub struct Lifecycle {
    pub(super) events: Events,
    container: Mutex<Option<Container>>,
}

/// Wait's answer, once `rx` carries an exit; NotFound if `what` goes first.
pub async fn wait_for_exit(mut rx: watch::Receiver<Option<Exit>>, what: &str) -> TaskResult<api::WaitResponse> {
    let exit = rx
        .wait_for(Option::is_some)
        .await
        .map_err(|_| TaskError::NotFound(format!("{what} was deleted")))?
        .clone()
        .ok_or_else(|| TaskError::Internal("exit vanished".into()))?;
    Ok(api::WaitResponse { exit_status: exit.status, exited_at: Some(exit.at).into(), ..Default::default() })
}

impl Lifecycle {
    pub fn new(events: Events) -> Self {
        Self { events, container: Mutex::new(None) }
    }

    fn container(&self) -> MutexGuard<'_, Option<Container>> {
        self.container.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn is_empty(&self) -> bool {
        self.container().is_none()
    }

    /// Run `f` on the container with id `id`, or NotFound.
    pub(super) fn with<T>(&self, id: &str, f: impl FnOnce(&mut Container) -> TaskResult<T>) -> TaskResult<T> {
        match self.container().as_mut() {
            Some(c) if c.id == id => f(c),
            _ => Err(TaskError::NotFound(format!("container {id} not found"))),
        }
    }

    /// Record the created container and tell containerd (TaskCreate); its pid.
    pub async fn register(&self, new: NewContainer) -> TaskResult<u32> {
        let pid = new.workload.pid();
        {
            let mut guard = self.container();
            if guard.is_some() {
                return Err(TaskError::AlreadyExists("this shim already runs a container".into()));
            }
            *guard = Some(Container {
                id: new.id.clone(),
                bundle: new.bundle.clone(),
                stdio: new.stdio.clone(),
                terminal: new.terminal,
                pid,
                phase: Phase::Created,
                workload: new.workload,
                cleanup: new.cleanup,
                exit_tx: watch::channel(None).0,
                execs: HashMap::new(),
            });
        }
        let bundle = new.bundle.to_string_lossy();
        self.events.created(&new.id, &bundle, (&new.stdio.0, &new.stdio.1, &new.stdio.2), pid).await;
        Ok(pid)
    }

    /// Start the init process; its pid. A workload that fails to start
    /// ends the task (status 1), so Wait returns and Delete cleans up.
    pub async fn start(self: &Arc<Self>, id: &str) -> TaskResult<u32> {
        let workload = self.with(id, |c| {
            c.phase.start()?;
            Ok(c.workload.clone())
        })?;
        match workload.start().await {
            Ok(Started { pid, finished }) => {
                // An HTTP function's process exists only from Start on.
                let _ = self.with(id, |c| {
                    c.pid = pid;
                    Ok(())
                });
                // TaskStart is queued before the exit can be.
                self.events.started(id, pid).await;
                let (this, id) = (self.clone(), id.to_owned());
                tokio::spawn(async move {
                    let finished = finished.await;
                    this.finish(&id, finished).await;
                });
                Ok(pid)
            }
            Err(err) => {
                tracing::warn!(%id, kind = workload.kind(), error = %err, "start failed");
                self.finish(id, Finished::status(1)).await;
                Err(err)
            }
        }
    }

    pub async fn kill(&self, id: &str, signal: u32, all: bool) -> TaskResult<()> {
        let (action, workload) = self.with(id, |c| Ok((c.phase.kill()?, c.workload.clone())))?;
        tracing::info!(%id, signal, all, "kill");
        match action {
            KillAction::Signal => workload.kill(signal as i32, all).await,
            // Like runc killing a created-but-unstarted init: the task ends now.
            KillAction::EndUnstarted => {
                self.finish(id, Finished::status(128 + signal)).await;
                Ok(())
            }
        }
    }

    /// Record the exit (the first one wins) and tell containerd. The
    /// workload lets go of its stdio first: containerd (>= 1.6.22 / 1.7.3)
    /// waits for end-of-file on the output FIFOs once it sees the exit.
    pub async fn finish(&self, id: &str, finished: Finished) {
        let claimed = self.with(id, |c| Ok(c.phase.claim_exit().then(|| (c.workload.clone(), c.pid)))).ok().flatten();
        let Some((workload, pid)) = claimed else { return };
        workload.stopped().await;
        let exit = Exit::now(finished.status);
        let recorded = self
            .with(id, |c| {
                c.phase.stopped();
                c.exit_tx.send_replace(Some(exit.clone()));
                Ok(())
            })
            .is_ok();
        if recorded {
            if finished.oom {
                self.events.oom(id).await;
            }
            self.events.exited(id, pid, exit.status, &exit.at).await;
        }
    }

    pub fn state(&self, id: &str) -> TaskResult<api::StateResponse> {
        self.with(id, |c| {
            let exit = c.exit_tx.borrow().clone();
            Ok(api::StateResponse {
                id: c.id.clone(),
                bundle: c.bundle.to_string_lossy().into_owned(),
                pid: c.pid,
                status: c.phase.status().into(),
                stdin: c.stdio.0.clone(),
                stdout: c.stdio.1.clone(),
                stderr: c.stdio.2.clone(),
                terminal: c.terminal,
                exit_status: exit.as_ref().map_or(0, |e| e.status),
                exited_at: exit.map(|e| e.at).into(),
                ..Default::default()
            })
        })
    }

    pub async fn wait(&self, id: &str) -> TaskResult<api::WaitResponse> {
        let rx = self.with(id, |c| Ok(c.exit_tx.subscribe()))?;
        wait_for_exit(rx, &format!("container {id}")).await
    }

    pub fn pid(&self, id: &str) -> TaskResult<u32> {
        self.with(id, |c| Ok(c.pid))
    }

    /// A new terminal size for the init process.
    pub fn resize(&self, id: &str, width: u32, height: u32) -> TaskResult<()> {
        let workload = self.with(id, |c| Ok(c.workload.clone()))?;
        workload.resize(width, height)
    }

    /// New resources for the workload itself (its guest memory cap).
    pub fn update(&self, id: &str, resources: &oci_spec::runtime::LinuxResources) -> TaskResult<()> {
        let workload = self.with(id, |c| Ok(c.workload.clone()))?;
        workload.update(resources);
        Ok(())
    }

    pub async fn delete(&self, id: &str) -> TaskResult<api::DeleteResponse> {
        let mut container = {
            let mut guard = self.container();
            match guard.as_ref() {
                Some(c) if c.id == id => {
                    c.phase
                        .check_delete()
                        .map_err(|e| TaskError::FailedPrecondition(format!("container {id}: {e}")))?;
                    guard.take()
                }
                _ => None,
            }
        }
        .ok_or_else(|| TaskError::NotFound(format!("container {id} not found")))?;
        container.workload.delete().await;
        if let Some(cleanup) = container.cleanup.take() {
            cleanup();
        }
        // The cgroup outlives this call: the `delete` action containerd runs
        // once this process has exited removes it (cgroup::remove_for_spec).
        // Leaving it here would take a cgroup.procs write, whose global lock
        // waits for an RCU grace period (~10 ms on this VM) on every run.
        let exit = container.exit_tx.borrow().clone().unwrap_or_else(|| Exit::now(0));
        self.events.deleted(id, container.pid, exit.status, &exit.at).await;
        tracing::info!(%id, status = exit.status, "deleted");
        Ok(api::DeleteResponse {
            pid: container.pid,
            exit_status: exit.status,
            exited_at: Some(exit.at).into(),
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests;

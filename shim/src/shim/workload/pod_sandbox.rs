//! A CRI pod sandbox: like pause, alive until signalled (SIGTERM and SIGINT
//! are a clean exit) or until its holder process dies.

use super::{Finished, Started, Workload};
use crate::shim::sandbox::PodNamespaces;
use crate::shim::task::error::{blocking, TaskResult};
use async_trait::async_trait;
use std::sync::{Arc, Mutex};

pub struct PodSandbox {
    holder: Arc<PodNamespaces>,
    /// The first signal delivered, which decides the exit status.
    signal: Arc<Mutex<Option<i32>>>,
}

impl PodSandbox {
    pub fn new(holder: PodNamespaces) -> Self {
        Self { holder: Arc::new(holder), signal: Arc::default() }
    }
}

/// The sandbox's exit status: the holder only ever dies of SIGKILL, so a
/// signal delivered through Kill decides it, as it would for pause.
fn sandbox_status(signal: Option<i32>, holder_status: i32) -> u32 {
    match signal {
        Some(libc::SIGTERM | libc::SIGINT) => 0,
        Some(signal) => 128 + signal as u32,
        None => holder_status as u32,
    }
}

#[async_trait]
impl Workload for PodSandbox {
    fn kind(&self) -> &'static str {
        "pod sandbox"
    }

    fn pid(&self) -> u32 {
        self.holder.pid()
    }

    async fn start(&self) -> TaskResult<Started> {
        let (holder, signal) = (self.holder.clone(), self.signal.clone());
        let finished = Box::pin(async move {
            let reaper = holder.clone();
            let status = tokio::task::spawn_blocking(move || reaper.wait()).await.unwrap_or(255);
            let signal = *signal.lock().unwrap_or_else(|p| p.into_inner());
            Finished::status(sandbox_status(signal, status))
        });
        Ok(Started { pid: self.holder.pid(), finished })
    }

    async fn kill(&self, signal: i32, _all: bool) -> TaskResult<()> {
        self.signal.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(signal);
        self.holder.kill();
        Ok(())
    }

    async fn delete(&self) {
        // Deleted without running (a killed or never-started sandbox): no
        // holder outlives its task.
        if !self.holder.reaped() {
            self.holder.kill();
            let holder = self.holder.clone();
            let _ = blocking(move || Ok(holder.wait())).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::sandbox_status;

    #[test]
    fn a_terminated_sandbox_exits_cleanly_like_pause() {
        assert_eq!(sandbox_status(Some(libc::SIGTERM), 137), 0);
        assert_eq!(sandbox_status(Some(libc::SIGINT), 137), 0);
        assert_eq!(sandbox_status(Some(libc::SIGKILL), 137), 137);
        assert_eq!(sandbox_status(None, 137), 137, "the holder died by itself");
    }
}

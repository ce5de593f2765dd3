//! Running a guest to completion on a thread, without an async executor in
//! the way: the path the shim and `wasmlet run` take for every non-HTTP
//! guest.
//!
//! A core module runs with WASI preview 1's synchronous host calls: no
//! fibers, no executor, no futures per call (store + instantiate + run + drop
//! of a tiny module costs about a fifth less than the async path). A
//! component runs on a private current-thread executor (WASI 0.2's
//! synchronous bindings gain nothing there). Either way a kill or the
//! deadline stops guest code at once (the kill bumps the epoch itself); a
//! guest blocked inside a host call (a read, a sleep) only notices when that
//! call returns, which is why [`Runtime::run_on_thread`] stops waiting for
//! such a guest after [`STOP_GRACE`].

use crate::capabilities::Capabilities;
use crate::error::RunError;
use crate::exit::{ExitStatus, Outcome};
use crate::kill::KillSwitch;
use crate::limits::Limits;
use crate::module_run::{ready, Synchronous};
use crate::program::{Compiled, Program};
use crate::run::{classify, deadline_passes, Entry, Executor, RunRequest, Runtime};
use std::sync::Arc;
use std::time::Duration;

thread_local! {
    /// Components' executor, one per thread that runs them, kept between runs
    /// (building one costs more than a small component's whole run).
    static GUEST_EXECUTOR: std::cell::OnceCell<tokio::runtime::Runtime> = const { std::cell::OnceCell::new() };
}

/// How long [`Runtime::run_on_thread`] waits, after a kill or the deadline,
/// for a guest stuck in a host call before reporting it stopped anyway.
pub const STOP_GRACE: Duration = Duration::from_millis(200);

impl Runtime {
    /// Run a program to completion on the calling thread. Meant for threads
    /// outside any async runtime (WASI's synchronous calls drive their own
    /// executor, which cannot nest); called from inside one, it runs on a
    /// scoped thread instead. See the module docs for how kills behave.
    pub fn run_blocking(&self, request: RunRequest) -> Result<Outcome, RunError> {
        let RunRequest { program, entry, caps, limits, kill } = request;
        self.run_blocking_with(&program, &entry, caps, &limits, &kill)
    }

    fn run_blocking_with(
        &self,
        program: &Program,
        entry: &Entry,
        caps: Capabilities,
        limits: &Limits,
        kill: &KillSwitch,
    ) -> Result<Outcome, RunError> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return std::thread::scope(|scope| {
                scope
                    .spawn(move || self.run_blocking_with(program, entry, caps, limits, kill))
                    .join()
                    .unwrap_or_else(|_| Err(RunError::Instantiate("the guest thread panicked".into())))
            });
        }
        match program.compiled() {
            Compiled::Module(module) => ready(self.run_module(Synchronous, program, module, entry, caps, limits, kill)),
            Compiled::Component(_) => GUEST_EXECUTOR.with(|executor| {
                let executor = match executor.get() {
                    Some(executor) => executor,
                    None => {
                        let built = tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()
                            .map_err(|e| RunError::Instantiate(format!("starting the guest's executor: {e}")))?;
                        executor.get_or_init(|| built)
                    }
                };
                executor.block_on(self.run_with(program, entry, caps, limits, kill, Executor::Own))
            }),
        }
    }

    /// [`Runtime::run_blocking`] on a thread of its own, awaited without
    /// blocking the caller's executor. After a kill or the deadline, a guest
    /// that has not stopped within [`STOP_GRACE`] (it is blocked in a host
    /// call) is reported stopped, and its thread is left to end on its own
    /// when that call returns.
    pub async fn run_on_thread(self: &Arc<Self>, request: RunRequest) -> Result<Outcome, RunError> {
        let (done_tx, mut done_rx) = tokio::sync::oneshot::channel();
        let runtime = self.clone();
        let (deadline, kill) = (request.limits.deadline, request.kill.clone());
        std::thread::Builder::new()
            .name("wasmlet-guest".into())
            .spawn(move || {
                let _ = done_tx.send(runtime.run_blocking(request));
            })
            .map_err(|e| RunError::Instantiate(format!("starting the guest thread: {e}")))?;
        let panicked = || RunError::Instantiate("the guest thread panicked".into());
        let status = tokio::select! {
            done = &mut done_rx => return done.unwrap_or_else(|_| Err(panicked())),
            signal = kill.signaled() => ExitStatus::Signaled(signal),
            () = deadline_passes(deadline) => ExitStatus::DeadlineExceeded,
        };
        match tokio::time::timeout(STOP_GRACE, done_rx).await {
            Ok(done) => done.unwrap_or_else(|_| Err(panicked())),
            Err(_) => {
                tracing::warn!(%status, "the guest is blocked in a host call; reporting it stopped");
                classify(Err(status), None)
            }
        }
    }
}

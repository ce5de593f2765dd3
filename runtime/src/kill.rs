//! Stopping a running guest from any thread.

use std::sync::{Arc, OnceLock};
use tokio::sync::watch;
use wasmtime::Engine;

/// A handle that stops a run from another thread or task. Cloning shares it.
///
/// The first signal wins, except that SIGKILL overrides an earlier, gentler
/// signal (a server draining after SIGTERM can still be killed); others are
/// ignored. A signal sent before the run starts stops it before the guest runs.
///
/// A kill also advances the engine's epoch at once, so a guest busy in Wasm
/// traps at its next loop back-edge or call, without waiting for the ticker
/// thread (whose sleeps can be late by hundreds of ms on a loaded VM).
#[derive(Clone)]
pub struct KillSwitch {
    tx: Arc<watch::Sender<Option<i32>>>,
    engine: Arc<OnceLock<Engine>>,
}

impl std::fmt::Debug for KillSwitch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KillSwitch").field("signal", &self.signal()).finish()
    }
}

impl Default for KillSwitch {
    fn default() -> Self {
        Self::new()
    }
}

impl KillSwitch {
    pub fn new() -> Self {
        Self { tx: Arc::new(watch::channel(None).0), engine: Arc::default() }
    }

    /// Bind to the engine the guest runs on (done by the runtime at run start).
    pub(crate) fn arm(&self, engine: &Engine) {
        if self.engine.get().is_none() {
            let _ = self.engine.set(engine.clone());
        }
    }

    /// Deliver `signal` (e.g. `libc::SIGKILL`, `libc::SIGTERM`).
    pub fn kill(&self, signal: i32) {
        let first = self.tx.send_if_modified(|current| {
            let escalate = signal == libc::SIGKILL && current.is_some_and(|s| s != libc::SIGKILL);
            if current.is_none() || escalate {
                *current = Some(signal);
                true
            } else {
                false
            }
        });
        if let (true, Some(engine)) = (first, self.engine.get()) {
            engine.increment_epoch();
        }
    }

    /// The signal delivered so far, if any.
    pub fn signal(&self) -> Option<i32> {
        *self.tx.borrow()
    }

    /// Resolves once SIGKILL has been delivered.
    pub async fn killed_hard(&self) {
        let mut rx = self.tx.subscribe();
        if rx.wait_for(|s| *s == Some(libc::SIGKILL)).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Resolves once a signal has been delivered.
    pub async fn signaled(&self) -> i32 {
        let mut rx = self.tx.subscribe();
        let delivered = rx.wait_for(Option::is_some).await.map(|signal| signal.unwrap_or(libc::SIGKILL));
        match delivered {
            Ok(signal) => signal,
            // The sender lives in `self`, so it cannot be dropped while we wait.
            Err(_) => std::future::pending().await,
        }
    }
}

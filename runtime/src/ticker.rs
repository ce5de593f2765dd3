//! One thread that advances the epoch of the process's engines while any
//! guest that needs ticks runs, started when the first such guest does: a
//! process whose guests never need ticks (every container run without a
//! deadline) never makes the thread. (A guest process confines itself after the engine is
//! built: it must still be single-threaded then, since capabilities and
//! seccomp filters are per thread.)
//!
//! Async guests (HTTP requests) yield to their executor at every epoch tick
//! (see `run.rs`), and a deadline is checked there. Kills do not need it:
//! a kill bumps the epoch itself. Synchronous runs without a deadline (every
//! container's guest) take no ticks at all, so a sleeping guest costs no
//! wake-ups. The ticker lingers for [`LINGER`] after the last guest ends
//! (bursts of requests keep it warm), then parks without a timeout: an idle
//! process never wakes for it. The first guest after that pays one
//! cross-thread wake-up.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;
use wasmtime::Engine;

/// How long the ticker keeps ticking after the last guest ended.
const LINGER: Duration = Duration::from_secs(1);

#[derive(Default)]
struct State {
    running: usize,
    /// The ticker waits for a guest (and must be woken for one).
    parked: bool,
    shutdown: bool,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

pub(crate) struct EpochTicker {
    shared: Arc<Shared>,
    /// The engines it ticks (the concurrent one joins when it is built).
    engines: Arc<Mutex<Vec<Engine>>>,
    /// The period, until the thread is started.
    pending: Mutex<Option<Duration>>,
}

/// Keeps the ticker running while alive.
pub struct Running {
    shared: Arc<Shared>,
}

impl EpochTicker {
    /// A ticker for `engine`; its thread starts with the first [`Self::running`].
    pub(crate) fn new(engine: Engine, period: Duration) -> Self {
        Self {
            shared: Arc::new(Shared::default()),
            engines: Arc::new(Mutex::new(vec![engine])),
            pending: Mutex::new(Some(period)),
        }
    }

    /// Tick `engine` too from now on.
    pub(crate) fn add(&self, engine: Engine) {
        self.engines.lock().unwrap_or_else(|p| p.into_inner()).push(engine);
    }

    pub(crate) fn running(&self) -> Running {
        if let Some(period) = self.pending.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let thread_shared = self.shared.clone();
            let engines = self.engines.clone();
            let spawned = std::thread::Builder::new()
                .name("wasmlet-epoch".into())
                .spawn(move || tick_loop(&thread_shared, &engines, period));
            if let Err(err) = spawned {
                // Kills still interrupt (they bump the epoch themselves);
                // deadlines and HTTP yields would not: say so loudly.
                tracing::error!(error = %err, "starting the epoch ticker: deadlines will not be enforced");
            }
        }
        let mut state = lock(&self.shared.state);
        state.running += 1;
        if state.parked {
            state.parked = false;
            self.shared.wake.notify_one();
        }
        Running { shared: self.shared.clone() }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        let mut state = lock(&self.shared.state);
        state.shutdown = true;
        self.shared.wake.notify_one();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let mut state = lock(&self.shared.state);
        state.running = state.running.saturating_sub(1);
    }
}

fn lock(mutex: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    // The state is two integers; a panic elsewhere cannot leave it inconsistent.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn tick_loop(shared: &Shared, engines: &Mutex<Vec<Engine>>, period: Duration) {
    let mut idle_since: Option<std::time::Instant> = None;
    loop {
        {
            let mut state = lock(&shared.state);
            if state.running > 0 {
                idle_since = None;
            } else if idle_since.get_or_insert_with(std::time::Instant::now).elapsed() >= LINGER {
                idle_since = None;
                state.parked = true;
                while state.running == 0 && !state.shutdown {
                    state = shared.wake.wait(state).unwrap_or_else(|poisoned| poisoned.into_inner());
                }
                state.parked = false;
            }
            if state.shutdown {
                return;
            }
        }
        std::thread::sleep(period);
        for engine in engines.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            engine.increment_epoch();
        }
    }
}

//! One thread per engine that advances the epoch while any guest runs.
//!
//! Guests yield at every epoch tick (see `run.rs`), which is what lets a kill
//! or a deadline stop even a tight loop. It lingers for [`LINGER`] after the
//! last guest ends, then parks, looking for guests every [`PARKED_POLL`]
//! (10 wake-ups a second while idle) instead of being woken by the run that
//! starts: a cross-thread wake-up on the path of the first request after
//! idle costs more than that polling on these VMs.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;
use wasmtime::Engine;

/// How long the ticker keeps ticking after the last guest ended.
const LINGER: Duration = Duration::from_secs(1);
/// How often a parked ticker looks for running guests: the delay before a
/// guest's first tick after idle (deadline checks and yields start then).
const PARKED_POLL: Duration = Duration::from_millis(100);

#[derive(Default)]
struct State {
    running: usize,
    shutdown: bool,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

pub(crate) struct EpochTicker {
    shared: Arc<Shared>,
}

/// Keeps the ticker running while alive.
pub struct Running {
    shared: Arc<Shared>,
}

impl EpochTicker {
    pub(crate) fn start(engine: Engine, period: Duration) -> std::io::Result<Self> {
        let shared = Arc::new(Shared::default());
        let thread_shared = shared.clone();
        std::thread::Builder::new()
            .name("wasmlet-epoch".into())
            .spawn(move || tick_loop(&thread_shared, &engine, period))?;
        Ok(Self { shared })
    }

    pub(crate) fn running(&self) -> Running {
        let mut state = lock(&self.shared.state);
        state.running += 1;
        // A parked ticker is not woken here: it polls every PARKED_POLL, so
        // the first request after idle pays no cross-thread wake-up (costly in
        // VMs). A kill still bumps the epoch itself, at once.
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

fn tick_loop(shared: &Shared, engine: &Engine, period: Duration) {
    let mut idle_since: Option<std::time::Instant> = None;
    loop {
        {
            let mut state = lock(&shared.state);
            if state.running > 0 {
                idle_since = None;
            } else if idle_since.get_or_insert_with(std::time::Instant::now).elapsed() >= LINGER {
                idle_since = None;
                while state.running == 0 && !state.shutdown {
                    state =
                        shared.wake.wait_timeout(state, PARKED_POLL).unwrap_or_else(|poisoned| poisoned.into_inner()).0;
                }
            }
            if state.shutdown {
                return;
            }
        }
        std::thread::sleep(period);
        engine.increment_epoch();
    }
}

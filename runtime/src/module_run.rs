//! Running a core module: one body for both call styles.
//!
//! [`Synchronous`] calls (WASI preview 1's synchronous host calls, no fibers,
//! no executor: the shim's and `wasmlet run`'s path, about a fifth cheaper
//! for a tiny module) and [`Asynchronous`] ones (`call_async` on a fiber,
//! for callers inside an executor) differ only in how the instance is made,
//! how its functions are called and how the run is raced against a kill
//! and the deadline. [`Runtime::run_module`] is the rest, written once.

use crate::capabilities::Capabilities;
use crate::error::RunError;
use crate::exit::{ExitStatus, Outcome};
use crate::kill::KillSwitch;
use crate::limits::{Limits, MemoryLimiter};
use crate::program::Program;
use crate::run::{classify, resolve_module_entry, stopped_by_epoch, Entry, Executor, GuestEnd, Runtime, Yielding};
use crate::state::ModuleState;
use std::future::Future;
use wasmtime::{Func, Instance, InstancePre, Module, Store, TypedFunc, Val};

/// How a module's functions are called.
pub(crate) trait CallStyle {
    fn yielding(&self) -> Yielding;
    fn instantiate(
        &self,
        pre: &InstancePre<ModuleState>,
        store: &mut Store<ModuleState>,
    ) -> impl Future<Output = wasmtime::Result<Instance>>;
    fn call_start(
        &self,
        start: TypedFunc<(), ()>,
        store: &mut Store<ModuleState>,
    ) -> impl Future<Output = wasmtime::Result<()>>;
    fn call(
        &self,
        func: Func,
        store: &mut Store<ModuleState>,
        results: &mut [Val],
    ) -> impl Future<Output = wasmtime::Result<()>>;
    /// Drive `guest` until it ends or is stopped by a kill or the deadline.
    fn drive(
        &self,
        runtime: &Runtime,
        guest: impl Future<Output = GuestEnd>,
        limits: &Limits,
        kill: &KillSwitch,
    ) -> impl Future<Output = Result<GuestEnd, ExitStatus>>;
}

/// Synchronous calls: the futures are ready when first polled.
pub(crate) struct Synchronous;

/// `call_async` on a fiber, yielding to the caller's executor at epoch ticks.
pub(crate) struct Asynchronous;

impl CallStyle for Synchronous {
    fn yielding(&self) -> Yielding {
        Yielding::Never
    }

    async fn instantiate(
        &self,
        pre: &InstancePre<ModuleState>,
        store: &mut Store<ModuleState>,
    ) -> wasmtime::Result<Instance> {
        pre.instantiate(store)
    }

    async fn call_start(&self, start: TypedFunc<(), ()>, store: &mut Store<ModuleState>) -> wasmtime::Result<()> {
        start.call(store, ())
    }

    async fn call(&self, func: Func, store: &mut Store<ModuleState>, results: &mut [Val]) -> wasmtime::Result<()> {
        func.call(store, &[], results)
    }

    /// Kills and the deadline stop guest code through the epoch alone: a
    /// kill bumps it; only a run with a deadline keeps the ticker going, so
    /// a guest blocked in a host call (a sleep) costs no wake-ups.
    async fn drive(
        &self,
        runtime: &Runtime,
        guest: impl Future<Output = GuestEnd>,
        limits: &Limits,
        kill: &KillSwitch,
    ) -> Result<GuestEnd, ExitStatus> {
        let _ticking = limits.deadline.map(|_| runtime.ticker_running());
        stopped_by_epoch(guest.await, kill)
    }
}

impl CallStyle for Asynchronous {
    fn yielding(&self) -> Yielding {
        Yielding::ToExecutor
    }

    async fn instantiate(
        &self,
        pre: &InstancePre<ModuleState>,
        store: &mut Store<ModuleState>,
    ) -> wasmtime::Result<Instance> {
        pre.instantiate_async(store).await
    }

    async fn call_start(&self, start: TypedFunc<(), ()>, store: &mut Store<ModuleState>) -> wasmtime::Result<()> {
        start.call_async(store, ()).await
    }

    async fn call(&self, func: Func, store: &mut Store<ModuleState>, results: &mut [Val]) -> wasmtime::Result<()> {
        func.call_async(store, &[], results).await
    }

    async fn drive(
        &self,
        runtime: &Runtime,
        guest: impl Future<Output = GuestEnd>,
        limits: &Limits,
        kill: &KillSwitch,
    ) -> Result<GuestEnd, ExitStatus> {
        runtime.race(guest, limits, kill, Executor::Shared).await
    }
}

/// The output of a future that never waits ([`Synchronous`]'s), without an executor.
pub(crate) fn ready<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(output) => output,
        // Synchronous calls never yield: their epoch callback continues.
        std::task::Poll::Pending => unreachable!("a synchronous module run yielded"),
    }
}

impl Runtime {
    /// Run `module` (of `program`) in `style`: check the entry, link, make
    /// a store with the guest's capabilities and limits, instantiate, call
    /// `_initialize` for a reactor's export, then the entry.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn run_module(
        &self,
        style: impl CallStyle,
        program: &Program,
        module: &Module,
        entry: &Entry,
        caps: Capabilities,
        limits: &Limits,
        kill: &KillSwitch,
    ) -> Result<Outcome, RunError> {
        if let Some(signal) = kill.signal() {
            return classify(Err(ExitStatus::Signaled(signal)), None);
        }
        let export = if matches!(entry, Entry::Default) && program.start_checked() {
            "_start".to_owned()
        } else {
            let export = resolve_module_entry(module, entry)?;
            if matches!(entry, Entry::Default) {
                program.mark_start_checked();
            }
            export
        };
        let pre = match style.yielding() {
            Yielding::ToExecutor => program.module_pre(self.module_linker()?, module),
            Yielding::Never => program.module_pre_sync(self.module_linker_sync()?, module),
        }
        .map_err(|e| RunError::UnknownImport(crate::run::link_error_message(&e)))?;
        let wasi = caps.into_builder(true)?.build_p1();
        let state = ModuleState { wasi, limiter: MemoryLimiter::for_limits(limits) };
        let mut store = Runtime::new_store(program.engine(), state, limits, kill, style.yielding());
        store.limiter(|s| &mut s.limiter);
        let guest = async {
            let instance = match style.instantiate(&pre, &mut store).await {
                Ok(instance) => instance,
                Err(e) => return GuestEnd::Instantiate(e),
            };
            if matches!(entry, Entry::Export(_)) {
                if let Some(init) = instance.get_func(&mut store, "_initialize") {
                    if let Err(e) = style.call(init, &mut store, &mut []).await {
                        return GuestEnd::Failed(e);
                    }
                }
            }
            if matches!(entry, Entry::Default) {
                // `_start` is `() -> ()` (checked by resolve_module_entry): a
                // typed call skips building a type and a results vector.
                return match instance.get_typed_func::<(), ()>(&mut store, "_start") {
                    Ok(start) => match style.call_start(start, &mut store).await {
                        Ok(()) => GuestEnd::Returned(Vec::new()),
                        Err(e) => GuestEnd::Failed(e),
                    },
                    Err(e) => GuestEnd::Instantiate(e),
                };
            }
            let Some(func) = instance.get_func(&mut store, &export) else {
                return GuestEnd::Instantiate(wasmtime::format_err!("export `{export}` vanished"));
            };
            let mut results = vec![Val::I32(0); func.ty(&store).results().len()];
            match style.call(func, &mut store, &mut results).await {
                Ok(()) => GuestEnd::Returned(results),
                Err(e) => GuestEnd::Failed(e),
            }
        };
        let end = style.drive(self, guest, limits, kill).await;
        classify(end, store.data().limiter.refusal())
    }
}

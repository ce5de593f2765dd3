//! Running a program to completion on the caller's executor: the dispatch
//! by kind (a core module through [`crate::module_run`], a `wasi:cli`
//! command component here). Its own module so that `run` (the runtime and
//! its loading) depends on nothing that runs guests.

use crate::capabilities::Capabilities;
use crate::error::RunError;
use crate::exit::Outcome;
use crate::kill::KillSwitch;
use crate::limits::{Limits, MemoryLimiter};
use crate::program::{Compiled, Program, ProgramKind};
use crate::run::{classify, link_error_message, Entry, Executor, GuestEnd, RunRequest, Runtime, Yielding};
use crate::state::ComponentState;
use wasmtime::component::{Component, ResourceTable};

impl Runtime {
    /// Run a program with exactly its capabilities, under its limits,
    /// until it ends or its kill switch fires, on the caller's executor.
    /// `Err` means the guest never started (bad link, missing export,
    /// unusable preopen); everything after that is an [`Outcome`].
    pub async fn run(&self, request: RunRequest) -> Result<Outcome, RunError> {
        let RunRequest { program, entry, caps, limits, kill } = request;
        self.run_with(&program, &entry, caps, &limits, &kill, Executor::Shared).await
    }

    /// [`Runtime::run`] on borrowed parts (the async style for modules).
    pub(crate) async fn run_with(
        &self,
        program: &Program,
        entry: &Entry,
        caps: Capabilities,
        limits: &Limits,
        kill: &KillSwitch,
        executor: Executor,
    ) -> Result<Outcome, RunError> {
        match (program.compiled(), program.kind()) {
            (Compiled::Module(module), _) => {
                self.run_module(crate::module_run::Asynchronous, program, module, entry, caps, limits, kill).await
            }
            (Compiled::Component(component), kind @ (ProgramKind::Command | ProgramKind::AsyncCommand)) => {
                if let Entry::Export(name) = entry {
                    return Err(RunError::UninvokableExport {
                        name: name.clone(),
                        why: "components run through `wasi:cli/run`; invoking other component exports is not supported"
                            .into(),
                    });
                }
                if kind == ProgramKind::AsyncCommand {
                    self.run_async_command(program, component, caps, limits, kill, executor).await
                } else {
                    self.run_command(program, component, caps, limits, kill, executor).await
                }
            }
            (Compiled::Component(_), kind) if kind.is_http_function() => {
                let world = if kind == ProgramKind::HttpService { "wasi:http/service" } else { "wasi:http/proxy" };
                Err(RunError::NotACommand(format!(
                    "component {} (a `{world}` function: serve it with `wasmlet serve`)",
                    program.digest()
                )))
            }
            (Compiled::Component(_), _) => Err(RunError::NotACommand(format!("component {}", program.digest()))),
        }
    }

    async fn run_command(
        &self,
        program: &Program,
        component: &Component,
        caps: Capabilities,
        limits: &Limits,
        kill: &KillSwitch,
        executor: Executor,
    ) -> Result<Outcome, RunError> {
        let pre = program
            .command_pre(self.command_linker(program.engine_kind())?, component)
            .map_err(|e| RunError::UnknownImport(link_error_message(&e)))?;
        let mut store = command_store(program, caps, limits, kill)?;
        let guest = async {
            let command = match pre.instantiate_async(&mut store).await {
                Ok(command) => command,
                Err(e) => return GuestEnd::Instantiate(e),
            };
            match command.wasi_cli_run().call_run(&mut store).await {
                Ok(Ok(())) => GuestEnd::Returned(Vec::new()),
                Ok(Err(())) => GuestEnd::CommandFailed,
                Err(e) => GuestEnd::Failed(e),
            }
        };
        let end = self.race(guest, limits, kill, executor).await;
        classify(end, store.data().limiter.refusal())
    }

    /// A WASI 0.3 command: its async `run` is driven by the store's event
    /// loop (`run_concurrent`), which also runs the host's side of its
    /// streams and futures until `run` returns.
    async fn run_async_command(
        &self,
        program: &Program,
        component: &Component,
        caps: Capabilities,
        limits: &Limits,
        kill: &KillSwitch,
        executor: Executor,
    ) -> Result<Outcome, RunError> {
        let pre = program
            .async_command_pre(self.command_linker(program.engine_kind())?, component)
            .map_err(|e| RunError::UnknownImport(link_error_message(&e)))?;
        let mut store = command_store(program, caps, limits, kill)?;
        let guest = async {
            let command = match pre.instantiate_async(&mut store).await {
                Ok(command) => command,
                Err(e) => return GuestEnd::Instantiate(e),
            };
            let ran = store.run_concurrent(async move |store| command.wasi_cli_run().call_run(store).await).await;
            match ran {
                Ok(Ok(Ok(()))) => GuestEnd::Returned(Vec::new()),
                Ok(Ok(Err(()))) => GuestEnd::CommandFailed,
                Ok(Err(e)) | Err(e) => GuestEnd::Failed(e),
            }
        };
        let end = self.race(guest, limits, kill, executor).await;
        classify(end, store.data().limiter.refusal())
    }
}

/// The store a command component runs in: its WASI context, its memory
/// limit, stopped by `kill` or its deadline.
fn command_store(
    program: &Program,
    caps: Capabilities,
    limits: &Limits,
    kill: &KillSwitch,
) -> Result<wasmtime::Store<ComponentState>, RunError> {
    let ctx = caps.into_builder(true)?.build();
    let mut store = Runtime::new_store(
        program.engine(),
        ComponentState { ctx, table: ResourceTable::new(), limiter: MemoryLimiter::for_limits(limits) },
        limits,
        kill,
        Yielding::ToExecutor,
    );
    store.limiter(|s| &mut s.limiter);
    Ok(store)
}

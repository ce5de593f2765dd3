//! containerd's Task API for the one container this shim process runs.
//!
//! Where the API is silent, behaviour follows `containerd-shim-runc-v2`:
//! killing a finished task is NotFound, deleting a running one is
//! FailedPrecondition, Shutdown exits only once the task is gone.

use super::cgroup::ContainerCgroup;
use super::events::Events;
use super::spec::{is_pod_sandbox, wasm_task, WasmTask};
use super::exec::ExecProcess;
use super::netns;
use super::stdio;
use async_trait::async_trait;
use containerd_shim::protos::api;
use containerd_shim::protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim::protos::shim_async::Task;
use containerd_shim::protos::ttrpc::{self, r#async::TtrpcContext};
use containerd_shim::ExitSignal;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;
use wasmlet_runtime::{HttpServer, KillSwitch, Program, ProgramKind, Runtime};

type RpcResult<T> = ttrpc::Result<T>;

fn rpc_error(code: ttrpc::Code, message: impl Into<String>) -> ttrpc::Error {
    ttrpc::Error::RpcStatus(ttrpc::get_status(code, message.into()))
}

/// The runtime, built once per daemon in the background while containerd
/// prepares the Create call (the Task API is served meanwhile).
#[derive(Clone)]
pub struct SharedRuntime {
    rx: watch::Receiver<Option<Result<Arc<Runtime>, String>>>,
}

impl SharedRuntime {
    /// A runtime being built; send its outcome on the returned sender.
    pub fn building() -> (watch::Sender<Option<Result<Arc<Runtime>, String>>>, Self) {
        let (tx, rx) = watch::channel(None);
        (tx, Self { rx })
    }

    /// The runtime, once built.
    async fn wait(&self) -> RpcResult<Arc<Runtime>> {
        let mut rx = self.rx.clone();
        let built = rx
            .wait_for(Option::is_some)
            .await
            .map_err(|_| rpc_error(ttrpc::Code::UNAVAILABLE, "the Wasm runtime was never built"))?;
        match built.as_ref() {
            Some(Ok(runtime)) => Ok(runtime.clone()),
            Some(Err(err)) => Err(rpc_error(ttrpc::Code::UNAVAILABLE, format!("the Wasm runtime failed to start: {err}"))),
            None => Err(rpc_error(ttrpc::Code::INTERNAL, "runtime state vanished")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Created,
    Running,
    Stopped,
}

/// How a process ended: its status and when.
#[derive(Clone, Debug)]
pub struct Exit {
    pub status: u32,
    pub at: Timestamp,
}

/// Wait's answer, once `rx` carries an exit; NotFound if `what` goes first.
async fn wait_for_exit(mut rx: watch::Receiver<Option<Exit>>, what: &str) -> RpcResult<api::WaitResponse> {
    let exit = rx
        .wait_for(Option::is_some)
        .await
        .map_err(|_| rpc_error(ttrpc::Code::NOT_FOUND, format!("{what} was deleted")))?
        .clone()
        .ok_or_else(|| rpc_error(ttrpc::Code::INTERNAL, "exit vanished"))?;
    Ok(api::WaitResponse {
        exit_status: exit.status,
        exited_at: Some(exit.at).into(),
        ..Default::default()
    })
}

struct Container {
    id: String,
    /// The task's pid as containerd sees it: the namespace holder's for a
    /// pod sandbox, the shim's own otherwise.
    pid: u32,
    bundle: PathBuf,
    rootfs_mounted: bool,
    stdio_paths: (String, String, String),
    phase: Phase,
    /// `None` for a pod sandbox: it runs no Wasm (see [`is_pod_sandbox`]).
    program: Option<Program>,
    /// A pod sandbox's namespace holder.
    holder: Option<Arc<super::sandbox::PodNamespaces>>,
    /// Taken by Start.
    prepared: Option<(WasmTask, stdio::Stdio)>,
    kill: KillSwitch,
    exit_tx: watch::Sender<Option<Exit>>,
    /// The running guest's memory cap, which Update changes.
    memory_cap: Option<wasmlet_runtime::MemoryCap>,
    /// A Linux (non-Wasm) container run by runc.
    native: Option<Arc<super::runc::RuncContainer>>,
    /// The guest's output relays, closed when the task stops.
    relay: Option<stdio::Relay>,
    /// The output FIFOs' read ends, held from the stop until Delete.
    held_fifos: Option<stdio::HeldFifos>,
    /// Processes exec'd into a Linux container, by exec id.
    execs: std::collections::HashMap<String, Arc<ExecProcess>>,
    /// Set by the first [`Shared::finish`]; the phase follows once stdio is closed.
    exit_claimed: bool,
}

pub struct WasmletTask {
    shared: Arc<Shared>,
}

struct Shared {
    runtime: SharedRuntime,
    events: Events,
    exit: Arc<ExitSignal>,
    cgroup: Mutex<Option<ContainerCgroup>>,
    container: Mutex<Option<Container>>,
    pid: u32,
    /// containerd's gRPC address and namespace, for reading image content.
    containerd: (String, String),
}

impl WasmletTask {
    pub fn new(
        runtime: SharedRuntime,
        events: Events,
        exit: Arc<ExitSignal>,
        cgroup: Option<ContainerCgroup>,
        containerd: (String, String),
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                runtime,
                events,
                exit,
                cgroup: Mutex::new(cgroup),
                container: Mutex::new(None),
                pid: std::process::id(),
                containerd,
            }),
        }
    }
}

impl Shared {
    fn container(&self) -> std::sync::MutexGuard<'_, Option<Container>> {
        self.container.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Run `f` on the container with id `id`, or NotFound.
    fn with<T>(&self, id: &str, f: impl FnOnce(&mut Container) -> RpcResult<T>) -> RpcResult<T> {
        let mut guard = self.container();
        match guard.as_mut() {
            Some(c) if c.id == id => f(c),
            _ => Err(rpc_error(ttrpc::Code::NOT_FOUND, format!("container {id} not found"))),
        }
    }

    /// Record the created container and tell containerd (TaskCreate).
    async fn register(&self, req: &api::CreateTaskRequest, rootfs_mounted: bool, workload: Workload) -> api::CreateTaskResponse {
        let mut holder = None;
        let (program, prepared, memory_cap, native, relay) = match workload {
            Workload::Sandbox(pod) => {
                holder = Some(pod);
                (None, None, None, None, None)
            }
            Workload::Native(native) => (None, None, None, Some(native), None),
            Workload::Wasm { program, task, stdio, relay } => {
                let memory_cap = task.limits.memory_cap.clone();
                (Some(program), Some((*task, stdio)), memory_cap, None, Some(relay))
            }
        };
        let pid = holder.as_ref().map_or(self.pid, |h| h.pid());
        *self.container() = Some(Container {
            id: req.id.clone(),
            pid,
            holder,
            bundle: PathBuf::from(&req.bundle),
            rootfs_mounted,
            stdio_paths: (req.stdin.clone(), req.stdout.clone(), req.stderr.clone()),
            phase: Phase::Created,
            program,
            prepared,
            kill: KillSwitch::new(),
            exit_tx: watch::channel(None).0,
            memory_cap,
            native,
            relay,
            held_fifos: None,
            execs: Default::default(),
            exit_claimed: false,
        });
        self.events
            .created(&req.id, &req.bundle, (&req.stdin, &req.stdout, &req.stderr), pid)
            .await;
        api::CreateTaskResponse {
            pid,
            ..Default::default()
        }
    }

    /// The Wasm layer of the container's image, read from containerd's
    /// content store and verified; NotFound-style error when there is none.
    async fn image_wasm_layer(&self, id: &str, argv0: &str) -> RpcResult<wasmlet_oci::containerd::WasmBlob> {
        let missing = super::spec::SpecError::NotFound(argv0.to_owned()).to_string();
        let (address, namespace) = &self.containerd;
        let content = wasmlet_oci::containerd::ContainerdContent::connect(address, namespace)
            .await
            .map_err(|e| rpc_error(ttrpc::Code::INVALID_ARGUMENT, format!("{missing}, and the image could not be read: {e}")))?;
        match content.wasm_for_container(id).await {
            Ok(Some(blob)) => Ok(blob),
            Ok(None) => Err(rpc_error(ttrpc::Code::INVALID_ARGUMENT, missing)),
            Err(e) => Err(rpc_error(ttrpc::Code::INVALID_ARGUMENT, format!("{missing}, and the image has no usable Wasm layer: {e}"))),
        }
    }

    /// Record the exit (first one wins) and tell containerd. The guest's
    /// output is passed on and its destinations closed first: containerd
    /// (>= 1.6.22 / 1.7.3) waits for end-of-file on them once it sees the exit.
    async fn finish(&self, id: &str, status: u32, oom: bool) {
        let claimed = {
            let mut guard = self.container();
            match guard.as_mut() {
                Some(c) if c.id == id && c.phase != Phase::Stopped && !c.exit_claimed => {
                    c.exit_claimed = true;
                    Some((c.relay.take(), c.pid))
                }
                _ => None,
            }
        };
        let Some((relay, pid)) = claimed else { return };
        let held = match relay {
            Some(relay) => Some(relay.close().await),
            None => None,
        };
        let exit = Exit {
            status,
            at: containerd_shim::util::timestamp().unwrap_or_default(),
        };
        let recorded = {
            let mut guard = self.container();
            match guard.as_mut() {
                Some(c) if c.id == id => {
                    c.held_fifos = held;
                    c.phase = Phase::Stopped;
                    c.exit_tx.send_replace(Some(exit.clone()));
                    true
                }
                _ => false,
            }
        };
        if recorded {
            if oom {
                self.events.oom(id).await;
            }
            self.events.exited(id, pid, exit.status, &exit.at).await;
        }
    }
}

/// Serve an HTTP function until `kill` stops it (SIGTERM drains: status 0).
fn serve_http(
    runtime: Arc<Runtime>,
    program: &Program,
    caps: wasmlet_runtime::Capabilities,
    limits: wasmlet_runtime::Limits,
    config: wasmlet_runtime::ServeConfig,
    listener: std::net::TcpListener,
    kill: &KillSwitch,
) -> Result<wasmlet_runtime::Outcome, String> {
    let server = HttpServer::new(runtime, program, caps, limits, config).map_err(|e| e.to_string())?;
    let executor = wasmlet_runtime::serve_executor(1).map_err(|e| format!("starting the HTTP executor: {e}"))?;
    let outcome = executor.block_on(async {
        let listener = tokio::net::TcpListener::from_std(listener).map_err(|e| format!("listening: {e}"))?;
        tracing::info!(addr = ?listener.local_addr().ok(), "serving HTTP");
        Ok::<_, String>(server.serve(listener, kill).await)
    });
    executor.shutdown_timeout(std::time::Duration::from_millis(100));
    outcome
}

/// What a created container runs.
enum Workload {
    /// A CRI pod sandbox: a process holding the pod's namespaces.
    Sandbox(Arc<super::sandbox::PodNamespaces>),
    /// A Linux container, handed to runc.
    Native(Arc<super::runc::RuncContainer>),
    /// Wasm, prepared to start.
    Wasm {
        program: Program,
        task: Box<WasmTask>,
        stdio: stdio::Stdio,
        relay: stdio::Relay,
    },
}

/// The Task API verbs for exec'd processes (Linux containers only).
impl WasmletTask {
    fn exec_of(&self, id: &str, exec_id: &str) -> RpcResult<Arc<ExecProcess>> {
        self.shared.with(id, |c| {
            c.execs
                .get(exec_id)
                .cloned()
                .ok_or_else(|| rpc_error(ttrpc::Code::NOT_FOUND, format!("exec {exec_id} not found in container {id}")))
        })
    }

    async fn start_exec(&self, req: &api::StartRequest) -> RpcResult<api::StartResponse> {
        let exec = self.exec_of(&req.id, &req.exec_id)?;
        if exec.started() {
            return Err(rpc_error(ttrpc::Code::FAILED_PRECONDITION, format!("exec {} was already started", req.exec_id)));
        }
        let (starter, id) = (exec.clone(), req.id.clone());
        let pid = tokio::task::spawn_blocking(move || starter.start(&id))
            .await
            .map_err(|e| rpc_error(ttrpc::Code::INTERNAL, e.to_string()))?
            .map_err(|e| rpc_error(ttrpc::Code::INTERNAL, e))?;
        let s = self.shared.clone();
        s.events.exec_started(&req.id, &req.exec_id, pid).await;
        let id = req.id.clone();
        tokio::spawn(async move {
            let waited = exec.clone();
            let status = tokio::task::spawn_blocking(move || waited.wait()).await.unwrap_or(255);
            let at = containerd_shim::util::timestamp().unwrap_or_default();
            exec.record_exit(Exit { status, at: at.clone() });
            s.events.process_exited(&id, &exec.exec_id, pid, status, &at).await;
        });
        Ok(api::StartResponse {
            pid,
            ..Default::default()
        })
    }

    fn exec_state(&self, req: &api::StateRequest) -> RpcResult<api::StateResponse> {
        let exec = self.exec_of(&req.id, &req.exec_id)?;
        let bundle = self.shared.with(&req.id, |c| Ok(c.bundle.to_string_lossy().into_owned()))?;
        let exit = exec.exited();
        Ok(api::StateResponse {
            id: req.exec_id.clone(),
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

    async fn wait_exec(&self, req: &api::WaitRequest) -> RpcResult<api::WaitResponse> {
        let rx = self.exec_of(&req.id, &req.exec_id)?.subscribe();
        wait_for_exit(rx, &format!("exec {}", req.exec_id)).await
    }

    fn kill_exec(&self, req: &api::KillRequest) -> RpcResult<api::Empty> {
        let exec = self.exec_of(&req.id, &req.exec_id)?;
        if exec.exited().is_some() {
            return Err(rpc_error(ttrpc::Code::NOT_FOUND, format!("exec {} already finished", req.exec_id)));
        }
        exec.signal(req.signal as i32).map_err(|e| rpc_error(ttrpc::Code::FAILED_PRECONDITION, e))?;
        Ok(api::Empty::new())
    }

    fn delete_exec(&self, req: &api::DeleteRequest) -> RpcResult<api::DeleteResponse> {
        let exec = self.shared.with(&req.id, |c| {
            match c.execs.get(&req.exec_id) {
                Some(e) if e.started() && e.exited().is_none() => {
                    Err(rpc_error(ttrpc::Code::FAILED_PRECONDITION, format!("exec {} is running", req.exec_id)))
                }
                Some(_) => Ok(c.execs.remove(&req.exec_id)),
                None => Ok(None),
            }
        })?;
        let exec = exec.ok_or_else(|| rpc_error(ttrpc::Code::NOT_FOUND, format!("exec {} not found", req.exec_id)))?;
        let exit = exec.exited();
        Ok(api::DeleteResponse {
            pid: exec.pid(),
            exit_status: exit.as_ref().map_or(0, |e| e.status),
            exited_at: exit.map(|e| e.at).into(),
            ..Default::default()
        })
    }
}

async fn mount_rootfs(mounts: &[api::Mount], rootfs: &Path) -> RpcResult<bool> {
    for mount in mounts {
        containerd_shim::util::mount_rootfs(mount, rootfs)
            .await
            .map_err(|e| rpc_error(ttrpc::Code::INTERNAL, format!("mounting rootfs at {}: {e}", rootfs.display())))?;
    }
    Ok(!mounts.is_empty())
}

fn unmount_rootfs(rootfs: &Path) {
    if let Err(err) = containerd_shim::mount::umount_recursive(rootfs.to_str(), libc::MNT_DETACH) {
        tracing::warn!(rootfs = %rootfs.display(), error = %err, "unmounting rootfs");
    }
}

#[async_trait]
impl Task for WasmletTask {
    #[tracing::instrument(level = "debug", name = "create", skip_all)]
    async fn create(&self, _ctx: &TtrpcContext, req: api::CreateTaskRequest) -> RpcResult<api::CreateTaskResponse> {
        let s = &self.shared;
        if s.container().is_some() {
            return Err(rpc_error(ttrpc::Code::ALREADY_EXISTS, "this shim already runs a container"));
        }
        if req.terminal {
            return Err(rpc_error(
                ttrpc::Code::INVALID_ARGUMENT,
                "wasmlet does not support a terminal (tty) for Wasm containers; run without -t",
            ));
        }
        if !req.checkpoint.is_empty() {
            return Err(rpc_error(ttrpc::Code::UNIMPLEMENTED, "wasmlet does not support restoring checkpoints"));
        }
        let bundle = PathBuf::from(&req.bundle);
        let rootfs = bundle.join("rootfs");
        let mounted = mount_rootfs(&req.rootfs, &rootfs).await?;
        let spec = match oci_spec::runtime::Spec::load(bundle.join("config.json")) {
            Ok(spec) => spec,
            Err(e) => {
                if mounted {
                    unmount_rootfs(&rootfs);
                }
                return Err(rpc_error(ttrpc::Code::INVALID_ARGUMENT, format!("reading the bundle's config.json: {e}")));
            }
        };
        if is_pod_sandbox(&spec) {
            let holder = match tokio::task::spawn_blocking(move || super::sandbox::PodNamespaces::create(&spec)).await {
                Ok(Ok(holder)) => Arc::new(holder),
                failed => {
                    if mounted {
                        unmount_rootfs(&rootfs);
                    }
                    let why = match failed {
                        Ok(Err(e)) => e.to_string(),
                        Err(e) => e.to_string(),
                        Ok(Ok(_)) => unreachable!(),
                    };
                    return Err(rpc_error(ttrpc::Code::INTERNAL, format!("pod sandbox: {why}")));
                }
            };
            tracing::info!(id = %req.id, holder = holder.pid(), "created pod sandbox (a holder process owns the pod's namespaces)");
            return Ok(s.register(&req, mounted, Workload::Sandbox(holder)).await);
        }
        // The container's root as the spec names it (`root.path`, absolute
        // or relative to the bundle), as runc reads it.
        let root = spec
            .root()
            .as_ref()
            .map(|r| bundle.join(r.path()))
            .unwrap_or_else(|| rootfs.clone());
        if super::runc::is_native(&spec, &root) {
            // runc owns this cgroup (and freezes it to kill): step out of it.
            if let Some(cgroup) = s.cgroup.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
                cgroup.leave();
            }
            let cgroups_path = spec
                .linux()
                .as_ref()
                .and_then(|l| l.cgroups_path().as_ref())
                .map(|p| p.to_string_lossy().into_owned());
            let native = match super::runc::RuncContainer::create(&req.id, &bundle, (&req.stdin, &req.stdout, &req.stderr), cgroups_path) {
                Ok(native) => Arc::new(native),
                Err(err) => {
                    if mounted {
                        unmount_rootfs(&rootfs);
                    }
                    return Err(rpc_error(ttrpc::Code::INTERNAL, format!("Linux container: {err}")));
                }
            };
            tracing::info!(id = %req.id, "created Linux container (runc)");
            return Ok(s.register(&req, mounted, Workload::Native(native)).await);
        }
        let prepared = async {
            let task = wasm_task(&spec, &root).map_err(|e| rpc_error(ttrpc::Code::INVALID_ARGUMENT, e.to_string()))?;
            let runtime = s.runtime.wait().await?;
            let runtime_for_link = runtime.clone();
            let program = match task.wasm.clone() {
                Some(wasm) => tokio::task::spawn_blocking(move || runtime.load_file(&wasm, false)).await,
                None => {
                    // Not a file in the rootfs: maybe the image is a Wasm artifact
                    // whose layer is the Wasm (its rootfs is empty).
                    let blob = s.image_wasm_layer(&req.id, &task.wasm_name).await?;
                    let digest: wasmlet_runtime::Digest = blob
                        .digest
                        .parse()
                        .map_err(|e| rpc_error(ttrpc::Code::INVALID_ARGUMENT, format!("{}: {e}", blob.digest)))?;
                    tracing::info!(image = %blob.image, layer = %blob.digest, media_type = %blob.media_type, "Wasm from the image's layer");
                    let what = format!("{} (layer {})", blob.image, blob.digest);
                    tokio::task::spawn_blocking(move || runtime.load_verified(&blob.bytes, digest, &what)).await
                }
            }
            .map_err(|e| rpc_error(ttrpc::Code::INTERNAL, e.to_string()))?
            .map_err(|e| rpc_error(ttrpc::Code::INVALID_ARGUMENT, e.to_string()))?
            .0;
            // Unknown imports fail Create, as a bad binary fails runc's create.
            runtime_for_link
                .link(&program)
                .map_err(|e| rpc_error(ttrpc::Code::INVALID_ARGUMENT, e.to_string()))?;
            let (stdin, stdout, stderr) = (req.stdin.clone(), req.stdout.clone(), req.stderr.clone());
            let (id, namespace) = (req.id.clone(), s.containerd.1.clone());
            let (stdio, mut relay) = tokio::task::spawn_blocking(move || {
                stdio::open(&stdin, &stdout, &stderr, &stdio::Owner { id: &id, namespace: &namespace })
            })
            .await
            .map_err(|e| rpc_error(ttrpc::Code::INTERNAL, e.to_string()))?
            .map_err(|e| rpc_error(ttrpc::Code::INTERNAL, format!("opening stdio: {e}")))?;
            relay
                .start()
                .map_err(|e| rpc_error(ttrpc::Code::INTERNAL, format!("relaying stdio: {e}")))?;
            Ok::<_, ttrpc::Error>((task, program, stdio, relay))
        }
        .await;
        let (task, program, stdio, relay) = match prepared {
            Ok(prepared) => prepared,
            Err(err) => {
                if mounted {
                    unmount_rootfs(&rootfs);
                }
                tracing::warn!(id = %req.id, error = ?err, "create failed");
                return Err(err);
            }
        };
        tracing::info!(id = %req.id, wasm = %task.wasm_name, digest = %program.digest(), kind = ?program.kind(), "created");
        Ok(s
            .register(
                &req,
                mounted,
                Workload::Wasm {
                    program,
                    task: Box::new(task),
                    stdio,
                    relay,
                },
            )
            .await)
    }

    #[tracing::instrument(level = "debug", name = "start", skip_all)]
    async fn start(&self, _ctx: &TtrpcContext, req: api::StartRequest) -> RpcResult<api::StartResponse> {
        if !req.exec_id.is_empty() {
            return self.start_exec(&req).await;
        }
        let s = self.shared.clone();
        let native = s.with(&req.id, |c| Ok(c.native.clone()))?;
        if let Some(native) = native {
            s.with(&req.id, |c| {
                if c.phase != Phase::Created {
                    return Err(rpc_error(ttrpc::Code::FAILED_PRECONDITION, format!("container {} was already started", c.id)));
                }
                c.phase = Phase::Running;
                Ok(())
            })?;
            let starter = native.clone();
            tokio::task::spawn_blocking(move || starter.start())
                .await
                .map_err(|e| rpc_error(ttrpc::Code::INTERNAL, e.to_string()))?
                .map_err(|e| rpc_error(ttrpc::Code::INTERNAL, e))?;
            let waiter = s.clone();
            let id = req.id.clone();
            tokio::spawn(async move {
                let waited = native.clone();
                let (status, oom) = tokio::task::spawn_blocking(move || (waited.wait(), waited.oom_killed()))
                    .await
                    .unwrap_or((255, false));
                waiter.finish(&id, status, oom).await;
            });
            s.events.started(&req.id, s.pid).await;
            return Ok(api::StartResponse {
                pid: s.pid,
                ..Default::default()
            });
        }
        let sandbox = s.with(&req.id, |c| {
            if c.phase != Phase::Created {
                return Err(rpc_error(ttrpc::Code::FAILED_PRECONDITION, format!("container {} was already started", c.id)));
            }
            let Some(holder) = c.holder.clone() else {
                return Ok(None);
            };
            c.phase = Phase::Running;
            Ok(Some((c.kill.clone(), holder)))
        })?;
        if let Some((kill, holder)) = sandbox {
            // Like pause: alive until signalled (SIGTERM/SIGINT are a clean
            // exit) or until the holder dies.
            let waiter = s.clone();
            let id = req.id.clone();
            let pid = holder.pid();
            tokio::spawn(async move {
                let reaper = holder.clone();
                let mut exited = tokio::task::spawn_blocking(move || reaper.wait());
                let status = tokio::select! {
                    signal = kill.signaled() => {
                        holder.kill();
                        let _ = (&mut exited).await;
                        if matches!(signal, libc::SIGTERM | libc::SIGINT) { 0 } else { 128 + signal as u32 }
                    }
                    status = &mut exited => status.map_or(255, |s| s as u32),
                };
                waiter.finish(&id, status, false).await;
            });
            s.events.started(&req.id, pid).await;
            return Ok(api::StartResponse {
                pid,
                ..Default::default()
            });
        }
        let (program, task, stdio, kill) = s.with(&req.id, |c| {
            let program = c
                .program
                .clone()
                .ok_or_else(|| rpc_error(ttrpc::Code::FAILED_PRECONDITION, "container has no program"))?;
            let (task, stdio) = c
                .prepared
                .take()
                .ok_or_else(|| rpc_error(ttrpc::Code::FAILED_PRECONDITION, "container has no prepared process"))?;
            c.phase = Phase::Running;
            Ok((program, task, stdio, c.kill.clone()))
        })?;
        let runtime = s.runtime.wait().await?;
        // An HTTP function listens before Start returns, so readiness probes
        // pass at once; a port already taken fails Start with the cause.
        let listener = if program.kind() == ProgramKind::HttpProxy {
            let http = task.http.clone();
            let bound = tokio::task::spawn_blocking(move || {
                let ns = match (&http.netns, http.new_netns) {
                    (Some(path), _) => netns::Namespace::Path(path),
                    (None, true) => netns::Namespace::New,
                    (None, false) => netns::Namespace::Current,
                };
                netns::bind(ns, http.listen)
            })
            .await
            .map_err(|e| rpc_error(ttrpc::Code::INTERNAL, e.to_string()))?;
            match bound {
                Ok(listener) => Some(listener),
                Err(err) => {
                    s.finish(&req.id, 1, false).await;
                    return Err(rpc_error(ttrpc::Code::FAILED_PRECONDITION, format!("HTTP function: {err}")));
                }
            }
        } else {
            None
        };
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let id = req.id.clone();
        let WasmTask { entry, mut caps, limits, http, .. } = task;
        caps.stdin = stdio.stdin;
        caps.stdout = stdio.stdout;
        caps.stderr = stdio.stderr;
        match listener {
            // A run to completion: on a thread of its own (a busy guest never
            // delays the Task API), synchronous WASI for modules.
            None => {
                tokio::spawn(async move {
                    let result = runtime.run_on_thread(program, entry, caps, limits, kill).await.map_err(|e| e.to_string());
                    let _ = done_tx.send(result);
                });
            }
            Some(listener) => {
                let spawned = std::thread::Builder::new().name("wasmlet-http".into()).spawn(move || {
                    let _ = done_tx.send(serve_http(runtime, &program, caps, limits, http.serve, listener, &kill));
                });
                if let Err(err) = spawned {
                    s.finish(&req.id, 128 + libc::SIGKILL as u32, false).await;
                    return Err(rpc_error(ttrpc::Code::INTERNAL, format!("starting the server thread: {err}")));
                }
            }
        }
        let waiter = s.clone();
        tokio::spawn(async move {
            let (status, oom) = match done_rx.await {
                Ok(Ok(outcome)) => {
                    match &outcome.status {
                        wasmlet_runtime::ExitStatus::Exited(_) => tracing::info!(%id, status = %outcome.status, "guest finished"),
                        other => tracing::warn!(%id, status = %other, "guest stopped"),
                    }
                    (outcome.code() as u32, outcome.status.is_oom())
                }
                Ok(Err(message)) => {
                    tracing::error!(%id, error = %message, "guest could not start");
                    (1, false)
                }
                Err(_) => (128 + libc::SIGKILL as u32, false),
            };
            waiter.finish(&id, status, oom).await;
        });
        s.events.started(&req.id, s.pid).await;
        Ok(api::StartResponse {
            pid: s.pid,
            ..Default::default()
        })
    }

    #[tracing::instrument(level = "debug", name = "state", skip_all)]
    async fn state(&self, _ctx: &TtrpcContext, req: api::StateRequest) -> RpcResult<api::StateResponse> {
        if !req.exec_id.is_empty() {
            return self.exec_state(&req);
        }
        self.shared.with(&req.id, |c| {
            let pid = c.pid;
            let exit = c.exit_tx.borrow().clone();
            Ok(api::StateResponse {
                id: c.id.clone(),
                bundle: c.bundle.to_string_lossy().into_owned(),
                pid,
                status: match c.phase {
                    Phase::Created => api::Status::CREATED,
                    Phase::Running => api::Status::RUNNING,
                    Phase::Stopped => api::Status::STOPPED,
                }
                .into(),
                stdin: c.stdio_paths.0.clone(),
                stdout: c.stdio_paths.1.clone(),
                stderr: c.stdio_paths.2.clone(),
                terminal: false,
                exit_status: exit.as_ref().map_or(0, |e| e.status),
                exited_at: exit.map(|e| e.at).into(),
                ..Default::default()
            })
        })
    }

    #[tracing::instrument(level = "debug", name = "wait", skip_all)]
    async fn wait(&self, _ctx: &TtrpcContext, req: api::WaitRequest) -> RpcResult<api::WaitResponse> {
        if !req.exec_id.is_empty() {
            return self.wait_exec(&req).await;
        }
        let rx = self.shared.with(&req.id, |c| Ok(c.exit_tx.subscribe()))?;
        wait_for_exit(rx, &format!("container {}", req.id)).await
    }

    #[tracing::instrument(level = "debug", name = "kill", skip_all)]
    async fn kill(&self, _ctx: &TtrpcContext, req: api::KillRequest) -> RpcResult<api::Empty> {
        if !req.exec_id.is_empty() {
            return self.kill_exec(&req);
        }
        let signal = req.signal as i32;
        let native = self.shared.with(&req.id, |c| match c.phase {
            Phase::Stopped => Err(rpc_error(ttrpc::Code::NOT_FOUND, "process already finished")),
            _ => Ok(c.native.clone()),
        })?;
        if let Some(native) = native {
            let all = req.all;
            tokio::task::spawn_blocking(move || native.kill(signal, all))
                .await
                .map_err(|e| rpc_error(ttrpc::Code::INTERNAL, e.to_string()))?
                .map_err(|e| rpc_error(ttrpc::Code::INTERNAL, e))?;
            return Ok(api::Empty::new());
        }
        let unstarted = self.shared.with(&req.id, |c| match c.phase {
            Phase::Stopped => Err(rpc_error(ttrpc::Code::NOT_FOUND, "process already finished")),
            Phase::Running => {
                c.kill.kill(signal);
                Ok(false)
            }
            Phase::Created => Ok(true),
        })?;
        tracing::info!(id = %req.id, signal, all = req.all, "kill");
        if unstarted {
            // Like runc killing a created-but-unstarted init: the task ends now.
            self.shared.with(&req.id, |c| {
                c.prepared = None;
                Ok(())
            })?;
            self.shared.finish(&req.id, 128 + signal as u32, false).await;
        }
        Ok(api::Empty::new())
    }

    #[tracing::instrument(level = "debug", name = "delete", skip_all)]
    async fn delete(&self, _ctx: &TtrpcContext, req: api::DeleteRequest) -> RpcResult<api::DeleteResponse> {
        if !req.exec_id.is_empty() {
            return self.delete_exec(&req);
        }
        let s = &self.shared;
        let container = {
            let mut guard = s.container();
            match guard.as_ref() {
                Some(c) if c.id == req.id && c.phase == Phase::Running => {
                    return Err(rpc_error(ttrpc::Code::FAILED_PRECONDITION, format!("container {} is running; stop it first", c.id)))
                }
                Some(c) if c.id == req.id => guard.take(),
                _ => None,
            }
        }
        .ok_or_else(|| rpc_error(ttrpc::Code::NOT_FOUND, format!("container {} not found", req.id)))?;
        if let Some(native) = container.native.clone() {
            let _ = tokio::task::spawn_blocking(move || native.delete()).await;
        }
        if container.rootfs_mounted {
            unmount_rootfs(&container.bundle.join("rootfs"));
        }
        // The cgroup outlives this call: the `delete` action containerd runs
        // once this process has exited removes it (cgroup::remove_for_spec).
        // Leaving it here would take a cgroup.procs write, whose global lock
        // waits for an RCU grace period (~10 ms on this VM) on every run.
        let exit = container.exit_tx.borrow().clone().unwrap_or(Exit {
            status: 0,
            at: containerd_shim::util::timestamp().unwrap_or_default(),
        });
        if let Some(holder) = container.holder.clone().filter(|h| !h.reaped()) {
            // Deleted without running (a killed or never-started sandbox):
            // no holder outlives its task.
            holder.kill();
            let _ = tokio::task::spawn_blocking(move || holder.wait()).await;
        }
        s.events.deleted(&req.id, container.pid, exit.status, &exit.at).await;
        tracing::info!(id = %req.id, status = exit.status, "deleted");
        Ok(api::DeleteResponse {
            pid: container.pid,
            exit_status: exit.status,
            exited_at: Some(exit.at).into(),
            ..Default::default()
        })
    }

    async fn pids(&self, _ctx: &TtrpcContext, req: api::PidsRequest) -> RpcResult<api::PidsResponse> {
        self.shared.with(&req.id, |c| {
            Ok(api::PidsResponse {
                processes: vec![api::ProcessInfo {
                    pid: c.pid,
                    ..Default::default()
                }],
                ..Default::default()
            })
        })
    }

    async fn stats(&self, _ctx: &TtrpcContext, req: api::StatsRequest) -> RpcResult<api::StatsResponse> {
        self.shared.with(&req.id, |_| Ok(()))?;
        let guard = self.shared.cgroup.lock().unwrap_or_else(|p| p.into_inner());
        let cgroup = guard
            .as_ref()
            .ok_or_else(|| rpc_error(ttrpc::Code::NOT_FOUND, "container has no cgroup (the spec names none)"))?;
        let stats = cgroup
            .metrics()
            .map_err(|e| rpc_error(ttrpc::Code::INTERNAL, format!("collecting cgroup metrics: {e:#}")))?;
        Ok(api::StatsResponse {
            stats: Some(stats).into(),
            ..Default::default()
        })
    }

    #[tracing::instrument(level = "debug", name = "update", skip_all)]
    async fn update(&self, _ctx: &TtrpcContext, req: api::UpdateTaskRequest) -> RpcResult<api::Empty> {
        let memory_cap = self.shared.with(&req.id, |c| Ok(c.memory_cap.clone()))?;
        let resources: oci_spec::runtime::LinuxResources = serde_json::from_slice(&req.resources.value)
            .map_err(|e| rpc_error(ttrpc::Code::INVALID_ARGUMENT, format!("invalid resources: {e}")))?;
        // The guest's own cap follows the new cgroup memory limit.
        if let (Some(cap), Some(memory)) = (memory_cap, resources.memory().as_ref()) {
            let limit = memory.limit().filter(|l| *l > 0).map(|l| super::guest_memory_limit(l as u64));
            cap.set(limit);
            tracing::info!(id = %req.id, guest_memory_limit = ?limit, "memory limit updated");
        }
        let guard = self.shared.cgroup.lock().unwrap_or_else(|p| p.into_inner());
        let cgroup = guard
            .as_ref()
            .ok_or_else(|| rpc_error(ttrpc::Code::FAILED_PRECONDITION, "container has no cgroup to update"))?;
        cgroup
            .update(&resources)
            .map_err(|e| rpc_error(ttrpc::Code::INTERNAL, format!("{e:#}")))?;
        Ok(api::Empty::new())
    }

    #[tracing::instrument(level = "debug", name = "connect", skip_all)]
    async fn connect(&self, _ctx: &TtrpcContext, req: api::ConnectRequest) -> RpcResult<api::ConnectResponse> {
        let shim_pid = self.shared.pid;
        let task_pid = self.shared.with(&req.id, |c| Ok(c.pid)).unwrap_or(shim_pid);
        Ok(api::ConnectResponse {
            shim_pid,
            task_pid,
            ..Default::default()
        })
    }

    #[tracing::instrument(level = "debug", name = "shutdown", skip_all)]
    async fn shutdown(&self, _ctx: &TtrpcContext, _req: api::ShutdownRequest) -> RpcResult<api::Empty> {
        if self.shared.container().is_none() {
            tracing::info!("shutdown");
            self.shared.exit.signal();
        }
        Ok(api::Empty::new())
    }

    async fn close_io(&self, _ctx: &TtrpcContext, req: api::CloseIORequest) -> RpcResult<api::Empty> {
        // containerd closes its end of the stdin FIFO itself; the guest then sees EOF.
        self.shared.with(&req.id, |_| Ok(()))?;
        Ok(api::Empty::new())
    }

    async fn resize_pty(&self, _ctx: &TtrpcContext, req: api::ResizePtyRequest) -> RpcResult<api::Empty> {
        if !req.exec_id.is_empty() {
            let exec = self.exec_of(&req.id, &req.exec_id)?;
            exec.resize(req.width, req.height).map_err(|e| rpc_error(ttrpc::Code::FAILED_PRECONDITION, e))?;
            return Ok(api::Empty::new());
        }
        self.shared.with(&req.id, |_| Ok(()))?;
        Ok(api::Empty::new())
    }

    #[tracing::instrument(level = "debug", name = "exec", skip_all)]
    async fn exec(&self, _ctx: &TtrpcContext, req: api::ExecProcessRequest) -> RpcResult<api::Empty> {
        let exec = self.shared.with(&req.id, |c| {
            if c.native.is_none() {
                return Err(rpc_error(
                    ttrpc::Code::UNIMPLEMENTED,
                    "exec is not supported by wasmlet: a Wasm container has no other processes or shell to exec into",
                ));
            }
            if c.phase != Phase::Running {
                return Err(rpc_error(ttrpc::Code::FAILED_PRECONDITION, format!("container {} is not running", c.id)));
            }
            if c.execs.contains_key(&req.exec_id) {
                return Err(rpc_error(ttrpc::Code::ALREADY_EXISTS, format!("exec {} already exists", req.exec_id)));
            }
            let exec = ExecProcess::new(&c.bundle, &req.exec_id, &req.spec.value, (&req.stdin, &req.stdout, &req.stderr), req.terminal)
                .map_err(|e| rpc_error(ttrpc::Code::INVALID_ARGUMENT, e))?;
            let exec = Arc::new(exec);
            c.execs.insert(req.exec_id.clone(), exec.clone());
            Ok(exec)
        })?;
        tracing::debug!(id = %req.id, exec_id = %exec.exec_id, "exec added");
        self.shared.events.exec_added(&req.id, &req.exec_id).await;
        Ok(api::Empty::new())
    }

    async fn checkpoint(&self, _ctx: &TtrpcContext, _req: api::CheckpointTaskRequest) -> RpcResult<api::Empty> {
        Err(rpc_error(ttrpc::Code::UNIMPLEMENTED, "checkpoint is not supported by wasmlet"))
    }

    async fn pause(&self, _ctx: &TtrpcContext, _req: api::PauseRequest) -> RpcResult<api::Empty> {
        Err(rpc_error(ttrpc::Code::UNIMPLEMENTED, "pause is not supported by wasmlet"))
    }

    async fn resume(&self, _ctx: &TtrpcContext, _req: api::ResumeRequest) -> RpcResult<api::Empty> {
        Err(rpc_error(ttrpc::Code::UNIMPLEMENTED, "resume is not supported by wasmlet"))
    }
}

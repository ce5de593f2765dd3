//! The long-running shim process: serves the Task API until Shutdown.

use super::cgroup::ContainerCgroup;
use super::events::Events;
use super::task::{SharedRuntime, WasmletTask};
use anyhow::Context as _;
use containerd_shim::protos::shim_async::create_task;
use containerd_shim::protos::ttrpc::r#async::transport::Listener;
use containerd_shim::protos::ttrpc::r#async::Server;
use containerd_shim::publisher::RemotePublisher;
use containerd_shim::{ExitSignal, Flags};
use std::sync::Arc;
use wasmlet_runtime::{Runtime, RuntimeConfig};

const TASK_V3: &str = "containerd.task.v3.Task";
const TASK_V2: &str = "containerd.task.v2.Task";

pub fn run(flags: Flags) -> anyhow::Result<()> {
    if flags.socket.is_empty() {
        anyhow::bail!("the daemon needs -socket");
    }
    // One malloc arena: the shim's threads allocate little, and an arena per
    // thread would be private memory in every idle container.
    // SAFETY: mallopt only tunes the allocator; called before other threads exist.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
    // Listen first and let `start` return at once: containerd then reads the
    // address, connects and sends Create while this process still joins the
    // cgroup and forks the guest (the kernel queues the connection; Create is
    // read once the server runs). Measured with perf on containerd 2.1: the
    // set-up below took ~4 ms that containerd used to wait for. The socket is
    // close-on-exec and the forked guest closes every inherited descriptor.
    let listener = bind(&flags.socket)?;
    release_start_process();
    // Join the container's cgroup before anything else, so what the runtime
    // allocates is charged to the container (cgroup v1 does not move charges).
    let spec = oci_spec::runtime::Spec::load("config.json");
    let (cgroup, cgroup_error) = match &spec {
        Ok(spec) => {
            // Still single-threaded: every thread made from here on (the
            // guest's among them) inherits the pod's network namespace.
            super::netns::join_for_guest(spec).context("entering the pod's network namespace")?;
            match ContainerCgroup::join(spec) {
                Ok(cgroup) => (cgroup, None),
                Err(err) => (None, Some(format!("{err:#}"))),
            }
        }
        Err(_) => (None, None),
    };
    // Still single-threaded, and before the log exists (the child must not
    // inherit it): fork the guest process, which builds its engine while
    // containerd gets to Create (guest::preforked). A pod sandbox runs none.
    let preforked = match &spec {
        // SAFETY: no thread has been started yet.
        Ok(spec) if !super::spec::is_pod_sandbox(spec) => Some(unsafe { super::guest::preforked::fork(spec) }),
        _ => None,
    };
    init_logging(flags.debug);
    if let Some(err) = cgroup_error {
        tracing::warn!(error = %err, "cgroup set-up failed; running in the shim's cgroup");
    }
    if let Err(err) = &spec {
        tracing::warn!(error = %err, "no readable config.json in the bundle; no cgroup");
    }
    match preforked {
        Some(Ok(pid)) => tracing::debug!(pid, "guest process forked"),
        Some(Err(err)) => tracing::warn!(error = %err, "forking the guest process; one is exec'd at Create"),
        None => {}
    }
    let executor =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the async runtime")?;
    executor.block_on(serve(flags, cgroup, listener))?;
    // Exit now, the Shutdown answered and the events sent: dropping the
    // executor would join its blocking pool's threads first (~2-4 ms per
    // container here), and containerd waits for this process to exit
    // before the Delete that shut it down returns.
    std::process::exit(0)
}

async fn serve(
    flags: Flags,
    cgroup: Option<ContainerCgroup>,
    listener: std::os::unix::net::UnixListener,
) -> anyhow::Result<()> {
    // Build the engine while the Task API already answers: containerd spends
    // a few ms between connecting and calling Create, which hides it.
    let (built, runtime) = SharedRuntime::building();
    std::thread::Builder::new()
        .name("wasmlet-engine".into())
        .spawn(move || {
            let outcome = Runtime::new(super::shim_runtime_config(RuntimeConfig::default_cache_dir()))
                .map(Arc::new)
                .map_err(|err| {
                    tracing::error!(error = %format!("{err:#}"), "creating the Wasm runtime");
                    format!("{err:#}")
                });
            let _ = built.send(Some(outcome));
        })
        .context("starting the engine thread")?;
    let ttrpc_address = std::env::var(super::TTRPC_ADDRESS_ENV).context("TTRPC_ADDRESS is not set")?;
    let publisher = RemotePublisher::new(&ttrpc_address)
        .await
        .with_context(|| format!("connecting to containerd's events at {ttrpc_address}"))?;
    let exit = Arc::new(ExitSignal::default());
    let events = Events::new(publisher, flags.namespace.clone());
    let task: Arc<dyn containerd_shim::protos::shim_async::Task + Send + Sync> = Arc::new(WasmletTask::new(
        runtime,
        events.clone(),
        exit.clone(),
        cgroup,
        (flags.address.clone(), flags.namespace.clone()),
    ));
    let mut services = create_task(task.clone());
    if let Some(v2) = create_task(task).remove(TASK_V3) {
        services.insert(TASK_V2.to_owned(), v2);
    }
    let mut server = Server::new()
        .add_listener(Listener::try_from(listener).context("creating the ttrpc listener")?)
        .register_service(services);
    server.start().await.context("starting the ttrpc server")?;
    ignore_termination_signals();
    tracing::debug!(socket = %flags.socket, "serving");
    exit.wait().await;
    events.flush().await;
    let _ = server.shutdown().await;
    let _ = std::fs::remove_file(socket_path(&flags.socket));
    Ok(())
}

fn socket_path(address: &str) -> &str {
    address.strip_prefix("unix://").unwrap_or(address)
}

fn bind(address: &str) -> anyhow::Result<std::os::unix::net::UnixListener> {
    let path = std::path::Path::new(socket_path(address));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    // A socket left by a daemon that died (this grouping is per container).
    let _ = std::fs::remove_file(path);
    let listener =
        std::os::unix::net::UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// `start` reads our stdout until it closes: point it at stderr now.
fn release_start_process() {
    // SAFETY: dup2 on the process's own standard descriptors.
    unsafe {
        libc::dup2(libc::STDERR_FILENO, libc::STDOUT_FILENO);
    }
}

/// containerd stops shims with Shutdown, not signals; a stray SIGTERM/SIGINT
/// must not take the running guest down with it.
fn ignore_termination_signals() {
    use tokio::signal::unix::{signal, SignalKind};
    for kind in [SignalKind::terminate(), SignalKind::interrupt()] {
        if let Ok(mut stream) = signal(kind) {
            tokio::spawn(async move {
                while stream.recv().await.is_some() {
                    tracing::info!("ignoring termination signal (containerd uses Shutdown)");
                }
            });
        }
    }
}

/// The shim's default log filter: wasmlet's lifecycle at info, others at warn.
const DEFAULT_LOG_FILTER: &str = "warn,wasmlet_shim=info,wasmlet_runtime=info,wasmlet_oci=info";

/// Logs go to the `log` FIFO containerd opens in the bundle (they end up in
/// containerd's log); level `debug` with containerd's -debug, else
/// `$WASMLET_LOG` or [`DEFAULT_LOG_FILTER`].
fn init_logging(debug: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = if debug {
        EnvFilter::new("debug")
    } else {
        // Lifecycle events of wasmlet's own crates; libraries (ttrpc, the
        // shim crate, wasmtime) only when something is wrong.
        EnvFilter::try_from_env("WASMLET_LOG").unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER))
    };
    let log = std::fs::OpenOptions::new().write(true).open("log");
    // At debug level each Task API call's span logs its duration when it closes.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE);
    let _ = match log {
        Ok(file) => builder.with_writer(std::sync::Mutex::new(file)).try_init(),
        Err(_) => builder.with_writer(std::io::stderr).try_init(),
    };
}

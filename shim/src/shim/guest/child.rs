//! The guest process itself (`containerd-shim-wasmlet-v1 guest`): read the
//! launch, build the engine, map the cached code and link it, report ready, wait for
//! Start, run the guest with synchronous WASI on this thread, report how it
//! ended and exit with its status. It logs nothing: its stderr is the
//! guest's, which only says why a guest could not start; problems go to the
//! shim on the control socket.

use super::protocol::{receive, send, FromGuest, Launch, Serve, ToGuest, CONTROL_FD, LISTENER_FD};
use std::io::BufReader;
use std::os::fd::FromRawFd as _;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::Duration;
use wasmlet_runtime::{
    Capabilities, EngineKind, Entry, HttpServer, InstanceReuse, KillSwitch, Limits, MemoryCap, Preopen, Program,
    RunRequest, Runtime, ServeConfig, StdinSource, StdoutSink,
};

/// Entry point of an exec'd guest process; returns its exit status.
pub fn main() -> i32 {
    // SAFETY: the shim hands fd 3 to this process as the control socket.
    let control = unsafe { UnixStream::from_raw_fd(CONTROL_FD) };
    let Ok(reader) = control.try_clone() else { return 125 };
    let mut from_shim = BufReader::new(reader);
    let launch = match receive::<ToGuest>(&mut from_shim) {
        Ok(Some(ToGuest::Launch(launch))) => launch,
        _ => return 125,
    };
    run(*launch, from_shim, control, None)
}

/// Run `launch` (already confined): load, report ready, wait for Start, run,
/// report. `runtime`: one built before the launch arrived (it is used if it
/// has the launch's cache).
pub(super) fn run(
    launch: Launch,
    mut from_shim: BufReader<UnixStream>,
    mut to_shim: UnixStream,
    runtime: Option<Runtime>,
) -> i32 {
    // An HTTP function drains on these (signals::forward_to).
    let draining: &[libc::c_int] =
        if launch.serve.is_some() { &[libc::SIGINT, libc::SIGTERM, libc::SIGHUP] } else { &[] };
    crate::shim::pidns::exit_on_signals_as_pid1(draining);
    let cap = MemoryCap::new(launch.memory);
    let (runtime, program) = match prepare(&launch, runtime, &mut from_shim) {
        Ok(prepared) => prepared,
        Err(message) => {
            tell_user(&message);
            let _ = send(&mut to_shim, &FromGuest::Failed(message));
            return 1;
        }
    };
    if send(&mut to_shim, &FromGuest::Ready).is_err() {
        return 125;
    }
    // Until Start: memory updates may come first; end of stream means the
    // shim is gone (or the task was killed before it started).
    loop {
        match receive::<ToGuest>(&mut from_shim) {
            Ok(Some(ToGuest::Start)) => break,
            Ok(Some(ToGuest::Memory(limit))) => cap.set(limit),
            _ => return 137,
        }
    }
    let updates = cap.clone();
    let _ = std::thread::Builder::new().name("wasmlet-control".into()).spawn(move || {
        while let Ok(Some(message)) = receive::<ToGuest>(&mut from_shim) {
            if let ToGuest::Memory(limit) = message {
                updates.set(limit);
            }
        }
    });
    let limits = Limits { memory: launch.memory, memory_cap: Some(cap), deadline: None };
    let ran = match &launch.serve {
        Some(serve) => serve_http(runtime, &program, capabilities(&launch), limits, serve, &to_shim),
        None => runtime.run_blocking(RunRequest {
            program,
            entry: launch.export.clone().map_or(Entry::Default, Entry::Export),
            caps: capabilities(&launch),
            limits,
            kill: KillSwitch::new(),
        }),
    };
    let report = match ran {
        Ok(outcome) => FromGuest::Finished {
            status: outcome.code() as u32,
            oom: outcome.status.is_oom(),
            message: match &outcome.status {
                wasmlet_runtime::ExitStatus::Exited(_) => None,
                other => Some(other.to_string()),
            },
        },
        Err(err) => {
            tell_user(&err.to_string());
            FromGuest::Failed(err.to_string())
        }
    };
    let status = match &report {
        FromGuest::Finished { status, .. } => *status as i32,
        _ => 1,
    };
    // Nothing more is written: the shim passes the output on and reports
    // the exit as soon as it reads this, while the process still exits.
    release_stdio();
    let _ = send(&mut to_shim, &report);
    status
}

/// Flush what the guest wrote and close the output pipes (stdin too), so
/// the shim's relays see end-of-file now, not once every thread is gone.
fn release_stdio() {
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: /dev/null over fds 0-2: they stay valid for anything that
    // still writes (a WASI thread, the exit path), and no pipe end remains.
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
        if null >= 0 {
            for fd in 0..3 {
                libc::dup2(null, fd);
            }
            libc::close(null);
        }
    }
}

/// Serve HTTP on the socket the shim bound (fd 4) until SIGTERM (drain,
/// status 0) or SIGKILL; tell the shim once it listens.
fn serve_http(
    runtime: Runtime,
    program: &Program,
    caps: Capabilities,
    limits: Limits,
    serve: &Serve,
    to_shim: &UnixStream,
) -> Result<wasmlet_runtime::Outcome, wasmlet_runtime::RunError> {
    let config = ServeConfig {
        max_in_flight: serve.max_in_flight,
        max_queued: serve.max_queued,
        request_timeout: Duration::from_millis(serve.request_timeout_ms),
        max_body_bytes: serve.max_body_bytes,
        reuse: InstanceReuse::new(serve.instance_requests, serve.instance_concurrency),
    };
    let server = HttpServer::new(Arc::new(runtime), program, caps, limits, config)?;
    // SAFETY: the shim hands fd 4 to this process as the function's listener.
    let socket = unsafe { std::net::TcpListener::from_raw_fd(LISTENER_FD) };
    let stop = KillSwitch::new();
    server.serve_blocking(socket, 1, &stop, |_| {
        crate::signals::forward_to(stop.clone());
        let _ = send(&mut &*to_shim, &FromGuest::Serving);
    })
}

/// Why the guest never ran, on its stderr: the container's log, where
/// `kubectl logs` and `ctr run` show it (the shim logs it too).
pub(super) fn tell_user(message: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "wasmlet: {message}");
}

fn prepare(
    launch: &Launch,
    built: Option<Runtime>,
    from_shim: &mut BufReader<UnixStream>,
) -> Result<(Runtime, Program), String> {
    let digest = launch.digest.parse().map_err(|e| format!("{e}"))?;
    let engine = if launch.concurrent_engine { EngineKind::Concurrent } else { EngineKind::Standard };
    let runtime = match built.filter(|r| r.cache().root() == launch.cache_dir) {
        Some(runtime) => runtime,
        None => Runtime::new(crate::shim::guest_runtime_config(launch.cache_dir.clone()))
            .map_err(|e| format!("creating the Wasm runtime: {e:#}"))?,
    };
    let program = match launch.code_bytes {
        // The cache could not keep it: the shim sent the code itself.
        Some(bytes) => {
            let mut code = vec![0u8; usize::try_from(bytes).map_err(|_| "compiled code too large".to_owned())?];
            std::io::Read::read_exact(from_shim, &mut code).map_err(|e| format!("receiving the compiled code: {e}"))?;
            runtime.load_code(digest, &code, engine)
        }
        None => runtime.load_cached(digest, engine),
    }
    .map_err(|e| e.to_string())?;
    // Unknown imports are found before Ready, so they fail Start.
    runtime.link(&program).map_err(|e| e.to_string())?;
    Ok((runtime, program))
}

fn capabilities(launch: &Launch) -> Capabilities {
    Capabilities {
        args: launch.args.clone(),
        env: launch.env.clone(),
        cwd: launch.cwd.clone(),
        preopens: launch
            .preopens
            .iter()
            .map(|p| Preopen { host: p.host.clone(), guest: p.guest.clone(), read_only: p.read_only })
            .collect(),
        stdin: if launch.stdin { StdinSource::Inherit } else { StdinSource::Null },
        stdout: StdoutSink::Inherit,
        stderr: StdoutSink::Inherit,
        network: launch.network,
    }
}

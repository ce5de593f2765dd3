//! Compilation held to a budget: a module can take minutes and gigabytes
//! to compile (one of 651 KB took 51.8 s and 1.39 GB here), so a node must
//! not compile untrusted Wasm inside the process that serves containerd.
//!
//! [`Compile::Within`] runs Cranelift in a worker process: the same binary
//! started with [`WORKER_ACTION`] (its `main` calls [`worker_main`]), the
//! Wasm on its stdin, the compiled code on its stdout. The worker's data
//! segment is capped by `RLIMIT_DATA` at the memory budget (an allocation
//! past it fails and the worker aborts), it is killed when the time budget
//! runs out, and its `oom_score_adj` is 1000, so when a container's own
//! memory limit is what runs out, the kernel kills the compiler and not the
//! process that must report the failure. The caller stores the code only
//! after the worker succeeded: nothing over budget is ever cached.

use crate::error::LoadError;
use std::io::{Read as _, Write as _};
use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::process::{Command, Stdio};
use std::time::Duration;

/// argv\[1\] that makes a wasmlet binary a compile worker ([`worker_main`]).
pub const WORKER_ACTION: &str = "compile-worker";

/// What one compilation may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompileBudget {
    /// Wall-clock time; the default stays under kubelet's 2-minute runtime
    /// request timeout, so a CreateContainer that compiles still answers.
    pub time: Duration,
    /// Memory of the compiler (its data segment: heap and anonymous maps).
    pub memory: u64,
}

impl Default for CompileBudget {
    fn default() -> Self {
        Self { time: Duration::from_secs(110), memory: 2 << 30 }
    }
}

/// How a load compiles what is not in the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compile {
    /// On the calling thread, unbounded (the CLI: the user waits and sees).
    #[default]
    InProcess,
    /// In a worker process held to the budget (the shim).
    Within(CompileBudget),
}

/// Why a bounded compilation produced no code.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OverBudget {
    #[error("compiling took longer than its {0:?} budget (stopped; nothing cached)")]
    Time(Duration),
    #[error("compiling needed more than its memory budget of {} MiB (stopped; nothing cached)", .0 >> 20)]
    Memory(u64),
    #[error(
        "the compiler was killed by {0} (by the kernel's OOM killer when the container's memory limit is \
         too small to compile this Wasm; nothing cached)"
    )]
    Killed(String),
}

/// The compiled code of `bytes` (a module, or a component when
/// `component`), as `engine` would produce it, per `how`.
pub(crate) fn precompile(
    engine: &wasmtime::Engine,
    kind: crate::engine::EngineKind,
    bytes: &[u8],
    component: bool,
    what: &str,
    how: Compile,
) -> Result<Vec<u8>, LoadError> {
    match how {
        Compile::InProcess => in_process(engine, bytes, component).map_err(|err| rejected(what, &format!("{err:#}"))),
        Compile::Within(budget) => in_worker(bytes, component, kind, what, budget),
    }
}

/// Cranelift on this thread: what [`Compile::InProcess`] and the worker run.
fn in_process(engine: &wasmtime::Engine, bytes: &[u8], component: bool) -> wasmtime::Result<Vec<u8>> {
    if component {
        engine.precompile_component(bytes)
    } else {
        engine.precompile_module(bytes)
    }
}

fn in_worker(
    bytes: &[u8],
    component: bool,
    kind: crate::engine::EngineKind,
    what: &str,
    budget: CompileBudget,
) -> Result<Vec<u8>, LoadError> {
    let failed = |why: String| LoadError::Compile { what: what.to_owned(), why };
    let over = |reason: OverBudget| LoadError::OverBudget { what: what.to_owned(), reason };
    let mut command = Command::new("/proc/self/exe");
    command
        .arg(WORKER_ACTION)
        .arg(if component { "component" } else { "module" })
        .arg(kind.as_arg())
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let memory = budget.memory;
    // SAFETY: between fork and exec only raw syscalls run (setrlimit, open,
    // write, close), with no allocation.
    unsafe {
        command.pre_exec(move || {
            let limit = libc::rlimit { rlim_cur: memory, rlim_max: memory };
            if libc::setrlimit(libc::RLIMIT_DATA, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let fd = libc::open(c"/proc/self/oom_score_adj".as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd >= 0 {
                libc::write(fd, b"1000".as_ptr().cast(), 4);
                libc::close(fd);
            }
            Ok(())
        });
    }
    let mut child = command.spawn().map_err(|e| failed(format!("starting the compiler process: {e}")))?;
    let (mut stdin, mut stdout, mut stderr) = (child.stdin.take(), child.stdout.take(), child.stderr.take());
    let pid = child.id() as libc::pid_t;
    // The watchdog kills the worker when time runs out; it is joined before
    // the worker is reaped, so it never signals a reused pid.
    let (done, timeout) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::Builder::new()
        .name("wasmlet-compile-watchdog".into())
        .spawn(move || {
            let expired = matches!(timeout.recv_timeout(budget.time), Err(std::sync::mpsc::RecvTimeoutError::Timeout));
            if expired {
                // SAFETY: kill(2) on our unreaped child (see above).
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            expired
        })
        .map_err(|e| failed(format!("starting the compile watchdog: {e}")))?;
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(stderr) = stderr.as_mut() {
            let _ = stderr.take(64 << 10).read_to_string(&mut text);
        }
        text
    });
    // The worker reads all of its input before it writes anything.
    let wrote = stdin.take().map(|mut s| s.write_all(bytes));
    let mut code = Vec::new();
    let read = stdout.as_mut().map(|s| s.read_to_end(&mut code));
    drop(done);
    let timed_out = watchdog.join().unwrap_or(false);
    let status = child.wait().map_err(|e| failed(format!("waiting for the compiler process: {e}")))?;
    let message = errors.join().unwrap_or_default();
    let message = message.trim();
    if timed_out {
        return Err(over(OverBudget::Time(budget.time)));
    }
    if status.success() {
        return match (wrote, read) {
            (Some(Ok(())), Some(Ok(_))) if !code.is_empty() => Ok(code),
            _ => Err(failed("the compiler process produced no code".into())),
        };
    }
    if message.contains("memory allocation of") || message.contains("out of memory") {
        return Err(over(OverBudget::Memory(budget.memory)));
    }
    match (status.code(), status.signal()) {
        (Some(WORKER_INVALID), _) => Err(rejected(what, message)),
        (_, Some(libc::SIGKILL)) => Err(over(OverBudget::Killed("SIGKILL".into()))),
        (_, Some(signal)) => Err(failed(format!("the compiler process died of signal {signal}: {message}"))),
        (code, None) => Err(failed(format!("the compiler process exited with {code:?}: {message}"))),
    }
}

/// Why the compiler rejected `what`: Wasm that is valid but uses a feature
/// this engine does not enable is not called invalid.
fn rejected(what: &str, message: &str) -> LoadError {
    if message.contains("requires the component model async") {
        return LoadError::Unsupported {
            what: what.to_owned(),
            feature:
                "a component-model async extension beyond WASI 0.3's (stackful tasks, more async built-ins, threads)",
            detail: message.to_owned(),
        };
    }
    let gated = message.contains("support is not enabled")
        || message.contains("proposal not enabled")
        || (message.contains("requires the") && message.contains(" feature"));
    if gated {
        return LoadError::Unsupported {
            what: what.to_owned(),
            feature: "a WebAssembly proposal this engine does not enable",
            detail: message.to_owned(),
        };
    }
    LoadError::Invalid { what: what.to_owned(), message: message.to_owned() }
}

/// The worker's status for Wasm the compiler rejects (its message on stderr).
const WORKER_INVALID: i32 = 65;

/// The compile worker: `WORKER_ACTION module|component standard|concurrent`,
/// the Wasm on stdin, the code for that engine of the same build on stdout.
/// `args` is the process's whole argv. Returns the process's exit status.
pub fn worker_main(args: &[std::ffi::OsString]) -> i32 {
    let arg = |i: usize| args.get(i).and_then(|a| a.to_str()).unwrap_or_default();
    let (format, engine) = (arg(2), arg(3));
    let component = match format {
        "module" => false,
        "component" => true,
        _ => return 64,
    };
    let Some(kind) = crate::engine::EngineKind::from_arg(engine) else {
        return 64;
    };
    let mut bytes = Vec::new();
    if std::io::stdin().lock().read_to_end(&mut bytes).is_err() {
        return 74;
    }
    // The engine settings that shape code are those of every wasmlet
    // engine; the allocation strategy is not among them.
    let engine = match crate::engine::build_engine(kind, None) {
        Ok((engine, _)) => engine,
        Err(err) => {
            eprintln!("creating the engine: {err:#}");
            return 70;
        }
    };
    match in_process(&engine, &bytes, component) {
        Ok(code) => match std::io::stdout().lock().write_all(&code) {
            Ok(()) => 0,
            Err(_) => 74,
        },
        Err(err) => {
            eprintln!("{err:#}");
            WORKER_INVALID
        }
    }
}

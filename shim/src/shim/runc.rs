//! Linux containers in a wasmlet pod (sidecars such as Knative's queue-proxy)
//! are handed to the node's `runc`: `runc run --keep` in the foreground with
//! containerd's stdio (runc reaps the container's processes and exits with
//! its status), `runc kill` for signals, `runc delete` to clean up. Start
//! returns once `runc state` says the container runs; an exit with the
//! cgroup's `oom_kill` count raised is reported as an OOM (TaskOOM). The shim
//! leaves the container's cgroup first: runc owns it, and freezes it to kill.
//! A container with a terminal (CRI `tty: true`, `kubectl run -it`) gets a
//! [`HostConsole`] as runc's stderr, as an exec with a terminal does.

use super::console::HostConsole;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Where runc keeps its state for wasmlet's containers.
const RUNC_ROOT: &str = "/run/wasmlet/runc";
/// How long Start waits for runc to report the container running.
const START_LIMIT: std::time::Duration = std::time::Duration::from_secs(30);

/// containerd sees the shim's pid for it: runc's init is not our child.
#[derive(Debug)]
pub struct RuncContainer {
    id: String,
    bundle: PathBuf,
    stdio: (String, String, String),
    child: std::sync::Mutex<Option<std::process::Child>>,
    /// The container's cgroup (the spec's `linux.cgroupsPath`), for OOM kills.
    cgroups_path: Option<String>,
    /// Whether the spec asks for a terminal (`process.terminal`).
    terminal: bool,
    /// The pty runc takes for its host console, once started with a terminal.
    console: std::sync::Mutex<Option<HostConsole>>,
    /// `runc run`'s pid once started; 0 before and once reaped.
    runc_pid: std::sync::atomic::AtomicU32,
}

/// Whether this spec runs a native program, as runc would find it: argv\[0\]
/// looked up with the spec's `PATH` and cwd, symlinks resolved inside the
/// rootfs, and the file an ELF binary or a `#!` script (not Wasm).
pub fn is_native(spec: &oci_spec::runtime::Spec, rootfs: &Path) -> bool {
    let Some(process) = spec.process().as_ref() else {
        return false;
    };
    let Some(argv0) = process.args().as_ref().and_then(|a| a.first()) else {
        return false;
    };
    let env = process.env().as_deref().unwrap_or_default();
    let path = env.iter().find_map(|e| e.strip_prefix("PATH="));
    let cwd = process.cwd().to_string_lossy();
    super::rootfs::find_program(rootfs, argv0, path, &cwd)
        .is_some_and(|program| super::rootfs::classify(&program) == super::rootfs::Executable::Native)
}

/// `runc` with wasmlet's state root.
pub fn command() -> Command {
    runc()
}

fn runc() -> Command {
    let mut command = Command::new("runc");
    command.arg("--root").arg(RUNC_ROOT);
    command
}

fn run(mut command: Command, what: &str) -> Result<(), String> {
    let out = command.output().map_err(|e| format!("running runc {what}: {e} (is runc installed?)"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("runc {what}: {}", String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// containerd's FIFO at `path` opened for the container, or /dev/null.
pub fn fifo(path: &str, write: bool) -> Result<Stdio, String> {
    use super::stdio::{open_fifo, Blocking, FifoEnd};
    if path.is_empty() {
        return Ok(Stdio::null());
    }
    let end = if write { FifoEnd::Write } else { FifoEnd::Read };
    let file = open_fifo(path, end, Blocking::Yes).map_err(|e| format!("opening {path}: {e}"))?;
    Ok(Stdio::from(file))
}

impl RuncContainer {
    /// Prepare the container; nothing runs until [`RuncContainer::start`].
    pub fn create(
        id: &str,
        bundle: &Path,
        stdio: (&str, &str, &str),
        cgroups_path: Option<String>,
        terminal: bool,
    ) -> Result<Self, String> {
        std::fs::create_dir_all(RUNC_ROOT).map_err(|e| format!("creating {RUNC_ROOT}: {e}"))?;
        Ok(Self {
            id: id.to_owned(),
            bundle: bundle.to_owned(),
            stdio: (stdio.0.to_owned(), stdio.1.to_owned(), stdio.2.to_owned()),
            child: std::sync::Mutex::new(None),
            cgroups_path,
            terminal,
            console: std::sync::Mutex::new(None),
            runc_pid: std::sync::atomic::AtomicU32::new(0),
        })
    }

    /// Whether the kernel's OOM killer killed a process of the container
    /// (its cgroup's `oom_kill` count), as runc's shim reports TaskOOM.
    pub fn oom_killed(&self) -> bool {
        self.cgroups_path.as_deref().is_some_and(|p| super::cgroup::oom_kills(p) > 0)
    }

    /// `runc run` in the background of this shim; returns once runc reports
    /// the container running (or already gone), so a kill right after Start
    /// finds it, as with runc's own shim.
    pub fn start(&self) -> Result<(), String> {
        let mut command = runc();
        command
            .arg("run")
            // Keep the container (and its cgroup) after it exits, until
            // Delete: its OOM-kill count is read from that cgroup.
            .arg("--keep")
            .arg("--bundle")
            .arg(&self.bundle)
            .arg(&self.id)
            .stdin(fifo(&self.stdio.0, false)?)
            .stdout(fifo(&self.stdio.1, true)?);
        if self.terminal {
            // With a terminal there is no stderr FIFO (containerd sends none).
            let (console, slave) = HostConsole::open()?;
            command.stderr(slave);
            console.relay_to(&self.stdio.1);
            *self.console.lock().unwrap_or_else(|p| p.into_inner()) = Some(console);
        } else {
            command.stderr(fifo(&self.stdio.2, true)?);
        }
        let child = command.spawn().map_err(|e| format!("running runc run: {e} (is runc installed?)"))?;
        self.runc_pid.store(child.id(), std::sync::atomic::Ordering::SeqCst);
        *self.child.lock().unwrap_or_else(|p| p.into_inner()) = Some(child);
        let started = std::time::Instant::now();
        loop {
            if let Some("running" | "stopped" | "paused") = self.status().as_deref() {
                return Ok(());
            }
            let exited = self
                .child
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_mut()
                .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))));
            if exited {
                // It ran and ended already (or failed to start: `wait` reports it).
                return Ok(());
            }
            if started.elapsed() > START_LIMIT {
                return Err(format!("runc did not start container {} within {START_LIMIT:?}", self.id));
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }

    /// `runc state`'s status (`creating`, `created`, `running`, `stopped`).
    fn status(&self) -> Option<String> {
        let mut command = runc();
        command.arg("state").arg(&self.id).stderr(Stdio::null());
        let out = command.output().ok().filter(|o| o.status.success())?;
        let state: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        state.get("status")?.as_str().map(str::to_owned)
    }

    /// Set the container's terminal size (ResizePty). Like runc's shim, a
    /// container without a terminal ignores it.
    pub fn resize(&self, width: u32, height: u32) -> Result<(), String> {
        let console = self.console.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let runc_pid = self.runc_pid.load(std::sync::atomic::Ordering::SeqCst);
        match console {
            // Not yet started or already reaped: nothing to resize.
            Some(console) if runc_pid != 0 => console.resize(width, height, runc_pid),
            _ => Ok(()),
        }
    }

    pub fn kill(&self, signal: i32, all: bool) -> Result<(), String> {
        let mut command = runc();
        command.arg("kill");
        if all {
            command.arg("--all");
        }
        command.arg(&self.id).arg(signal.to_string());
        run(command, "kill")
    }

    /// Block until `runc run` ends; the container's status (128+signal when killed).
    pub fn wait(&self) -> u32 {
        let child = self.child.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(mut child) = child else {
            return 255;
        };
        let status = exit_status(child.wait());
        self.runc_pid.store(0, std::sync::atomic::Ordering::SeqCst);
        status
    }

    pub fn delete(&self) {
        let mut command = runc();
        command.arg("delete").arg("--force").arg(&self.id);
        if let Err(err) = run(command, "delete") {
            tracing::debug!(id = %self.id, error = %err, "runc delete");
        }
    }
}

/// A runc process's wait status as containerd reports it (128+signal when killed).
pub fn exit_status(waited: std::io::Result<std::process::ExitStatus>) -> u32 {
    use std::os::unix::process::ExitStatusExt as _;
    match waited {
        Ok(status) => {
            status.code().map(|c| c as u32).or_else(|| status.signal().map(|s| 128 + s as u32)).unwrap_or(255)
        }
        Err(_) => 255,
    }
}

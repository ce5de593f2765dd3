//! Extra processes in a Linux container (`kubectl exec`, CRI ExecSync, exec
//! probes): `runc exec` in the foreground of the shim with containerd's
//! stdio for the process. runc joins the container, forwards the signals it
//! gets to the process, and exits with its status, as for the container's
//! own `runc run`. Wasm containers have no other processes: exec is refused
//! for them.
//!
//! With a terminal (`kubectl exec -it`), runc runs with `--tty` and a
//! [`HostConsole`] as its stderr (see `console`).

use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::Mutex;
use tokio::sync::watch;

use super::console::HostConsole;
use super::task::Exit;

#[derive(Debug)]
pub struct ExecProcess {
    pub exec_id: String,
    pub stdio: (String, String, String),
    /// The OCI `Process` containerd sent, written for `runc exec --process`.
    process_file: PathBuf,
    child: Mutex<Option<Child>>,
    pid: std::sync::atomic::AtomicU32,
    exit: watch::Sender<Option<Exit>>,
    terminal: bool,
    /// The pty runc takes for its host console (with a terminal).
    console: Mutex<Option<HostConsole>>,
}

impl ExecProcess {
    /// Record an exec of `process_json` (an OCI `Process`) in container `container_id`.
    pub fn new(
        bundle: &std::path::Path,
        exec_id: &str,
        process_json: &[u8],
        stdio: (&str, &str, &str),
        terminal: bool,
    ) -> Result<Self, String> {
        // Validate it as runc would read it, and name the problem if not.
        serde_json::from_slice::<oci_spec::runtime::Process>(process_json)
            .map_err(|e| format!("exec {exec_id}: invalid process spec: {e}"))?;
        if exec_id.is_empty() || exec_id.contains('/') {
            return Err(format!("invalid exec id `{exec_id}`"));
        }
        let process_file = bundle.join(format!(".wasmlet-exec-{exec_id}.json"));
        std::fs::write(&process_file, process_json).map_err(|e| format!("writing {}: {e}", process_file.display()))?;
        Ok(Self {
            exec_id: exec_id.to_owned(),
            stdio: (stdio.0.to_owned(), stdio.1.to_owned(), stdio.2.to_owned()),
            process_file,
            child: Mutex::new(None),
            pid: std::sync::atomic::AtomicU32::new(0),
            exit: watch::channel(None).0,
            terminal,
            console: Mutex::new(None),
        })
    }

    /// `runc exec` the process; its (runc's) pid.
    pub fn start(&self, container_id: &str) -> Result<u32, String> {
        let mut command: Command = super::runc::command();
        command.arg("exec").arg("--process").arg(&self.process_file);
        command.stdin(super::runc::fifo(&self.stdio.0, false)?).stdout(super::runc::fifo(&self.stdio.1, true)?);
        if self.terminal {
            let (console, slave) = HostConsole::open()?;
            command.arg("--tty").stderr(slave);
            // runc's own messages land on this pty: pass them on.
            console.relay_to(&self.stdio.1);
            *self.console.lock().unwrap_or_else(|p| p.into_inner()) = Some(console);
        } else {
            command.stderr(super::runc::fifo(&self.stdio.2, true)?);
        }
        command.arg(container_id);
        let child = command.spawn().map_err(|e| format!("running runc exec: {e}"))?;
        let pid = child.id();
        self.pid.store(pid, std::sync::atomic::Ordering::SeqCst);
        *self.child.lock().unwrap_or_else(|p| p.into_inner()) = Some(child);
        Ok(pid)
    }

    pub fn pid(&self) -> u32 {
        self.pid.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn started(&self) -> bool {
        self.pid() != 0
    }

    /// Block until the process ends; its status (128+signal when killed).
    pub fn wait(&self) -> u32 {
        let child = self.child.lock().unwrap_or_else(|p| p.into_inner()).take();
        let status = child.map_or(255, |mut c| super::runc::exit_status(c.wait()));
        let _ = std::fs::remove_file(&self.process_file);
        status
    }

    pub fn record_exit(&self, exit: Exit) {
        self.exit.send_replace(Some(exit));
    }

    pub fn exited(&self) -> Option<Exit> {
        self.exit.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<Option<Exit>> {
        self.exit.subscribe()
    }

    /// Set the terminal's window size (ResizePty).
    pub fn resize(&self, width: u32, height: u32) -> Result<(), String> {
        let console = self.console.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let Some(console) = console else {
            return Err(format!("exec {} has no terminal", self.exec_id));
        };
        if self.exited().is_some() {
            return Err(format!("exec {} is not running", self.exec_id));
        }
        console.resize(width, height, self.pid())
    }

    /// Signal the process: runc, in the foreground, forwards it.
    pub fn signal(&self, signal: i32) -> Result<(), String> {
        let pid = self.pid();
        if pid == 0 || self.exited().is_some() {
            return Err(format!("exec {} is not running", self.exec_id));
        }
        // SAFETY: kill(2) on our own child, not yet reaped (no exit recorded).
        if unsafe { libc::kill(pid as i32, signal) } != 0 {
            return Err(format!("signalling exec {}: {}", self.exec_id, std::io::Error::last_os_error()));
        }
        Ok(())
    }
}

impl Drop for ExecProcess {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.process_file);
    }
}

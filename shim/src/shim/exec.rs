//! Extra processes in a Linux container (`kubectl exec`, CRI ExecSync, exec
//! probes): `runc exec` in the foreground of the shim with containerd's
//! stdio for the process. runc joins the container, forwards the signals it
//! gets to the process, and exits with its status, as for the container's
//! own `runc run`. Wasm containers have no other processes: exec is refused
//! for them.
//!
//! With a terminal (`kubectl exec -it`), runc in the foreground (`--tty`)
//! makes the container's pty and copies it to and from its own stdio, which
//! are containerd's FIFOs. runc's stderr is a pty of the shim's: runc takes
//! it for the "host console" whose size it copies onto the container's pty
//! on SIGWINCH, so ResizePty sets that pty's size and signals runc, as a
//! user's terminal would. (runc's `--console-socket` needs a detached runc,
//! whose process would not be the shim's child.)

use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::Mutex;
use tokio::sync::watch;

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
    /// The master end of the pty runc takes for its host console.
    console: Mutex<Option<std::sync::Arc<std::fs::File>>>,
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
            let (master, slave) = open_pty()?;
            command.arg("--tty").stderr(slave);
            // runc's own messages land on this pty: pass them on.
            let master = std::sync::Arc::new(master);
            drain_to(&master, &self.stdio.1);
            *self.console.lock().unwrap_or_else(|p| p.into_inner()) = Some(master);
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
        let size = libc::winsize {
            ws_row: height.min(u16::MAX as u32) as u16,
            ws_col: width.min(u16::MAX as u32) as u16,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ on the pty master we own, with a valid winsize.
        if unsafe { libc::ioctl(std::os::fd::AsRawFd::as_raw_fd(&*console), libc::TIOCSWINSZ, &size) } != 0 {
            return Err(format!("resizing the terminal: {}", std::io::Error::last_os_error()));
        }
        // runc copies the new size onto the container's pty on SIGWINCH.
        self.signal(libc::SIGWINCH)
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

/// A new pty: (master, slave), both close-on-exec (the slave is dup'd
/// onto the child's stderr).
fn open_pty() -> Result<(std::fs::File, std::fs::File), String> {
    use std::os::fd::FromRawFd as _;
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: openpty fills two new descriptors we then own.
    let rc =
        unsafe { libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null(), std::ptr::null()) };
    if rc != 0 {
        return Err(format!("allocating a pty: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: both are ours; FD_CLOEXEC keeps them out of other children.
    unsafe {
        libc::fcntl(master, libc::F_SETFD, libc::FD_CLOEXEC);
        libc::fcntl(slave, libc::F_SETFD, libc::FD_CLOEXEC);
        Ok((std::fs::File::from_raw_fd(master), std::fs::File::from_raw_fd(slave)))
    }
}

/// Copy what arrives on the pty `master` into the FIFO at `path`.
fn drain_to(master: &std::sync::Arc<std::fs::File>, path: &str) {
    let (master, path) = (master.clone(), path.to_owned());
    let _ = std::thread::Builder::new().name("wasmlet-tty".into()).spawn(move || {
        let mut out = std::fs::OpenOptions::new().write(true).open(&path).ok();
        let mut buf = [0u8; 4096];
        // Ends with EIO once runc, the slave's only user, has exited.
        while let Ok(n @ 1..) = std::io::Read::read(&mut &*master, &mut buf) {
            if let Some(out) = out.as_mut() {
                let _ = std::io::Write::write_all(out, &buf[..n]);
            }
        }
    });
}

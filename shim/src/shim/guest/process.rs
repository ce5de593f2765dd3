//! The shim's side of a guest process: spawn it confined, tell it to start,
//! signal it, learn how it ended.

use super::preforked;
use super::protocol::{receive, send, FromGuest, Launch, ToGuest, CONTROL_FD, LISTENER_FD, PREOPEN_FD_BASE};
use crate::shim::confine::Confinement;
use crate::shim::landlock::Landlock;
use crate::shim::pidns::ForChildren;
use crate::shim::stdio::Stdio;
use crate::shim::workload::{Finished, FinishedFuture};
use std::io::BufReader;
use std::os::fd::{AsFd as _, AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use wasmlet_runtime::{StdinSource, StdoutSink};

/// argv\[1\] that makes the shim binary a guest process.
pub const GUEST_ACTION: &str = "guest";

pub struct GuestProcess {
    id: String,
    pid: u32,
    /// Signals go through the pidfd: never to a reused pid.
    pidfd: Option<OwnedFd>,
    /// Someone waits for (and so reaps) the process: only one may.
    reaping: AtomicBool,
    /// Reaped already: nothing may be sent to the pid any more.
    reaped: AtomicBool,
    /// It reported its run's end (see [`GuestProcess::wait`]).
    reported_end: AtomicBool,
    control: Mutex<UnixStream>,
    reports: Mutex<Option<BufReader<UnixStream>>>,
    /// How the run ended, if [`GuestProcess::wait_serving`] read it first.
    early_report: Mutex<Option<FromGuest>>,
}

/// The guest's stdio as fds of our own (`None`: it gets `/dev/null`).
struct GuestStdio {
    stdin: Option<OwnedFd>,
    stdout: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
}

impl GuestStdio {
    fn of(stdio: Stdio) -> std::io::Result<Self> {
        Ok(Self {
            stdin: match stdio.stdin {
                StdinSource::File(file) => Some(file.into()),
                StdinSource::Inherit => Some(dup_own(0)?),
                StdinSource::Null => None,
            },
            stdout: sink_fd(stdio.stdout, 1)?,
            stderr: sink_fd(stdio.stderr, 2)?,
        })
    }
}

fn sink_fd(sink: StdoutSink, own: i32) -> std::io::Result<Option<OwnedFd>> {
    Ok(match sink {
        StdoutSink::File(file) => Some(file.into()),
        StdoutSink::Inherit => Some(dup_own(own)?),
        StdoutSink::Null => None,
    })
}

/// A copy of this process's fd `fd`.
fn dup_own(fd: i32) -> std::io::Result<OwnedFd> {
    // SAFETY: 0-2 stay open for the process's life; the copy is ours.
    unsafe { BorrowedFd::borrow_raw(fd) }.try_clone_to_owned()
}

fn child_stdio(fd: Option<OwnedFd>) -> std::process::Stdio {
    fd.map_or_else(std::process::Stdio::null, std::process::Stdio::from)
}

impl GuestProcess {
    /// Start the guest process (it loads, then waits for [`GuestProcess::start`]):
    /// the one the daemon pre-forked if it waits (`preforked`), else a new
    /// one exec'd now. `listener`: an HTTP function's, which becomes the
    /// process's fd 4.
    pub fn spawn(
        mut launch: Launch,
        confinement: Confinement,
        stdio: Stdio,
        listener: Option<OwnedFd>,
    ) -> std::io::Result<Self> {
        let stdio = GuestStdio::of(stdio)?;
        launch.stdin = stdio.stdin.is_some();
        if let Some(mut waiting) = preforked::take() {
            let handoff = preforked::Handoff {
                stdin: stdio.stdin.as_ref().map(|f| f.as_fd()),
                stdout: stdio.stdout.as_ref().map(|f| f.as_fd()),
                stderr: stdio.stderr.as_ref().map(|f| f.as_fd()),
                listener: listener.as_ref().map(|f| f.as_fd()),
            };
            match waiting.launch(&handoff, &launch) {
                Ok(()) => {
                    tracing::debug!(id = %launch.id, pid = waiting.pid, "launched in the pre-forked guest process");
                    return Self::new(launch.id, waiting.pid as u32, waiting.into_control());
                }
                Err(err) => {
                    tracing::warn!(id = %launch.id, error = %err, "pre-forked guest process unusable; starting one");
                    waiting.kill();
                }
            }
        }
        Self::exec(launch, confinement, stdio, listener)
    }

    fn new(id: String, pid: u32, shim_end: UnixStream) -> std::io::Result<Self> {
        // SAFETY: pidfd_open on our own unreaped child.
        let pidfd = unsafe {
            let fd = libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0);
            (fd >= 0).then(|| OwnedFd::from_raw_fd(fd as i32))
        };
        let reports = BufReader::new(shim_end.try_clone()?);
        Ok(Self {
            id,
            pid,
            pidfd,
            reaping: AtomicBool::new(false),
            reaped: AtomicBool::new(false),
            reported_end: AtomicBool::new(false),
            control: Mutex::new(shim_end),
            reports: Mutex::new(Some(reports)),
            early_report: Mutex::new(None),
        })
    }

    /// Exec a new guest process (the shim's binary, `guest`), confined
    /// between fork and exec.
    fn exec(
        mut launch: Launch,
        mut confinement: Confinement,
        stdio: GuestStdio,
        listener: Option<OwnedFd>,
    ) -> std::io::Result<Self> {
        let (shim_end, guest_end) = UnixStream::pair()?;
        // Preopens are opened by the child while still root, after its
        // masks (`FsView`), and handed over as fds: like a runc container's
        // root, a volume is the guest's whatever the permissions of the host
        // folders above it (the bundle's are 0700). The guest reopens each
        // through /proc/self/fd as its own user, so what it may do inside
        // is checked against its credentials. The fds go above every fd
        // the child still copies from.
        let listener_fd = listener.as_ref().map(|l| l.as_raw_fd());
        let highest = [guest_end.as_raw_fd()].into_iter().chain(listener_fd).max().unwrap_or(0);
        let base = PREOPEN_FD_BASE.max(highest + 1);
        for (i, preopen) in launch.preopens.iter_mut().enumerate() {
            preopen.host = format!("/proc/self/fd/{}", base + i as i32).into();
        }
        let read_only: Vec<bool> = launch.preopens.iter().map(|p| p.read_only).collect();
        confinement.landlock = Landlock::new(base, &read_only, &launch.cache_dir, launch.network);
        confinement.landlock.allow_exec_of(&std::env::current_exe()?);
        confinement.compile().map_err(std::io::Error::other)?;
        let pid_namespace = std::mem::take(&mut confinement.pid_namespace);
        let guest_fd = guest_end.as_raw_fd();
        let mut command = Command::new("/proc/self/exe");
        command
            .arg0(format!("wasmlet-guest {}", launch.id))
            .arg(GUEST_ACTION)
            .env_clear()
            .stdin(child_stdio(stdio.stdin))
            .stdout(child_stdio(stdio.stdout))
            .stderr(child_stdio(stdio.stderr));
        // SAFETY: between fork and exec only raw syscalls run (dup2/fcntl,
        // and Confinement::apply, which allocates nothing).
        unsafe {
            command.pre_exec(move || {
                // The fixed fds 3 and 4 (fd 4 may be the control socket's now).
                let guest_fd = if guest_fd == LISTENER_FD && listener_fd.is_some() {
                    let moved = libc::fcntl(guest_fd, libc::F_DUPFD_CLOEXEC, base + 64);
                    if moved < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    moved
                } else {
                    guest_fd
                };
                if let Some(fd) = listener_fd {
                    if fd == LISTENER_FD {
                        let flags = libc::fcntl(fd, libc::F_GETFD);
                        libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
                    } else if libc::dup2(fd, LISTENER_FD) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                if guest_fd == CONTROL_FD {
                    let flags = libc::fcntl(guest_fd, libc::F_GETFD);
                    libc::fcntl(guest_fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
                } else if libc::dup2(guest_fd, CONTROL_FD) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                confinement.fs_view.apply(base)?;
                confinement.apply()
            });
        }
        let child = {
            let _in_pid_namespace = ForChildren::enter(&pid_namespace).map_err(std::io::Error::other)?;
            command.spawn()?
        };
        drop(guest_end);
        drop(listener);
        // Waited for by pid (see `wait`), as the pre-forked process is.
        let pid = child.id();
        let id = launch.id.clone();
        super::protocol::send_launch(&mut &shim_end, &launch)?;
        Self::new(id, pid, shim_end)
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn start(&self) -> std::io::Result<()> {
        send(&mut *self.control.lock().unwrap_or_else(|p| p.into_inner()), &ToGuest::Start)
    }

    /// Block until the guest process is confined and has loaded its
    /// program, waiting for Start (as runc's init waits on its exec FIFO
    /// when `runc create` returns); else why it will not, its report kept
    /// for [`GuestProcess::wait`], which tells containerd how it ended.
    pub fn wait_ready(&self) -> Result<(), String> {
        self.wait_for(&FromGuest::Ready, "the guest process ended before it was ready", "the guest ended early")
    }

    /// Block until an HTTP function's guest listens (after [`GuestProcess::start`]);
    /// else why it will not, its report kept for [`GuestProcess::wait`].
    pub fn wait_serving(&self) -> Result<(), String> {
        self.wait_for(
            &FromGuest::Serving,
            "the guest process ended before it could serve",
            "the function exited before it could serve",
        )
    }

    /// Read reports up to `wanted` (earlier progress reports are skipped);
    /// a final report instead is kept for [`GuestProcess::wait`].
    fn wait_for(&self, wanted: &FromGuest, ended: &str, finished: &str) -> Result<(), String> {
        let mut reports = self.reports.lock().unwrap_or_else(|p| p.into_inner());
        let Some(reports) = reports.as_mut() else { return Err("the guest process is being waited for".into()) };
        let report = loop {
            match receive::<FromGuest>(reports) {
                Ok(Some(report)) if report == *wanted => return Ok(()),
                Ok(Some(FromGuest::Ready | FromGuest::Serving)) => continue,
                Ok(Some(report)) => break report,
                Ok(None) | Err(_) => return Err(ended.into()),
            }
        };
        let why = match &report {
            FromGuest::Failed(why) => why.clone(),
            _ => finished.into(),
        };
        *self.early_report.lock().unwrap_or_else(|p| p.into_inner()) = Some(report);
        Err(why)
    }

    pub fn set_memory(&self, limit: Option<u64>) {
        let _ = send(&mut *self.control.lock().unwrap_or_else(|p| p.into_inner()), &ToGuest::Memory(limit));
    }

    /// Deliver `signal`; nothing once the process is gone.
    pub fn signal(&self, signal: i32) {
        match &self.pidfd {
            // SAFETY: pidfd_send_signal on our pidfd (ESRCH once reaped).
            Some(fd) => unsafe {
                libc::syscall(libc::SYS_pidfd_send_signal, fd.as_raw_fd(), signal, std::ptr::null::<libc::c_void>(), 0);
            },
            None => {
                if !self.reaped.load(Ordering::Acquire) {
                    // SAFETY: kill(2) on our own child, not yet reaped.
                    unsafe {
                        libc::kill(self.pid as libc::pid_t, signal);
                    }
                }
            }
        }
    }

    /// Block until the process ends; how, as containerd reports it. A run
    /// that reported its end gives its status at once (its output is
    /// flushed and its stdio closed by then; the process, still exiting, is
    /// reaped by [`GuestProcess::discard`] at Delete: waiting here for its
    /// threads to go cost ~2 ms of every run); a process killed by a signal
    /// is 128 + signal; one that failed to start is 1 (logged with why).
    pub fn wait(&self) -> Finished {
        let mut report = self.early_report.lock().unwrap_or_else(|p| p.into_inner()).take();
        if report.is_none() {
            if let Some(mut reports) = self.reports.lock().unwrap_or_else(|p| p.into_inner()).take() {
                while let Ok(Some(message)) = receive::<FromGuest>(&mut reports) {
                    match message {
                        FromGuest::Ready => tracing::debug!(id = %self.id, "guest process ready"),
                        FromGuest::Serving => tracing::debug!(id = %self.id, "guest process serving"),
                        other => {
                            report = Some(other);
                            break;
                        }
                    }
                }
            }
        }
        let waited = match report {
            Some(_) => {
                self.reported_end.store(true, Ordering::Release);
                None
            }
            None => self.reap(),
        };
        match (report, waited) {
            (Some(FromGuest::Finished { status, oom, message }), _) => {
                match message {
                    None => tracing::info!(id = %self.id, status, "guest finished"),
                    Some(why) => tracing::warn!(id = %self.id, status, reason = %why, "guest stopped"),
                }
                Finished { status, oom }
            }
            (Some(FromGuest::Failed(why)), _) => {
                tracing::error!(id = %self.id, error = %why, "guest could not start");
                Finished::status(1)
            }
            (_, Some(exit)) => match exit.signal() {
                Some(signal) => {
                    tracing::warn!(id = %self.id, signal, "guest process killed");
                    Finished::status(128 + signal as u32)
                }
                None => Finished::status(exit.code().unwrap_or(1) as u32),
            },
            _ => Finished::status(255),
        }
    }

    /// [`GuestProcess::wait`] off the executor, as a workload's `finished`.
    pub fn finished(self: &Arc<Self>) -> FinishedFuture {
        let process = self.clone();
        Box::pin(
            async move { tokio::task::spawn_blocking(move || process.wait()).await.unwrap_or(Finished::status(255)) },
        )
    }

    /// [`GuestProcess::discard`] off the executor.
    pub async fn discard_off_executor(self: &Arc<Self>) {
        let process = self.clone();
        let _ = tokio::task::spawn_blocking(move || process.discard()).await;
    }

    /// Whether the process reported how its run ended (it exits by itself).
    pub fn reported_end(&self) -> bool {
        self.reported_end.load(Ordering::Acquire)
    }

    /// Kill and reap a process that will not be waited for (never started),
    /// or one that reported its end and is exiting.
    pub fn discard(&self) {
        self.signal(libc::SIGKILL);
        let _ = self.reap();
    }

    /// Wait for the process to end and reap it; `None` if another caller
    /// does (or did).
    fn reap(&self) -> Option<std::process::ExitStatus> {
        if self.reaping.swap(true, Ordering::AcqRel) {
            return None;
        }
        let mut status = 0;
        loop {
            // SAFETY: waitpid on our own child, reaped only here (once).
            let r = unsafe { libc::waitpid(self.pid as libc::pid_t, &mut status, 0) };
            if r >= 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                self.reaped.store(true, Ordering::Release);
                return (r > 0).then(|| std::process::ExitStatus::from_raw(status));
            }
        }
    }
}

//! A pod sandbox's namespaces, held by a tiny process of the shim's own.
//!
//! containerd builds every container of a pod from the sandbox task's pid:
//! `/proc/<pid>/ns/{net,ipc,uts[,pid]}`. So the sandbox task is a real
//! process that sits in the pod's namespaces, doing nothing, as pause does
//! under runc: the network namespace CNI made (the spec's `network` path;
//! none for host-network pods, which keep the node's), a fresh IPC and UTS
//! namespace (the pod's hostname set in it), and a fresh PID namespace when
//! the spec asks for one (it is then PID 1 there, so a shared PID namespace
//! lives as long as the pod).
//!
//! It is `clone(2)`d from the shim, not exec'd: no image to pull, no runc,
//! no second binary start; its memory is a few pages of the shim's,
//! copy-on-write. The child only makes raw system calls (`setns`,
//! `sethostname`, `close_range`, `pause`) before it sleeps for good: it is
//! a copy of a multi-threaded process and must not touch locks or the heap.
//! It dies with the shim (`PR_SET_PDEATHSIG`, which follows the thread that
//! cloned it: Create clones it from the shim's executor thread), and is killed and reaped by
//! it when the sandbox stops.

use oci_spec::runtime::{LinuxNamespaceType, Spec};
use std::ffi::CString;
use std::os::fd::{AsRawFd as _, OwnedFd};

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("opening the pod's {kind} namespace {path}: {source}")]
    OpenNamespace { kind: &'static str, path: String, source: std::io::Error },
    #[error("the pod hostname `{0}` is not valid")]
    BadHostname(String),
    #[error("starting the namespace holder: {0}")]
    Clone(std::io::Error),
    #[error("the namespace holder failed to enter the pod's namespaces (status {0})")]
    Setup(i32),
}

/// The holder process, a child of the shim.
#[derive(Debug)]
pub struct PodNamespaces {
    pid: libc::pid_t,
    /// Signals go through a pidfd, so none can reach a recycled pid.
    pidfd: Option<OwnedFd>,
    reaped: std::sync::atomic::AtomicBool,
}

/// What the child needs, prepared before `clone` (it may not allocate).
struct ChildSetup {
    /// `(fd, CLONE_NEW*)` to join by path.
    join: Vec<(OwnedFd, libc::c_int)>,
    hostname: Option<CString>,
    /// Written to (one byte) once the child is in place; closed on failure.
    ready: libc::c_int,
}

fn ns_flag(kind: LinuxNamespaceType) -> Option<(libc::c_int, &'static str)> {
    match kind {
        LinuxNamespaceType::Network => Some((libc::CLONE_NEWNET, "network")),
        LinuxNamespaceType::Ipc => Some((libc::CLONE_NEWIPC, "ipc")),
        LinuxNamespaceType::Uts => Some((libc::CLONE_NEWUTS, "uts")),
        LinuxNamespaceType::Pid => Some((libc::CLONE_NEWPID, "pid")),
        // The holder needs no mount, cgroup, user or time namespace of its own.
        _ => None,
    }
}

impl PodNamespaces {
    /// Start the holder for this sandbox spec.
    pub fn create(spec: &Spec) -> Result<Self, SandboxError> {
        let mut new_flags = 0;
        let mut join = Vec::new();
        for ns in spec.linux().as_ref().and_then(|l| l.namespaces().as_ref()).into_iter().flatten() {
            let Some((flag, kind)) = ns_flag(ns.typ()) else { continue };
            match ns.path() {
                Some(path) => {
                    let file = std::fs::File::open(path).map_err(|source| SandboxError::OpenNamespace {
                        kind,
                        path: path.display().to_string(),
                        source,
                    })?;
                    join.push((OwnedFd::from(file), flag));
                }
                None => new_flags |= flag,
            }
        }
        let hostname = match spec.hostname().as_deref().filter(|h| !h.is_empty()) {
            Some(h) if new_flags & libc::CLONE_NEWUTS != 0 => {
                Some(CString::new(h).map_err(|_| SandboxError::BadHostname(h.to_owned()))?)
            }
            _ => None,
        };
        let (ready_r, ready_w) = std::io::pipe().map_err(SandboxError::Clone)?;
        let setup = ChildSetup { join, hostname, ready: ready_w.as_raw_fd() };
        let mut stack = vec![0u8; 64 * 1024];
        // SAFETY: the stack is ours and outlives the call (the child gets a
        // copy of it: no CLONE_VM); `holder` only makes raw system calls.
        let pid = unsafe {
            let top = stack.as_mut_ptr().add(stack.len());
            let top = top.sub(top as usize % 16);
            libc::clone(holder, top.cast(), new_flags | libc::SIGCHLD, std::ptr::from_ref(&setup).cast_mut().cast())
        };
        drop(stack);
        if pid < 0 {
            return Err(SandboxError::Clone(std::io::Error::last_os_error()));
        }
        drop(ready_w);
        drop(setup);
        // SAFETY: pidfd_open on our own, unreaped child.
        let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        // SAFETY: a new descriptor that nothing else owns.
        let pidfd = (pidfd >= 0).then(|| unsafe { std::os::fd::FromRawFd::from_raw_fd(pidfd as libc::c_int) });
        let this = Self { pid, pidfd, reaped: std::sync::atomic::AtomicBool::new(false) };
        let mut byte = [0u8; 1];
        match std::io::Read::read(&mut std::fs::File::from(OwnedFd::from(ready_r)), &mut byte) {
            Ok(1) => Ok(this),
            _ => Err(SandboxError::Setup(this.kill_and_wait())),
        }
    }

    pub fn pid(&self) -> u32 {
        self.pid as u32
    }

    /// Block until the holder exits; its wait status as a shell would say it.
    pub fn wait(&self) -> i32 {
        let mut status = 0;
        loop {
            // SAFETY: waitpid on our own child.
            let r = unsafe { libc::waitpid(self.pid, &mut status, 0) };
            if r == self.pid {
                self.reaped.store(true, std::sync::atomic::Ordering::SeqCst);
                break;
            }
            if r < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                return 255;
            }
        }
        if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            128 + libc::WTERMSIG(status)
        }
    }

    /// Whether [`PodNamespaces::wait`] has reaped it.
    pub fn reaped(&self) -> bool {
        self.reaped.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// SIGKILL: the pod's namespaces go with it (once no container holds them).
    pub fn kill(&self) {
        match &self.pidfd {
            // SAFETY: pidfd_send_signal on our pidfd; a reaped child's pidfd
            // refers to no process (ESRCH), never to another one.
            Some(fd) => unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    fd.as_raw_fd(),
                    libc::SIGKILL,
                    std::ptr::null::<libc::c_void>(),
                    0,
                );
            },
            // SAFETY: kill(2) on our own child, unless `wait` reaped it.
            None if !self.reaped() => unsafe {
                libc::kill(self.pid, libc::SIGKILL);
            },
            None => {}
        }
    }

    fn kill_and_wait(&self) -> i32 {
        self.kill();
        self.wait()
    }
}

/// The holder's body. Runs in a copy of the shim made by `clone`: raw
/// system calls only.
extern "C" fn holder(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the parent's `ChildSetup`, copied into this process
    // and valid for its whole life; only async-signal-safe calls follow.
    unsafe {
        let setup = &*(arg as *const ChildSetup);
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        for (fd, flag) in &setup.join {
            if libc::setns(fd.as_raw_fd(), *flag) != 0 {
                libc::_exit(1);
            }
        }
        if let Some(name) = &setup.hostname {
            if libc::sethostname(name.as_ptr(), name.as_bytes().len()) != 0 {
                libc::_exit(2);
            }
        }
        let byte = 1u8;
        if libc::write(setup.ready, std::ptr::from_ref(&byte).cast(), 1) != 1 {
            libc::_exit(3);
        }
        // Hold nothing of the shim's: its sockets, FIFOs, log.
        libc::syscall(libc::SYS_close_range, 0u32, u32::MAX, 0u32);
        loop {
            libc::pause();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns_id(pid: u32, kind: &str) -> std::path::PathBuf {
        std::fs::read_link(format!("/proc/{pid}/ns/{kind}")).unwrap()
    }

    #[test]
    fn holder_owns_fresh_ipc_uts_and_pid_namespaces_with_the_hostname() {
        let spec: Spec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "hostname": "pod-a",
            "root": {"path": "rootfs"},
            "linux": {"namespaces": [{"type": "ipc"}, {"type": "uts"}, {"type": "pid"}, {"type": "mount"}]}
        }))
        .unwrap();
        let holder = PodNamespaces::create(&spec).unwrap();
        let me = std::process::id();
        for kind in ["ipc", "uts", "pid"] {
            assert_ne!(ns_id(holder.pid(), kind), ns_id(me, kind), "{kind} namespace is the shim's");
        }
        assert_eq!(ns_id(holder.pid(), "net"), ns_id(me, "net"), "no network namespace asked: the node's");
        // Its hostname, seen from inside its UTS namespace.
        let uts = std::fs::File::open(format!("/proc/{}/ns/uts", holder.pid())).unwrap();
        let seen = std::thread::spawn(move || {
            nix::sched::setns(&uts, nix::sched::CloneFlags::CLONE_NEWUTS).unwrap();
            let mut name = [0u8; 64];
            // SAFETY: gethostname into a buffer we own.
            assert_eq!(unsafe { libc::gethostname(name.as_mut_ptr().cast(), name.len()) }, 0);
            String::from_utf8_lossy(&name[..name.iter().position(|b| *b == 0).unwrap_or(0)]).into_owned()
        })
        .join()
        .unwrap();
        assert_eq!(seen, "pod-a");
        holder.kill();
        assert_eq!(holder.wait(), 128 + libc::SIGKILL);
    }

    #[test]
    fn a_missing_network_namespace_is_named() {
        let spec: Spec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "linux": {"namespaces": [{"type": "network", "path": "/var/run/netns/does-not-exist"}]}
        }))
        .unwrap();
        let err = PodNamespaces::create(&spec).unwrap_err().to_string();
        assert!(err.contains("network namespace /var/run/netns/does-not-exist"), "{err}");
    }
}

//! The PID namespace a guest process starts in, as runc would start the
//! container's process: a new one of its own (the spec's `pid` namespace
//! without a path: each Kubernetes container by default, and `ctr run`),
//! the pod's (a path: `shareProcessNamespace`, where the sandbox's holder
//! is PID 1 and sidecars see the guest), or the node's (no `pid` entry:
//! `hostPID`). containerd names a container's namespaces after its task's
//! pid (`kubectl debug --target`, for one, joins `/proc/<pid>/ns/pid`), so
//! the guest process must not be in the node's unless the spec says so.
//!
//! A PID namespace is entered by the children of a thread, not the thread:
//! [`ForChildren::enter`] points the calling thread's next children at it
//! (`unshare` or `setns`, both fine in a multi-threaded process), the spawn
//! follows, and dropping the guard points them back at the thread's own.
//! A guest process alone in a new namespace is its PID 1, which ignores
//! signals it has no handler for: `child` gives it handlers (see
//! `exit_on_signals`).

use oci_spec::runtime::{LinuxNamespaceType, Spec};
use std::os::fd::{AsRawFd as _, OwnedFd};

/// Where a guest process's PID namespace is, decided from the spec.
#[derive(Debug, Default)]
pub enum PidNamespace {
    /// The node's (the spec has no `pid` namespace).
    #[default]
    Host,
    /// A new one, of which the guest process is PID 1.
    New,
    /// The pod's, opened when the spec was read.
    Join(OwnedFd),
}

#[derive(Debug, thiserror::Error)]
pub enum PidNsError {
    #[error("opening the pod's PID namespace {path}: {source}")]
    Open { path: String, source: std::io::Error },
    #[error("entering the guest's PID namespace: {0}")]
    Enter(std::io::Error),
}

impl PidNamespace {
    pub fn from_spec(spec: &Spec) -> Result<Self, PidNsError> {
        let namespaces = spec.linux().as_ref().and_then(|l| l.namespaces().as_ref());
        let Some(ns) = namespaces.into_iter().flatten().find(|ns| ns.typ() == LinuxNamespaceType::Pid) else {
            return Ok(Self::Host);
        };
        match ns.path() {
            None => Ok(Self::New),
            Some(path) => std::fs::File::open(path)
                .map(|file| Self::Join(file.into()))
                .map_err(|source| PidNsError::Open { path: path.display().to_string(), source }),
        }
    }
}

/// While alive, the calling thread's children start in a guest's PID
/// namespace; dropped, in the thread's own again.
#[must_use = "the namespace applies only while the guard lives"]
pub struct ForChildren {
    own: Option<OwnedFd>,
}

impl ForChildren {
    pub fn enter(ns: &PidNamespace) -> Result<Self, PidNsError> {
        if matches!(ns, PidNamespace::Host) {
            return Ok(Self { own: None });
        }
        // The thread's own namespace (not its children's), to go back to.
        let own: OwnedFd = std::fs::File::open("/proc/thread-self/ns/pid").map_err(PidNsError::Enter)?.into();
        // SAFETY: unshare/setns of the calling thread's children's PID namespace.
        let r = unsafe {
            match ns {
                PidNamespace::New => libc::unshare(libc::CLONE_NEWPID),
                PidNamespace::Join(fd) => libc::setns(fd.as_raw_fd(), libc::CLONE_NEWPID),
                PidNamespace::Host => 0,
            }
        };
        if r < 0 {
            return Err(PidNsError::Enter(std::io::Error::last_os_error()));
        }
        Ok(Self { own: Some(own) })
    }
}

impl Drop for ForChildren {
    fn drop(&mut self) {
        if let Some(own) = &self.own {
            // SAFETY: back to the thread's active namespace (always allowed).
            if unsafe { libc::setns(own.as_raw_fd(), libc::CLONE_NEWPID) } < 0 {
                tracing::error!(error = %std::io::Error::last_os_error(), "leaving a guest's PID namespace");
            }
        }
    }
}

/// Signals whose default action ends a process, which PID 1 of a namespace
/// ignores unless it handles them.
const ENDING_SIGNALS: [libc::c_int; 12] = [
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGTERM,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGALRM,
    libc::SIGVTALRM,
    libc::SIGPROF,
    libc::SIGXCPU,
    libc::SIGXFSZ,
    libc::SIGPWR,
];

extern "C" fn exit_with_signal(signal: libc::c_int) {
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(128 + signal) }
}

/// In a guest process that is PID 1 of its namespace: end on the signals
/// that would end any other process (status 128 + signal, as containerd
/// reports a signalled task), since a Wasm guest cannot handle signals
/// itself; `handled_elsewhere` (an HTTP function's draining SIGTERM) are
/// left to their default, for handlers installed next. Elsewhere, nothing
/// to do.
pub fn exit_on_signals_as_pid1(handled_elsewhere: &[libc::c_int]) {
    // SAFETY: getpid has no preconditions.
    if unsafe { libc::getpid() } != 1 {
        return;
    }
    for signal in ENDING_SIGNALS {
        let handler = if handled_elsewhere.contains(&signal) {
            libc::SIG_DFL
        } else {
            exit_with_signal as *const () as libc::sighandler_t
        };
        // SAFETY: installing an async-signal-safe handler (or the default).
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = handler;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(namespaces: serde_json::Value) -> Spec {
        serde_json::from_value(serde_json::json!({"ociVersion": "1.1.0", "root": {"path": "rootfs"},
            "linux": {"namespaces": namespaces}}))
        .unwrap()
    }

    #[test]
    fn children_start_where_the_spec_says_and_the_thread_stays() {
        let own = std::fs::read_link("/proc/thread-self/ns/pid").unwrap();
        let in_child = |ns: &PidNamespace| {
            let _guard = ForChildren::enter(ns).unwrap();
            let child = std::process::Command::new("sh").args(["-c", "readlink /proc/self/ns/pid; echo $$"]).output();
            String::from_utf8(child.unwrap().stdout).unwrap()
        };
        let new = in_child(&PidNamespace::from_spec(&spec(serde_json::json!([{"type": "pid"}]))).unwrap());
        assert!(new.ends_with("\n1\n"), "PID 1 of a new namespace: {new}");
        assert!(!new.starts_with(own.to_str().unwrap()), "{new}");
        assert_eq!(std::fs::read_link("/proc/thread-self/ns/pid_for_children").unwrap(), own, "back to its own");
        let host = in_child(&PidNamespace::from_spec(&spec(serde_json::json!([{"type": "network"}]))).unwrap());
        assert!(host.starts_with(own.to_str().unwrap()), "{host}");
        let err = PidNamespace::from_spec(&spec(serde_json::json!([{"type": "pid", "path": "/nonexistent/ns"}])));
        assert!(err.unwrap_err().to_string().contains("/nonexistent/ns"));
    }
}

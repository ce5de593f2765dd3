//! Binding an HTTP function's listening socket inside the pod's network
//! namespace, without moving the shim: a short-lived thread enters the
//! namespace (`setns` affects only the calling thread), binds, and exits.
//! The socket stays in the namespace it was created in.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("opening network namespace {path}: {source}")]
    OpenNamespace { path: String, source: std::io::Error },
    #[error("entering network namespace {what}: {source}")]
    Enter { what: String, source: nix::Error },
    #[error("listening on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("the binding thread failed: {0}")]
    Thread(String),
}

/// Where to bind.
pub enum Namespace<'a> {
    /// The shim's own (host network).
    Current,
    /// A namespace file such as `/var/run/netns/<pod>` or `/proc/<pid>/ns/net`.
    Path(&'a Path),
    /// A new, empty namespace with loopback up (the spec asks for a fresh one).
    New,
}

/// A non-blocking listener on `addr` inside `ns`.
pub fn bind(ns: Namespace<'_>, addr: SocketAddr) -> Result<TcpListener, BindError> {
    let listener = match ns {
        Namespace::Current => listen(addr)?,
        Namespace::Path(path) => {
            let file = std::fs::File::open(path).map_err(|source| BindError::OpenNamespace {
                path: path.display().to_string(),
                source,
            })?;
            let what = path.display().to_string();
            in_thread(move || {
                nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(|source| BindError::Enter { what, source })?;
                listen(addr)
            })?
        }
        Namespace::New => in_thread(move || {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).map_err(|source| BindError::Enter {
                what: "(new)".into(),
                source,
            })?;
            loopback_up().map_err(|source| BindError::Enter {
                what: "(new): bringing up lo".into(),
                source,
            })?;
            listen(addr)
        })?,
    };
    listener
        .set_nonblocking(true)
        .map_err(|source| BindError::Listen { addr, source })?;
    Ok(listener)
}

fn listen(addr: SocketAddr) -> Result<TcpListener, BindError> {
    TcpListener::bind(addr).map_err(|source| BindError::Listen { addr, source })
}

fn in_thread<T: Send + 'static>(f: impl FnOnce() -> Result<T, BindError> + Send + 'static) -> Result<T, BindError> {
    // The thread ends inside the namespace; it must never serve anything else.
    std::thread::Builder::new()
        .name("wasmlet-netns".into())
        .spawn(f)
        .map_err(|e| BindError::Thread(e.to_string()))?
        .join()
        .map_err(|_| BindError::Thread("panicked".into()))?
}

/// `ip link set lo up` in the calling thread's namespace.
fn loopback_up() -> Result<(), nix::Error> {
    // SAFETY: plain socket/ioctl calls on a zeroed ifreq we own.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(nix::Error::last());
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
            *dst = *src as libc::c_char;
        }
        let mut result = libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req);
        if result == 0 {
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            result = libc::ioctl(fd, libc::SIOCSIFFLAGS, &req);
        }
        let err = nix::Error::last();
        libc::close(fd);
        if result != 0 {
            return Err(err);
        }
    }
    Ok(())
}

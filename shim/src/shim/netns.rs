//! The network a guest's sockets live in.
//!
//! A container's shim process enters the pod's network namespace (the
//! spec's `network` path, made by CNI) while it is still single-threaded,
//! so every thread it starts later, the guest's and the HTTP server's, opens
//! its sockets there: a guest never reaches the node's loopback services.
//! Its own connections to containerd are Unix sockets named by path, which
//! no network namespace hides. A spec that asks for a new network namespace
//! (`ctr run` without `--net-host`) gets an empty one with loopback up when
//! the guest may use the network; host-network pods (no namespace in the
//! spec) keep the node's.
//!
//! HTTP listeners are bound by [`bind`], in a short-lived thread where the
//! namespace is not the shim's own (`setns` affects only the calling
//! thread); the socket stays in the namespace it was created in. It is bound
//! but not listening: the guest process listens once an instance of the
//! function could be made, so a port that accepts connections answers them.

use super::spec::Network;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("opening network namespace {path}: {source}")]
    OpenNamespace { path: String, source: std::io::Error },
    #[error("entering network namespace {what}: {source}")]
    Enter { what: String, source: nix::Error },
    #[error("binding {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("the binding thread failed: {0}")]
    Thread(String),
}

/// Enter the network namespace `spec` gives a guest (see the module docs).
/// A pod sandbox's shim enters none: its holder process does.
pub fn join_for_guest(spec: &oci_spec::runtime::Spec) -> Result<(), BindError> {
    if super::spec::is_pod_sandbox(spec) {
        return Ok(());
    }
    match super::spec::network(spec) {
        Network::Host => Ok(()),
        Network::Path(path) => enter(&open_namespace(&path)?, &path.display().to_string()),
        // Sockets are refused without the grant, so a new namespace only
        // matters with it (an HTTP function's listener makes its own).
        Network::New if super::spec::network_granted(spec) => enter_new(),
        Network::New => Ok(()),
    }
}

fn open_namespace(path: &Path) -> Result<std::fs::File, BindError> {
    std::fs::File::open(path).map_err(|source| BindError::OpenNamespace { path: path.display().to_string(), source })
}

/// Move the calling thread into the network namespace `file` refers to.
fn enter(file: &std::fs::File, what: &str) -> Result<(), BindError> {
    nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(|source| BindError::Enter { what: what.to_owned(), source })
}

/// Move the calling thread into a new network namespace, loopback up.
fn enter_new() -> Result<(), BindError> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(|source| BindError::Enter { what: "(new)".into(), source })?;
    loopback_up().map_err(|source| BindError::Enter { what: "(new): bringing up lo".into(), source })
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

/// A TCP socket bound to `addr` inside `ns`, not yet listening (see the
/// module docs), and its address (the port chosen, for port 0).
pub fn bind(ns: Namespace<'_>, addr: SocketAddr) -> Result<(OwnedFd, SocketAddr), BindError> {
    let socket = match ns {
        Namespace::Current => bound_socket(addr)?,
        Namespace::Path(path) => {
            let file = open_namespace(path)?;
            let what = path.display().to_string();
            in_thread(move || {
                enter(&file, &what)?;
                bound_socket(addr)
            })?
        }
        Namespace::New => in_thread(move || {
            enter_new()?;
            bound_socket(addr)
        })?,
    };
    let local = socket.local_addr().ok().and_then(|a| a.as_socket()).unwrap_or(addr);
    Ok((socket.into(), local))
}

/// socket(2) and bind(2) with `SO_REUSEADDR`, as `TcpListener::bind` does
/// them, without its listen(2).
pub fn bound_socket(addr: SocketAddr) -> Result<socket2::Socket, BindError> {
    let fail = |source| BindError::Listen { addr, source };
    let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None).map_err(fail)?;
    socket.set_reuse_address(true).map_err(fail)?;
    socket.bind(&addr.into()).map_err(fail)?;
    Ok(socket)
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

//! The guest's own process: a Wasm container's guest code runs in a child of
//! the shim, confined as runc would confine the container's process (the
//! spec's user, capabilities, no_new_privs, rlimits, seccomp profile or
//! wasmlet's allowlist, Landlock, the pod's IPC/UTS namespaces: `confine`,
//! `seccomp`, `landlock`), while the shim stays root to serve containerd.
//!
//! The child is forked by the daemon as soon as it has joined the
//! container's cgroup and network namespace, while it is still
//! single-threaded (`preforked`): it builds its engine while containerd is
//! still on its way to Create, gets the guest's stdio (and an HTTP
//! function's listener) at Create as `SCM_RIGHTS`, confines itself and maps
//! the cached code; Start only tells it to go. When no pre-forked process is
//! waiting, Create execs the shim's own binary in a hidden mode (`guest`),
//! confined between fork and exec, with the stdio as fds 0–2. Either way it
//! has a control socket as fd 3, over which it receives its
//! [`protocol::Launch`] and later messages, and reports
//! when it is ready and how the run ended ([`protocol::FromGuest`]).
//!
//! Threat model (what a guest that escaped wasmtime reaches): the child's
//! credentials (the spec's uid/gid/groups, capabilities, rlimits); of the
//! node's files, only those beneath its preopens (and the compile cache,
//! read-only) that those credentials can open, where the kernel has
//! Landlock (`landlock`); the pod's network/IPC/UTS namespaces and the PID
//! namespace the spec names (`pidns`: its own, or the pod's), and no TCP
//! at all unless the network is granted; the control socket and its own
//! stdio pipes; through the system calls its seccomp filter allows (no
//! signals or ptrace of other processes, no mounts or new namespaces, no
//! Unix sockets by path). Not the shim's memory, root credentials,
//! containerd's sockets, any other container's FIFOs, or any host process
//! to signal. `containerd-shim-wasmlet-v1 self-test` checks it on a node.

mod child;
pub mod preforked;
pub mod process;
pub mod protocol;

pub use child::main;
pub use process::GuestProcess;

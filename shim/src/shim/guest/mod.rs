//! The guest's own process: a Wasm container's guest code runs in a child of
//! the shim, confined as runc would confine the container's process (the
//! spec's user, capabilities, no_new_privs, rlimits, seccomp profile or
//! wasmlet's allowlist, the pod's IPC/UTS namespaces: `confine` and
//! `seccomp`), while the shim stays root to serve containerd.
//!
//! The child is the shim's own binary in a hidden mode (`guest`), exec'd at
//! Create so its start (exec, engine, mapping the cached code) overlaps
//! containerd's work between Create and Start; Start only tells it to go.
//! It gets the guest's stdio as fds 0–2 and a control socket as fd 3, over
//! which it receives its [`protocol::Launch`] and later messages, and reports
//! when it is ready and how the run ended ([`protocol::FromGuest`]).
//!
//! Threat model (what a guest that escaped wasmtime reaches): the child's
//! credentials (the spec's uid/gid/groups, capabilities, rlimits), the files
//! those credentials can open, the pod's network/IPC/UTS namespaces, the
//! control socket and its own stdio pipes, through the system calls its
//! seccomp filter allows (no signals or ptrace of other processes, no
//! mounts or new namespaces). Not the shim's memory, root credentials,
//! containerd's sockets or any other container's FIFOs.

mod child;
pub mod process;
pub mod protocol;

pub use child::main;
pub use process::GuestProcess;

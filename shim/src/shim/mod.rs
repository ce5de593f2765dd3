//! `containerd-shim-wasmlet-v1`: containerd's shim v2 contract for Wasm.
//!
//! Process model: **one shim process per container**, started by `start`
//! and serving containerd's Task API over ttrpc. The process moves itself into
//! the container's cgroup before the guest runs, so everything the container
//! costs (guest memory, CPU, the shim's own few MB) is charged where kubelet
//! looks, and a memory limit can never hit a neighbour. Compiled code stays
//! shared between containers because it is mmap'd from the node-wide compile
//! cache (`wasmlet-runtime`), so a second process of the same Wasm adds only
//! its own data pages.
//!
//! containerd versions: 1.6/1.7 and 2.0–2.2 read a bare address from `start`
//! and then speak `containerd.task.v2.Task`; containerd 2.x speaks v3. The v2
//! and v3 messages are identical on the wire, so the daemon registers the one
//! service implementation under both names and `start` prints a bare address.

mod bootstrap;
mod cgroup;
mod daemon;
mod events;
mod netns;
mod spec;
mod stdio;
mod task;

pub use spec::{guest_memory_limit, NETWORK_ANNOTATION, SHIM_MEMORY_RESERVE};

/// Environment variable carrying containerd's ttrpc address (events).
pub(crate) const TTRPC_ADDRESS_ENV: &str = "TTRPC_ADDRESS";

/// containerd's runtime type for this shim.
pub const RUNTIME_TYPE: &str = "io.containerd.wasmlet.v1";

/// Entry point of `containerd-shim-wasmlet-v1`; returns the exit status.
pub fn main() -> i32 {
    bootstrap::main()
}

//! `containerd-shim-wasmlet-v1`: containerd's shim v2 contract for Wasm.
//!
//! Process model: **one shim process per container**, started by `start`
//! and serving containerd's Task API over ttrpc, and for a Wasm container
//! **one guest process** that runs the guest, confined as runc would
//! confine the container's process (`guest`, `confine`, `fs_view`): guest
//! code never runs in the root shim. The guest process is forked from the
//! daemon before it starts a thread and builds its engine while containerd
//! works towards Create (`guest::preforked`), instead of being exec'd at
//! Create: against the exec'd guest in the same runs (benches/containerd.rs
//! with WASMLET_BASELINE_SHIM, 40 rounds), `ctr run --rm` of a cached hello
//! took −2.6 / −1.0 ms on containerd 2.1 and −2.1 / +0.2 ms on 1.6 (two runs
//! each, within this VM's noise of ±2 ms), 1.93 MiB PSS per idle
//! container against 2.03. The process moves itself into
//! the container's cgroup before the guest runs, so everything the container
//! costs (guest memory, CPU, the shim's own few MB) is charged where kubelet
//! looks, and a memory limit can never hit a neighbour. Compiled code stays
//! shared between containers because it is mmap'd from the node-wide compile
//! cache (`wasmlet-runtime`), so a second process of the same Wasm adds only
//! its own data pages.
//!
//! Why this model, measured here (benches/containerd.rs, 50 idle containers,
//! containerd 1.6.20, 2 vCPUs): an idle container costs 1.45–1.50 MiB PSS (runc's
//! shim + process: 2.70 MiB), and `ctr run --rm` of a cached module takes
//! 0.43–0.46 × runc's time, against 0.39–0.40 for a null shim on the same
//! crate (benches/null-shim.rs) in the same run: wasmlet's own work is 4–6 ms.
//! Most of what it once cost above that floor (~12 ms) was the cgroup join:
//! a `cgroup.procs` write waits for an RCU grace period. The daemon now joins
//! while single-threaded through v1's `tasks` file (no such wait), never
//! leaves, and the `delete` action containerd runs after the daemon exits
//! removes the cgroup (containerd runs it after every task, clean exit or
//! not: tested on 1.6.20, 1.7.24 and 2.1.9, and on cgroup v2 in the VM).
//!
//! The alternatives considered: a per-pod shim forking a zygote per
//! container saves the exec (1.3 ms) but needs a fork-safe single-threaded
//! engine and still one process per container for cgroup accounting; a
//! node-level pool of pre-started shims hides the exec and engine build
//! (~2 ms, already overlapped with containerd's own work) but charges
//! pre-started memory to no cgroup until a container claims it, and would
//! still join a cgroup per container. Neither pays for its complexity at
//! these numbers; the shim's own exec is dominated by glibc's CPUID-based
//! cache detection, which traps to the hypervisor on these VMs.
//!
//! Pod sandboxes (CRI, `io.kubernetes.cri.container-type: sandbox`) run no
//! Wasm: the sandbox's shim holds the pod's cgroup, and a holder process it
//! clones holds the pod's namespaces (`sandbox`); container shims enter the
//! pod's network namespace before they start any thread (`netns`).
//!
//! Code map: `daemon` serves the Task API; `task` is the thin ttrpc adapter
//! over `task::lifecycle` (the container record, its phase state machine in
//! `task::phase`, exits and events); `workload` has one type per kind of
//! container behind one trait (pod sandbox, Linux container via `runc`, Wasm
//! run, Wasm HTTP function); `spec` maps the OCI spec to capabilities and
//! limits; `guest` runs a Wasm guest in its own process, confined by
//! `confine` (credentials, capabilities, rlimits) and `fs_view` (masked and
//! read-only paths, devices); `cgroup`, `netns`, `sandbox`, `stdio`, `exec`,
//! `content` are the OS- and containerd-facing parts they use.
//!
//! containerd versions: `start` prints a bare socket address, the only reply
//! 1.6/1.7 understand and one 2.0–2.2 read as a task-API-v2 shim; to
//! containerd 2.3's bootstrap protocol it answers in kind (`handshake`). The v2 and v3 Task messages
//! are identical on the wire, so the daemon registers the one service
//! implementation as both `containerd.task.v2.Task` and
//! `containerd.task.v3.Task`: tests/shim.rs drives Create…Shutdown under
//! both names on one connection, and everything else through containerd 1.6.

mod bootstrap;
mod cgroup;
mod confine;
mod console;
pub(crate) mod content;
mod daemon;
mod events;
mod exec;
mod fs_view;
mod guest;
mod handshake;
mod landlock;
pub(crate) mod netns;
mod pidns;
mod rootfs;
mod runc;
mod sandbox;
mod seccomp;
mod self_test;
mod spec;
mod stdio;
mod task;
mod workload;

pub use spec::{guest_memory_limit, NETWORK_ANNOTATION, SHIM_MEMORY_RESERVE};

/// The engine of a guest process: a small instance pool (one container per
/// process; HTTP functions may run many instances at once, so not one).
pub(crate) fn guest_runtime_config(cache_dir: std::path::PathBuf) -> wasmlet_runtime::RuntimeConfig {
    wasmlet_runtime::RuntimeConfig {
        cache_dir,
        pool: Some(wasmlet_runtime::PoolConfig { max_instances: 64, ..wasmlet_runtime::PoolConfig::default() }),
        ..wasmlet_runtime::RuntimeConfig::default()
    }
}

/// The shim's own engine, which compiles and links but never instantiates:
/// no instance pool (reserving one costs a few hundred µs of Create's time).
/// The code it compiles is what guest processes map, so both engines share
/// every setting that reaches the code (wasmlet_runtime's `base_config`; the
/// allocator is not one of them: tests/shim.rs runs what the shim compiled).
pub(crate) fn shim_runtime_config(cache_dir: std::path::PathBuf) -> wasmlet_runtime::RuntimeConfig {
    wasmlet_runtime::RuntimeConfig { cache_dir, pool: None, ..wasmlet_runtime::RuntimeConfig::default() }
}

/// Environment variable carrying containerd's ttrpc address (events).
pub(crate) const TTRPC_ADDRESS_ENV: &str = "TTRPC_ADDRESS";

/// containerd's runtime type for this shim.
pub const RUNTIME_TYPE: &str = "io.containerd.wasmlet.v1";

/// For fuzzing (tests/fuzz): read `bytes` as a bundle's `config.json` and
/// translate it as Create does (the guest's capabilities, limits, compile
/// budget, confinement, masks; Wasm or Linux), discarding the result. Any
/// input must give a result or an error, never a panic.
#[doc(hidden)]
pub fn translate_spec_for_fuzzing(bytes: &[u8]) {
    let Ok(spec) = serde_json::from_slice::<oci_spec::runtime::Spec>(bytes) else { return };
    let rootfs = std::path::Path::new("/nonexistent/wasmlet-fuzz/rootfs");
    let _ = runc::is_native(&spec, rootfs);
    let _ = spec::is_pod_sandbox(&spec);
    let _ = spec::compile_budget(&spec);
    if let Ok(task) = spec::wasm_task(&spec, rootfs) {
        let folders: Vec<fs_view::Folder<'_>> =
            task.caps.preopens.iter().map(|p| fs_view::Folder { host: &p.host, guest: &p.guest }).collect();
        let _ = fs_view::FsView::new(&spec, &folders);
    }
    if let Ok(mut confinement) = confine::Confinement::from_spec(&spec) {
        confinement.as_after_exec();
    }
}

/// Entry point of `containerd-shim-wasmlet-v1`; returns the exit status.
pub fn main() -> i32 {
    bootstrap::main()
}

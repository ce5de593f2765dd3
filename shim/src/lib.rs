//! wasmlet's host side: the containerd shim v2 (`containerd-shim-wasmlet-v1`)
//! and the `wasmlet` command-line tool, both driving `wasmlet-runtime`.
//!
//! Owns: process lifecycle, translating OCI bundles / CLI flags into the
//! runtime's capabilities and limits, signals, stdio wiring, cgroups, and
//! talking to containerd.
//!
//! Must not touch: wasmtime directly (that is `wasmlet-runtime`'s job), or
//! registry and artifact formats (that is `wasmlet-oci`'s).

pub mod cli;
pub mod logging;
pub mod shim;
mod signals;
pub mod units;

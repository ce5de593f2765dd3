//! Content on disk, the way every part of wasmlet names and writes it.
//!
//! Owns: the sha256 [`Digest`] that names every blob, module and compile
//! cache entry (one type, whether it came from a manifest or was computed
//! here), checking bytes against a descriptor ([`verify`]) or a recorded
//! checksum line ([`matches_sum_line`]), and [`write_atomically`], the one
//! way a file is replaced.
//!
//! Must not touch: anything about what the content means (Wasm, OCI media
//! types, containerd); `wasmlet-runtime` and `wasmlet-oci` both build on
//! this crate and on nothing of each other.

mod atomic;
mod digest;
mod sum;

pub use atomic::write_atomically;
pub use digest::{verify, Digest, DigestError, ParseDigestError};
pub use sum::{matches_sum_line, matches_sum_line_read, sum_line};

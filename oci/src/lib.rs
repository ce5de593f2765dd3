//! Wasm in OCI registries: recognising the ways Wasm is packaged (the CNCF
//! Wasm artifact, runwasi's layer types, plain images with a `.wasm` in the
//! rootfs), a registry client for pulling and pushing them, and a local
//! content-addressed store where every blob is verified before it is kept.
//!
//! Owns: media types and manifest rules ([`format`]), registry transport and
//! credentials and CA trust ([`registry`], [`auth`], [`tls`]), manifests read within a size
//! cap while they stream ([`manifest_get`]), the on-disk store ([`store`]), reading a
//! file out of a tar layer within a size cap and against its diff_id ([`layer`]), and
//! resolving a manifest or index to how it packages Wasm ([`resolve`]), for
//! registries and for the shim's reads of containerd's content store alike.
//!
//! Must not touch: wasmtime or the compile cache (callers hand verified Wasm
//! bytes and their digest to `wasmlet-runtime`), containerd tasks, cgroups.

pub mod auth;
pub mod format;
pub mod layer;
pub mod manifest_get;
pub mod registry;
pub mod resolve;
pub mod store;
pub mod tls;

pub use format::{classify, FormatError, Packaging, WASM_CONFIG_MEDIA_TYPE, WASM_LAYER_MEDIA_TYPE};
pub use registry::{
    PullError, Pulled, PushError, PushFormat, PushOptions, Registry, RegistryOptions, EMPTY_TAR_DIFF_ID,
};
pub use store::{ContentStore, StoreError, StoredImage};
pub use wasmlet_content::{Digest, DigestError};

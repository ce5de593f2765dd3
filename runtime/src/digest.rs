//! Content digests: the one [`Digest`] type of `wasmlet-content`, and a
//! hasher that names `impl Hash` values by one.

use sha2::{Digest as _, Sha256};
pub use wasmlet_content::Digest;

/// A [`std::hash::Hasher`] that feeds sha256, so `impl Hash` values (the
/// engine's compatibility hash) get a stable, collision-resistant name.
#[derive(Default)]
pub(crate) struct Sha256Hasher(Sha256);

impl Sha256Hasher {
    pub(crate) fn finish_digest(self) -> Digest {
        Digest::from_bytes(self.0.finalize().into())
    }
}

impl std::hash::Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        let bytes = self.0.clone().finalize();
        u64::from_le_bytes(bytes[..8].try_into().unwrap_or_default())
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

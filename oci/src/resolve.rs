//! From a manifest (or an index of them) to the image manifest and the way
//! it packages its Wasm: the one resolution a registry pull and a read from
//! containerd's content store both go through, over [`ManifestSource`].

use crate::format::{self, classify, parse_manifest, FormatError, Packaging, INDEX_MEDIA_TYPES};
use oci_spec::image::ImageManifest;
use std::future::Future;
use wasmlet_content::Digest;

/// Why a manifest did not resolve.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("the index lists no manifest for this platform")]
    EmptyIndex,
    #[error(transparent)]
    Format(#[from] FormatError),
}

/// Where manifests come from (a registry, containerd's content store).
pub trait ManifestSource {
    type Error;

    /// The manifest with `digest`, read with a size cap and verified
    /// against the digest.
    fn manifest(&self, digest: &str) -> impl Future<Output = Result<Vec<u8>, Self::Error>>;

    /// A resolution failure in this source's error type.
    fn resolve_error(&self, err: ResolveError) -> Self::Error;
}

/// An image manifest and what it holds.
#[derive(Debug)]
pub struct Resolved {
    /// The image manifest's own bytes (not the index's).
    pub bytes: Vec<u8>,
    pub digest: Digest,
    pub manifest: ImageManifest,
    pub packaging: Packaging,
}

/// Resolve `top` (verified manifest or index bytes): an index is replaced
/// by the manifest it lists for this platform, read from `source`.
pub async fn resolve<S: ManifestSource>(source: &S, top: Vec<u8>) -> Result<Resolved, S::Error> {
    let mut bytes = top;
    if let Some(choice) = index_choice(&bytes) {
        let choice = choice.ok_or_else(|| source.resolve_error(ResolveError::EmptyIndex))?;
        bytes = source.manifest(&choice).await?;
    }
    let manifest = parse_manifest(&bytes).map_err(|e| source.resolve_error(e.into()))?;
    let packaging = classify(&manifest).map_err(|e| source.resolve_error(e.into()))?;
    Ok(Resolved { digest: Digest::of(&bytes), bytes, manifest, packaging })
}

/// `Some(choice)` when `bytes` is an index (`Some(None)`: nothing for this
/// platform), `None` when it is an image manifest. A document that has
/// `manifests` but also `layers` and no index media type is a manifest.
fn index_choice(bytes: &[u8]) -> Option<Option<String>> {
    let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let media_type = value.get("mediaType").and_then(|m| m.as_str()).unwrap_or_default();
    value.get("manifests")?.as_array()?;
    if !INDEX_MEDIA_TYPES.contains(&media_type) && value.get("layers").is_some() {
        return None;
    }
    Some(format::choose_from_index(&value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Manifests by digest, as a content store holds them.
    struct Blobs(HashMap<String, Vec<u8>>);

    impl ManifestSource for Blobs {
        type Error = String;

        async fn manifest(&self, digest: &str) -> Result<Vec<u8>, String> {
            self.0.get(digest).cloned().ok_or_else(|| format!("{digest} not found"))
        }

        fn resolve_error(&self, err: ResolveError) -> String {
            err.to_string()
        }
    }

    fn wasm_manifest() -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": format::WASM_CONFIG_MEDIA_TYPE, "digest": Digest::of(b"{}").to_string(), "size": 2},
            "layers": [{"mediaType": format::WASM_LAYER_MEDIA_TYPE, "digest": Digest::of(b"\0asm").to_string(), "size": 4}],
        }))
        .unwrap()
    }

    fn index_of(digest: &str, arch: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": 1,
                           "platform": {"os": "wasip1", "architecture": arch}}],
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn a_manifest_resolves_to_itself_and_an_index_through_its_entry() {
        let manifest = wasm_manifest();
        let digest = Digest::of(&manifest);
        let source = Blobs(HashMap::from([(digest.to_string(), manifest.clone())]));
        let direct = resolve(&source, manifest.clone()).await.unwrap();
        assert_eq!(direct.digest, digest);
        assert!(matches!(direct.packaging, Packaging::WasmLayer { size: 4, .. }), "{:?}", direct.packaging);
        let through_index = resolve(&source, index_of(&digest.to_string(), "wasm")).await.unwrap();
        assert_eq!((through_index.digest, through_index.bytes), (digest, manifest));
    }

    #[tokio::test]
    async fn what_does_not_resolve_says_why() {
        let source = Blobs(HashMap::new());
        let missing = resolve(&source, index_of(&Digest::of(b"x").to_string(), "wasm")).await.unwrap_err();
        assert!(missing.contains("not found"), "{missing}");
        let garbage = resolve(&source, b"{\"layers\": 3}".to_vec()).await.unwrap_err();
        assert!(garbage.contains("manifest"), "{garbage}");
    }

    #[test]
    fn index_prefers_wasm_then_linux_amd64() {
        let index = serde_json::json!({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {"digest": "sha256:a", "platform": {"os": "linux", "architecture": "arm64"}},
                {"digest": "sha256:b", "platform": {"os": "linux", "architecture": "amd64"}},
                {"digest": "sha256:c", "platform": {"os": "wasip1", "architecture": "wasm"}},
            ]
        });
        assert_eq!(index_choice(&serde_json::to_vec(&index).unwrap()), Some(Some("sha256:c".into())));
        let manifest = serde_json::json!({"schemaVersion": 2, "layers": []});
        assert_eq!(index_choice(&serde_json::to_vec(&manifest).unwrap()), None);
    }
}

//! How Wasm is packaged in OCI images, recognised from the manifest.
//!
//! | packaging | config media type | layers |
//! |---|---|---|
//! | CNCF Wasm artifact (`wasmlet push` writes these) | `application/vnd.wasm.config.v0+json` | exactly one `application/wasm` |
//! | runwasi / other Wasm layers | an OCI or Docker image config | exactly one layer of a type in [`WASM_LAYER_MEDIA_TYPES`] |
//! | plain image | an OCI or Docker image config | tar layers only; the `.wasm` is a file in the rootfs |
//!
//! Anything else (an unknown config or layer type, zero or several Wasm
//! layers, Wasm mixed with tar layers) is refused with the reason.

use oci_spec::image::ImageManifest;

/// Config media type of the CNCF Wasm OCI artifact.
pub const WASM_CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
/// Layer media type of the CNCF Wasm OCI artifact.
pub const WASM_LAYER_MEDIA_TYPE: &str = "application/wasm";

/// Layer media type runwasi pushes (`push --format runwasi`).
pub const RUNWASI_LAYER_MEDIA_TYPE: &str = "application/vnd.bytecodealliance.wasm.component.layer.v0+wasm";

/// Layer media types that hold one raw Wasm module or component.
pub const WASM_LAYER_MEDIA_TYPES: &[&str] = &[
    WASM_LAYER_MEDIA_TYPE,
    RUNWASI_LAYER_MEDIA_TYPE,
    // wasm-to-oci
    "application/vnd.wasm.content.layer.v1+wasm",
    // crun / WasmEdge
    "application/vnd.module.wasm.content.layer.v1+wasm",
];

/// Layer media types of a filesystem (a plain image's rootfs).
pub const TAR_LAYER_MEDIA_TYPES: &[&str] = &[
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
];

/// Image config media types accepted beside the Wasm artifact's.
pub const IMAGE_CONFIG_MEDIA_TYPES: &[&str] =
    &["application/vnd.oci.image.config.v1+json", "application/vnd.docker.container.image.v1+json"];

/// Manifest media types accepted.
pub const MANIFEST_MEDIA_TYPES: &[&str] =
    &["application/vnd.oci.image.manifest.v1+json", "application/vnd.docker.distribution.manifest.v2+json"];

/// Index media types (a manifest list: pick the Wasm or linux/amd64 entry).
pub const INDEX_MEDIA_TYPES: &[&str] =
    &["application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json"];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FormatError {
    #[error("unknown config media type `{0}` (expected {WASM_CONFIG_MEDIA_TYPE} or an OCI/Docker image config)")]
    UnknownConfig(String),
    #[error("unknown layer media type `{0}` (Wasm layers: {wasm}; filesystem layers: OCI/Docker tar)", wasm = WASM_LAYER_MEDIA_TYPES.join(", "))]
    UnknownLayer(String),
    #[error("the image has no Wasm layer and no filesystem layer")]
    NoLayers,
    #[error("the image has {0} Wasm layers; wasmlet runs exactly one module or component per container")]
    SeveralWasmLayers(usize),
    #[error("a Wasm artifact ({WASM_CONFIG_MEDIA_TYPE}) must hold exactly one {WASM_LAYER_MEDIA_TYPE} layer: {0}")]
    BadArtifact(String),
    #[error("the image mixes Wasm layers and filesystem layers")]
    Mixed,
    #[error("invalid manifest: {0}")]
    InvalidManifest(String),
}

/// Where the Wasm of an image is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packaging {
    /// A layer that is the Wasm itself.
    WasmLayer { media_type: String, digest: String, size: u64 },
    /// Filesystem layers: the entrypoint names the `.wasm` inside them.
    Rootfs,
}

/// Parse a manifest's bytes.
pub fn parse_manifest(bytes: &[u8]) -> Result<ImageManifest, FormatError> {
    serde_json::from_slice(bytes).map_err(|e| FormatError::InvalidManifest(e.to_string()))
}

/// Decide how `manifest` packages its Wasm.
pub fn classify(manifest: &ImageManifest) -> Result<Packaging, FormatError> {
    let config_type = manifest.config().media_type().to_string();
    let artifact = config_type == WASM_CONFIG_MEDIA_TYPE;
    if !artifact && !IMAGE_CONFIG_MEDIA_TYPES.contains(&config_type.as_str()) {
        return Err(FormatError::UnknownConfig(config_type));
    }
    let mut wasm = Vec::new();
    let mut tars = 0;
    for layer in manifest.layers() {
        let media_type = layer.media_type().to_string();
        if WASM_LAYER_MEDIA_TYPES.contains(&media_type.as_str()) {
            wasm.push(layer);
        } else if TAR_LAYER_MEDIA_TYPES.contains(&media_type.as_str()) {
            tars += 1;
        } else {
            return Err(FormatError::UnknownLayer(media_type));
        }
    }
    if artifact {
        return match (wasm.as_slice(), tars) {
            ([layer], 0) if layer.media_type().to_string() == WASM_LAYER_MEDIA_TYPE => Ok(descriptor(layer)),
            ([layer], 0) => Err(FormatError::BadArtifact(format!("its layer is {}", layer.media_type()))),
            (_, 0) => Err(FormatError::BadArtifact(format!("it has {} Wasm layers", wasm.len()))),
            _ => Err(FormatError::BadArtifact("it has filesystem layers".into())),
        };
    }
    match (wasm.as_slice(), tars) {
        ([], 0) => Err(FormatError::NoLayers),
        ([], _) => Ok(Packaging::Rootfs),
        ([layer], 0) => Ok(descriptor(layer)),
        ([_], _) => Err(FormatError::Mixed),
        (several, _) => Err(FormatError::SeveralWasmLayers(several.len())),
    }
}

fn descriptor(layer: &oci_spec::image::Descriptor) -> Packaging {
    Packaging::WasmLayer {
        media_type: layer.media_type().to_string(),
        digest: layer.digest().to_string(),
        size: layer.size(),
    }
}

/// From an index's `manifests`, the digest to use: a Wasm platform entry
/// (`architecture: wasm` or `os: wasi*`) first, then linux/amd64, then the first.
pub fn choose_from_index(index: &serde_json::Value) -> Option<String> {
    let manifests = index.get("manifests")?.as_array()?;
    let platform = |m: &serde_json::Value, key: &str| {
        m.get("platform").and_then(|p| p.get(key)).and_then(|v| v.as_str()).unwrap_or_default().to_owned()
    };
    manifests
        .iter()
        .find(|m| platform(m, "architecture") == "wasm" || platform(m, "os").starts_with("wasi"))
        .or_else(|| manifests.iter().find(|m| platform(m, "os") == "linux" && platform(m, "architecture") == "amd64"))
        .or(manifests.first())
        .and_then(|m| m.get("digest")?.as_str().map(str::to_owned))
}

/// The CNCF Wasm artifact config (`application/vnd.wasm.config.v0+json`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct WasmConfig {
    pub created: Option<String>,
    pub author: Option<String>,
    /// Always `wasm`.
    pub architecture: String,
    /// `wasip1` for core modules, `wasip2` for components.
    pub os: String,
    #[serde(rename = "layerDigests", default)]
    pub layer_digests: Vec<String>,
    /// The component's imports and exports, when known (WIT-style names).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub component: Option<serde_json::Value>,
    /// Not in the CNCF schema (consumers ignore it): one empty-tar diff id
    /// per layer lets containerd before 1.6.25/1.7.7 unpack the artifact
    /// with wasmlet's stream processor, as it reads this as an image config.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub rootfs: Option<serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(config: &str, layers: &[&str]) -> ImageManifest {
        let d = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
        let layers: Vec<_> =
            layers.iter().map(|m| serde_json::json!({"mediaType": m, "digest": d, "size": 8})).collect();
        serde_json::from_value(serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": config, "digest": d, "size": 2},
            "layers": layers,
        }))
        .unwrap()
    }

    const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    const TAR: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    const RUNWASI: &str = "application/vnd.bytecodealliance.wasm.component.layer.v0+wasm";

    #[test]
    fn recognises_each_packaging() {
        assert!(matches!(
            classify(&manifest(WASM_CONFIG_MEDIA_TYPE, &[WASM_LAYER_MEDIA_TYPE])),
            Ok(Packaging::WasmLayer { .. })
        ));
        match classify(&manifest(OCI_CONFIG, &[RUNWASI])).unwrap() {
            Packaging::WasmLayer { media_type, size, .. } => assert_eq!((media_type.as_str(), size), (RUNWASI, 8)),
            other => panic!("{other:?}"),
        }
        assert_eq!(classify(&manifest(OCI_CONFIG, &[TAR, TAR])), Ok(Packaging::Rootfs));
    }

    #[test]
    fn refuses_what_it_cannot_run() {
        assert_eq!(
            classify(&manifest("application/x-unknown", &[TAR])),
            Err(FormatError::UnknownConfig("application/x-unknown".into()))
        );
        assert_eq!(
            classify(&manifest(OCI_CONFIG, &["text/plain"])),
            Err(FormatError::UnknownLayer("text/plain".into()))
        );
        assert_eq!(classify(&manifest(OCI_CONFIG, &[RUNWASI, RUNWASI])), Err(FormatError::SeveralWasmLayers(2)));
        assert_eq!(classify(&manifest(OCI_CONFIG, &[])), Err(FormatError::NoLayers));
        assert_eq!(classify(&manifest(OCI_CONFIG, &[RUNWASI, TAR])), Err(FormatError::Mixed));
        assert!(matches!(classify(&manifest(WASM_CONFIG_MEDIA_TYPE, &[])), Err(FormatError::BadArtifact(_))));
        assert!(matches!(classify(&manifest(WASM_CONFIG_MEDIA_TYPE, &[RUNWASI])), Err(FormatError::BadArtifact(_))));
        assert!(matches!(parse_manifest(b"{"), Err(FormatError::InvalidManifest(_))));
    }
}

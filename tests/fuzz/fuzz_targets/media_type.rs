//! What a blob or file is: the Wasm format from its first bytes, and an
//! image's packaging from its layers' and config's media types (the first
//! byte picks how many layers, the rest are split into media types).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = wasmlet_runtime::WasmFormat::detect(data);
    let Some((count, rest)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(rest);
    let mut types = text.split('\n');
    let config = types.next().unwrap_or_default();
    let digest = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
    let layers: Vec<_> = types
        .take(usize::from(count % 5))
        .map(|t| serde_json::json!({"mediaType": t, "digest": digest, "size": 8}))
        .collect();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": config, "digest": digest, "size": 2},
        "layers": layers,
    });
    if let Ok(manifest) = serde_json::from_value::<oci_spec::image::ImageManifest>(manifest) {
        if let Ok(wasmlet_oci::Packaging::WasmLayer { media_type, .. }) = wasmlet_oci::classify(&manifest) {
            assert!(manifest.layers().iter().any(|l| l.media_type().to_string() == media_type));
        }
    }
});

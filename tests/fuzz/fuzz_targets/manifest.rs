//! Registry and content-store input: a manifest (parsed and classified),
//! an index (the manifest chosen from it), an image config (its diff_ids),
//! a CNCF Wasm config. Any bytes: an answer or an error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(manifest) = wasmlet_oci::format::parse_manifest(data) {
        let _ = wasmlet_oci::classify(&manifest);
    }
    if let Ok(index) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = wasmlet_oci::format::choose_from_index(&index);
    }
    for layers in [0, 1, 3] {
        if let Some(ids) = wasmlet_oci::layer::diff_ids(data, layers) {
            assert_eq!(ids.len(), layers, "one diff_id per layer or none");
        }
    }
    let _ = serde_json::from_slice::<wasmlet_oci::format::WasmConfig>(data);
});

//! An OCI runtime spec (a bundle's config.json) translated as the shim's
//! Create does: capabilities, limits, compile budget, confinement, masks.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    wasmlet_shim::shim::translate_spec_for_fuzzing(data);
});

//! Compile-cache entry validation: a recorded checksum line and an entry,
//! both any bytes (as a crash, a full disk or a hostile writer leaves
//! them). Accepted only when the line is exactly the entry's (or an
//! earlier version's sha256 line of it); digests
//! parse or fail, and round-trip when they parse.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|b| *b == 0).unwrap_or(data.len());
    let (line, entry) = (&data[..split], data.get(split + 1..).unwrap_or_default());
    if wasmlet_content::matches_sum_line(line, entry).is_ok() {
        let line = String::from_utf8_lossy(line);
        let line = line.trim_end();
        // The entry's own line, or an earlier version's sha256 line of it.
        if !line.starts_with("sha256:") {
            assert_eq!(line, wasmlet_content::sum_line(entry).trim_end());
        }
        assert!(line.ends_with(&format!(" {}", entry.len())), "{line}");
    }
    assert!(wasmlet_content::matches_sum_line(wasmlet_content::sum_line(entry).as_bytes(), entry).is_ok());
    if let Ok(text) = std::str::from_utf8(line) {
        if let Ok(digest) = text.parse::<wasmlet_content::Digest>() {
            assert!(digest.to_string().parse::<wasmlet_content::Digest>().ok() == Some(digest), "{text}");
        }
    }
});

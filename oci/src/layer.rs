//! Reading a file out of an image's tar layer (gzip or not), bounded and
//! verified: the unpacked stream may not exceed a cap (a 1 MB gzip layer can
//! unpack to gigabytes), and its digest must be the `diff_id` the image's
//! config lists for it.

use sha2::{Digest as _, Sha256};
use std::io::Read;

/// What a layer must satisfy while it is unpacked.
#[derive(Debug, Clone, Copy)]
pub struct LayerCheck<'a> {
    /// The most bytes the unpacked (tar) stream may have.
    pub max_unpacked: u64,
    /// The config's `diff_id` for this layer (`sha256:…`), when it lists one.
    pub diff_id: Option<&'a str>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LayerError {
    #[error("reading the layer: {0}")]
    Unreadable(String),
    #[error("the layer unpacks to more than {limit} bytes (raise --max-blob-size to allow it)")]
    TooLarge { limit: u64 },
    #[error("the unpacked layer has digest {actual}, but the image config lists diff_id {expected}")]
    DiffId { expected: String, actual: String },
}

/// Counts and hashes what passes through, and stops past the cap.
struct Unpacked<R> {
    inner: R,
    read: u64,
    limit: u64,
    hasher: Sha256,
}

impl<R: Read> Read for Unpacked<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read > self.limit {
            return Err(std::io::Error::new(std::io::ErrorKind::FileTooLarge, "over the unpacked-size cap"));
        }
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// The file at `path` inside `layer` (later entries win, as in a rootfs),
/// once the whole layer has been unpacked within `check`.
pub fn find_in_layer(
    layer: &[u8],
    media_type: &str,
    path: &str,
    check: LayerCheck<'_>,
) -> Result<Option<Vec<u8>>, LayerError> {
    let wanted = path.trim_start_matches('/');
    let reader: Box<dyn Read> = if media_type.ends_with("gzip") || layer.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::GzDecoder::new(layer))
    } else if media_type.ends_with("zstd") {
        return Err(LayerError::Unreadable(format!("zstd layers are not supported ({media_type})")));
    } else {
        Box::new(layer)
    };
    let mut unpacked = Unpacked { inner: reader, read: 0, limit: check.max_unpacked, hasher: Sha256::new() };
    let found = read_entries(&mut unpacked, wanted)
        // The diff_id covers the whole stream, past tar's end-of-archive blocks.
        .and_then(|found| std::io::copy(&mut unpacked, &mut std::io::sink()).map(|_| found))
        .map_err(|e| {
            // tar may wrap the cap's error in its own: the count says.
            if unpacked.read > check.max_unpacked {
                LayerError::TooLarge { limit: check.max_unpacked }
            } else {
                LayerError::Unreadable(e.to_string())
            }
        })?;
    if let Some(expected) = check.diff_id {
        let actual = format!("sha256:{:x}", unpacked.hasher.finalize());
        if actual != expected {
            return Err(LayerError::DiffId { expected: expected.to_owned(), actual });
        }
    }
    Ok(found)
}

/// The last regular file at `wanted` in the tar stream.
fn read_entries(stream: &mut impl Read, wanted: &str) -> std::io::Result<Option<Vec<u8>>> {
    let mut found = None;
    for entry in tar::Archive::new(stream).entries()? {
        let mut entry = entry?;
        let entry_path = entry.path()?.to_string_lossy().into_owned();
        if entry_path.trim_start_matches("./").trim_start_matches('/') == wanted
            && entry.header().entry_type().is_file()
        {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes)?;
            found = Some(bytes);
        }
    }
    Ok(found)
}

/// The config's `rootfs.diff_ids`, when it lists one per layer.
pub fn diff_ids(config: &[u8], layers: usize) -> Option<Vec<String>> {
    let value: serde_json::Value = serde_json::from_slice(config).ok()?;
    let ids: Vec<String> = value
        .get("rootfs")?
        .get("diff_ids")?
        .as_array()?
        .iter()
        .map(|v| v.as_str().map(str::to_owned))
        .collect::<Option<_>>()?;
    (ids.len() == layers).then_some(ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, bytes) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, path, *bytes).unwrap();
        }
        builder.into_inner().unwrap()
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    fn sha256(bytes: &[u8]) -> String {
        format!("sha256:{:x}", Sha256::digest(bytes))
    }

    const GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

    #[test]
    fn finds_the_file_in_a_layer_whose_diff_id_matches() {
        let tar = tar_of(&[("app.wasm", b"\0asm"), ("other", b"x")]);
        let check = LayerCheck { max_unpacked: 1 << 20, diff_id: Some(&sha256(&tar)) };
        assert_eq!(find_in_layer(&gzip(&tar), GZIP, "/app.wasm", check), Ok(Some(b"\0asm".to_vec())));
        assert_eq!(find_in_layer(&gzip(&tar), GZIP, "/missing.wasm", check), Ok(None));
    }

    #[test]
    fn a_layer_that_is_not_what_the_config_says_is_refused() {
        let tar = tar_of(&[("app.wasm", b"\0asm")]);
        let other = sha256(b"something else");
        let check = LayerCheck { max_unpacked: 1 << 20, diff_id: Some(&other) };
        let err = find_in_layer(&gzip(&tar), GZIP, "/app.wasm", check).unwrap_err();
        assert_eq!(err, LayerError::DiffId { expected: other, actual: sha256(&tar) });
    }

    #[test]
    fn a_gzip_bomb_stops_at_the_cap() {
        // 64 MiB of zeros in a file, about 64 KiB compressed.
        let zeros = vec![0u8; 64 << 20];
        let bomb = gzip(&tar_of(&[("app.wasm", &zeros)]));
        assert!(bomb.len() < 1 << 20, "{} bytes compressed", bomb.len());
        let check = LayerCheck { max_unpacked: 8 << 20, diff_id: None };
        let err = find_in_layer(&bomb, GZIP, "/app.wasm", check).unwrap_err();
        assert_eq!(err, LayerError::TooLarge { limit: 8 << 20 });
        assert!(err.to_string().contains("unpacks to more than 8388608 bytes"), "{err}");
    }

    #[test]
    fn diff_ids_count_only_when_there_is_one_per_layer() {
        let config = br#"{"rootfs": {"type": "layers", "diff_ids": ["sha256:aa", "sha256:bb"]}}"#;
        assert_eq!(diff_ids(config, 2), Some(vec!["sha256:aa".into(), "sha256:bb".into()]));
        assert_eq!(diff_ids(config, 1), None);
        assert_eq!(diff_ids(b"{}", 1), None);
    }
}

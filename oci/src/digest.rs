//! Content digests (`sha256:<hex>`) and their verification.

use sha2::{Digest as _, Sha256};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DigestError {
    #[error("unsupported digest `{0}` (only sha256 is supported)")]
    Unsupported(String),
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    Mismatch { what: String, expected: String, actual: String },
    #[error("size mismatch for {what}: expected {expected} bytes, got {actual}")]
    Size { what: String, expected: u64, actual: u64 },
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The hex part of a `sha256:` digest, checked for shape (it becomes a file name).
pub fn sha256_hex(digest: &str) -> Result<&str, DigestError> {
    match digest.strip_prefix("sha256:") {
        Some(hex) if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) => Ok(hex),
        _ => Err(DigestError::Unsupported(digest.to_owned())),
    }
}

/// Check `bytes` against a descriptor's digest and size.
pub fn verify_digest(what: &str, bytes: &[u8], expected: &str, expected_size: Option<u64>) -> Result<(), DigestError> {
    sha256_hex(expected)?;
    if let Some(size) = expected_size {
        if bytes.len() as u64 != size {
            return Err(DigestError::Size {
                what: what.to_owned(),
                expected: size,
                actual: bytes.len() as u64,
            });
        }
    }
    let actual = sha256_digest(bytes);
    if actual != expected {
        return Err(DigestError::Mismatch {
            what: what.to_owned(),
            expected: expected.to_owned(),
            actual,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_digest_and_size() {
        let d = sha256_digest(b"abc");
        assert_eq!(d, "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert!(verify_digest("x", b"abc", &d, Some(3)).is_ok());
        assert!(matches!(verify_digest("x", b"abd", &d, Some(3)), Err(DigestError::Mismatch { .. })));
        assert!(matches!(verify_digest("x", b"abc", &d, Some(4)), Err(DigestError::Size { .. })));
        assert!(matches!(verify_digest("x", b"abc", "md5:00", None), Err(DigestError::Unsupported(_))));
        assert!(sha256_hex("sha256:../../etc/passwd").is_err());
    }
}

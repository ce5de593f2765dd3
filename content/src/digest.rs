//! Content digests (`sha256:<hex>`), the key of everything stored or cached.

use sha2::{Digest as _, Sha256};
use std::fmt;
use std::str::FromStr;

/// A sha256 content digest, displayed the OCI way: `sha256:<64 hex digits>`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

impl Digest {
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }

    pub fn from_bytes(raw: [u8; 32]) -> Self {
        Self(raw)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 64 hex digits without the algorithm prefix (used as a file name).
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid digest `{0}`: expected `sha256:` followed by 64 lowercase hex digits")]
pub struct ParseDigestError(String);

impl FromStr for Digest {
    type Err = ParseDigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex_part = s.strip_prefix("sha256:").ok_or_else(|| ParseDigestError(s.to_owned()))?;
        let mut raw = [0u8; 32];
        // Lowercase only: the text is also a file name, one per digest.
        let canonical = hex_part.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if hex_part.len() != 64 || !canonical || hex::decode_to_slice(hex_part, &mut raw).is_err() {
            return Err(ParseDigestError(s.to_owned()));
        }
        Ok(Self(raw))
    }
}

/// Why bytes do not match what a descriptor says of them.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DigestError {
    #[error("unsupported digest `{0}` (only sha256 is supported)")]
    Unsupported(String),
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    Mismatch { what: String, expected: String, actual: String },
    #[error("size mismatch for {what}: expected {expected} bytes, got {actual}")]
    Size { what: String, expected: u64, actual: u64 },
}

impl From<ParseDigestError> for DigestError {
    fn from(err: ParseDigestError) -> Self {
        Self::Unsupported(err.0)
    }
}

/// Check `bytes` (named `what` in errors) against a descriptor's digest
/// text and size; the parsed digest when they match.
pub fn verify(what: &str, bytes: &[u8], expected: &str, expected_size: Option<u64>) -> Result<Digest, DigestError> {
    let digest: Digest = expected.parse()?;
    if let Some(size) = expected_size {
        if bytes.len() as u64 != size {
            return Err(DigestError::Size { what: what.to_owned(), expected: size, actual: bytes.len() as u64 });
        }
    }
    let actual = Digest::of(bytes);
    if actual != digest {
        return Err(DigestError::Mismatch {
            what: what.to_owned(),
            expected: expected.to_owned(),
            actual: actual.to_string(),
        });
    }
    Ok(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_text() {
        let d = Digest::of(b"hello");
        assert_eq!(d.to_string(), "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
        assert_eq!(d.to_string().parse::<Digest>().unwrap(), d);
    }

    #[test]
    fn rejects_malformed_text() {
        let upper = format!("sha256:{}", "A".repeat(64));
        for bad in [
            "",
            "sha256:",
            "md5:abcd",
            "sha256:zz",
            "sha256:../../etc/passwd",
            &format!("sha256:{}", "a".repeat(63)),
            &upper,
        ] {
            assert!(bad.parse::<Digest>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn verifies_digest_and_size() {
        let d = Digest::of(b"abc").to_string();
        assert_eq!(d, "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(verify("x", b"abc", &d, Some(3)), Ok(Digest::of(b"abc")));
        assert!(matches!(verify("x", b"abd", &d, Some(3)), Err(DigestError::Mismatch { .. })));
        assert!(matches!(verify("x", b"abc", &d, Some(4)), Err(DigestError::Size { .. })));
        assert!(matches!(verify("x", b"abc", "md5:00", None), Err(DigestError::Unsupported(_))));
    }
}

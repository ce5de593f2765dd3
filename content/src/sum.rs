//! The checksum line recorded beside a compile-cache entry
//! (`sha256:<hex> <length>\n`), and checking an entry against it.

use sha2::{Digest as _, Sha256};

/// The line recorded for `bytes`.
pub fn sum_line(bytes: &[u8]) -> String {
    format!("sha256:{} {}\n", hex::encode(Sha256::digest(bytes)), bytes.len())
}

/// Whether `bytes` are what `recorded` (a [`sum_line`], as read back from
/// disk: any bytes) describes. Trailing whitespace is ignored; anything
/// else must match exactly.
pub fn matches_sum_line(recorded: &[u8], bytes: &[u8]) -> Result<(), String> {
    let recorded = String::from_utf8_lossy(recorded);
    let actual = sum_line(bytes);
    if recorded.trim_end() == actual.trim_end() {
        Ok(())
    } else {
        Err(format!("checksum mismatch: recorded `{}`, found `{}`", recorded.trim_end(), actual.trim_end()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_matches_only_its_own_line() {
        let line = sum_line(b"code");
        assert!(line.starts_with("sha256:") && line.ends_with(" 4\n"), "{line}");
        assert!(matches_sum_line(line.as_bytes(), b"code").is_ok());
        assert!(matches_sum_line(line.trim_end().as_bytes(), b"code").is_ok(), "a missing newline is fine");
        assert!(matches_sum_line(line.as_bytes(), b"codf").is_err());
        assert!(matches_sum_line(line.replace(" 4", " 5").as_bytes(), b"code").is_err());
        assert!(matches_sum_line(b"\xff\xfe", b"code").is_err());
    }
}

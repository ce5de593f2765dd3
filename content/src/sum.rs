//! The checksum line recorded beside a compile-cache entry
//! (`crc32:<hex> <length>\n`), and checking an entry against it.
//!
//! The line guards against accidents (a torn write, a truncated or
//! bit-flipped file), not against an attacker: whoever can write the
//! root-owned cache can write a matching line too. So it is CRC-32
//! (`crc32fast`, carry-less multiply: ~10 GB/s), not sha256: a Create
//! checks every byte of an entry before the code is mapped, and for an
//! 18 MB Python component's 35 MB of code sha256 took most of a cached
//! start (~90 ms). Lines written as `sha256:` by earlier versions are
//! still checked as such.

use sha2::{Digest as _, Sha256};
use std::io::Read;

/// The line recorded for `bytes`.
pub fn sum_line(bytes: &[u8]) -> String {
    format!("crc32:{:08x} {}\n", crc32fast::hash(bytes), bytes.len())
}

/// Whether `bytes` are what `recorded` (a [`sum_line`], as read back from
/// disk: any bytes) describes. Trailing whitespace is ignored; anything
/// else must match exactly.
pub fn matches_sum_line(recorded: &[u8], bytes: &[u8]) -> Result<(), String> {
    matches_sum_line_read(recorded, bytes).map_err(|e| e.to_string()).and_then(|r| r)
}

/// [`matches_sum_line`] of what `reader` yields, read in 64 KiB pieces
/// (an entry is never held in memory to be checked). The outer error is
/// the reader's.
pub fn matches_sum_line_read(recorded: &[u8], mut reader: impl Read) -> std::io::Result<Result<(), String>> {
    let recorded = String::from_utf8_lossy(recorded);
    let recorded = recorded.trim_end();
    let mut crc = crc32fast::Hasher::new();
    let mut sha = recorded.starts_with("sha256:").then(Sha256::new);
    let mut length = 0u64;
    let mut buffer = vec![0u8; 64 << 10];
    loop {
        let n = match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        match sha.as_mut() {
            Some(sha) => sha.update(&buffer[..n]),
            None => crc.update(&buffer[..n]),
        }
        length += n as u64;
    }
    let actual = match sha {
        Some(sha) => format!("sha256:{} {length}", hex::encode(sha.finalize())),
        None => format!("crc32:{:08x} {length}", crc.finalize()),
    };
    Ok(if recorded == actual {
        Ok(())
    } else {
        Err(format!("checksum mismatch: recorded `{recorded}`, found `{actual}`"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_matches_only_its_own_line() {
        let line = sum_line(b"code");
        assert!(line.starts_with("crc32:") && line.ends_with(" 4\n"), "{line}");
        assert!(matches_sum_line(line.as_bytes(), b"code").is_ok());
        assert!(matches_sum_line(line.trim_end().as_bytes(), b"code").is_ok(), "a missing newline is fine");
        assert!(matches_sum_line(line.as_bytes(), b"codf").is_err());
        assert!(matches_sum_line(line.replace(" 4", " 5").as_bytes(), b"code").is_err());
        assert!(matches_sum_line(b"\xff\xfe", b"code").is_err());
        assert!(matches!(matches_sum_line_read(line.as_bytes(), &b"code"[..]), Ok(Ok(()))));
    }

    #[test]
    fn lines_written_as_sha256_are_still_checked() {
        let old = format!("sha256:{} 4\n", hex::encode(Sha256::digest(b"code")));
        assert!(matches_sum_line(old.as_bytes(), b"code").is_ok());
        assert!(matches_sum_line(old.as_bytes(), b"codf").is_err());
    }
}

//! Parsing of human sizes (`64Mi`) and durations (`5s`) for CLI flags and annotations.

use std::time::Duration;

/// Bytes from `N`, `NKi|Mi|Gi|Ti` (powers of 1024) or `NK|M|G|T` (powers of 1000).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("invalid size `{text}`: expected a number with an optional unit like 64Mi"))?;
    let factor: u64 = match unit.trim() {
        "" | "B" => 1,
        "K" | "k" | "KB" => 1_000,
        "M" | "MB" => 1_000_000,
        "G" | "GB" => 1_000_000_000,
        "T" | "TB" => 1_000_000_000_000,
        "Ki" | "KiB" => 1 << 10,
        "Mi" | "MiB" => 1 << 20,
        "Gi" | "GiB" => 1 << 30,
        "Ti" | "TiB" => 1 << 40,
        other => return Err(format!("invalid size `{text}`: unknown unit `{other}` (use Ki, Mi, Gi, K, M, G)")),
    };
    number.checked_mul(factor).ok_or_else(|| format!("invalid size `{text}`: too large"))
}

/// A duration from `N` plus `ms`, `s`, `m` or `h` (`1.5s` allowed).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("invalid duration `{text}`: missing unit (ms, s, m, h)"))?;
    let (number, unit) = text.split_at(split);
    let number: f64 =
        number.parse().map_err(|_| format!("invalid duration `{text}`: expected a number with a unit like 5s"))?;
    let seconds = match unit {
        "ms" => number / 1e3,
        "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        other => return Err(format!("invalid duration `{text}`: unknown unit `{other}` (use ms, s, m, h)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("invalid duration `{text}`: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64Mi"), Ok(64 << 20));
        assert_eq!(parse_size("2Gi"), Ok(2 << 30));
        assert_eq!(parse_size("10M"), Ok(10_000_000));
        assert!(parse_size("12Q").unwrap_err().contains("unknown unit"));
        assert!(parse_size("Mi").is_err());
        assert!(parse_size("99999999999Ti").unwrap_err().contains("too large"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("5").unwrap_err().contains("missing unit"));
        assert!(parse_duration("5d").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("-1s").is_err());
    }
}

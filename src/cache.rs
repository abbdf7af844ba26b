//! The size of the last-level cache, which decides when outputs are written with non-temporal
//! stores.

use std::sync::OnceLock;

/// Assumed when the system does not say: a server L3 (one Zen 4 CCD, a mid-size Xeon).
const FALLBACK_BYTES: usize = 32 << 20;

/// Bytes of the largest cache CPU 0 reports (Linux sysfs), else [`FALLBACK_BYTES`]. Read once.
pub(crate) fn last_level_bytes() -> usize {
    static BYTES: OnceLock<usize> = OnceLock::new();
    *BYTES.get_or_init(|| read_sysfs().unwrap_or(FALLBACK_BYTES))
}

/// The size of the highest-level cache under `/sys/devices/system/cpu/cpu0/cache`.
fn read_sysfs() -> Option<usize> {
    let dir = std::fs::read_dir("/sys/devices/system/cpu/cpu0/cache").ok()?;
    dir.filter_map(|entry| {
        let path = entry.ok()?.path();
        let level: u32 = std::fs::read_to_string(path.join("level"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let size = parse_size(&std::fs::read_to_string(path.join("size")).ok()?)?;
        Some((level, size))
    })
    .max()
    .map(|(_, size)| size)
    .filter(|&size| size > 0)
}

/// Parses sysfs's cache size notation: `32768K`, `2M`, or plain bytes.
fn parse_size(text: &str) -> Option<usize> {
    let text = text.trim();
    let (digits, unit) = match text.as_bytes().last()? {
        b'K' | b'k' => (&text[..text.len() - 1], 1 << 10),
        b'M' | b'm' => (&text[..text.len() - 1], 1 << 20),
        b'G' | b'g' => (&text[..text.len() - 1], 1 << 30),
        _ => (text, 1),
    };
    digits.parse::<usize>().ok()?.checked_mul(unit)
}

/// Whether a call that reads and writes `footprint` bytes (input and output; once if in place)
/// should write its output with non-temporal stores: when that is at least three quarters of
/// the last-level cache (glibc's `memcpy` switches at the same share). Then the output would
/// not stay in the cache for its reader anyway, and a normal store first reads each line from
/// memory. Below that share, streaming loses when the caches are warm (the measurements:
/// `benches/results/tuning.md`, "cache::streams").
pub(crate) fn streams(footprint: usize) -> bool {
    footprint >= last_level_bytes() / 4 * 3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sysfs_sizes() {
        assert_eq!(parse_size("32768K\n"), Some(32 << 20));
        assert_eq!(parse_size("2M"), Some(2 << 20));
        assert_eq!(parse_size("1G"), Some(1 << 30));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("K"), None);
        assert_eq!(parse_size(""), None);
        assert_eq!(parse_size("12Q"), None);
    }

    #[test]
    fn last_level_cache_is_at_least_a_megabyte() {
        // Every CPU this crate targets has one; a parsing slip (bytes read as KiB) would not.
        let bytes = last_level_bytes();
        assert!((1 << 20..=4 << 30).contains(&bytes), "{bytes}");
    }

    #[test]
    fn streams_at_three_quarters_of_the_cache() {
        let llc = last_level_bytes();
        assert!(streams(llc));
        assert!(streams(llc / 4 * 3));
        assert!(!streams(llc / 4 * 3 - 1));
        assert!(!streams(llc / 2));
    }
}

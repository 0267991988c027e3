//! How much of a core's L1 data cache the convolution kernels plan to keep hot: the weight panel
//! slices (direct, same, blocked tiles) and padded planes (phase kernel) of one channel block.
//! Half the L1d, so the tiles' input and output streams keep the other half: 24 KB on a 48 KB L1
//! (the Intel Xeons the kernels were tuned on, bench/NOTES.md), 16 KB on a 32 KB one (the AMD
//! EPYCs of issue #10's machine kind, most older Intel cores).
//!
//! The budget only sets where channel blocks end; the tiles carry their accumulators across
//! blocks, so results do not depend on it (tested in each kernel against one whole block).

use std::sync::OnceLock;

/// Assumed when the CPU does not report its L1d size (the most common size on x86-64).
const FALLBACK_L1D: usize = 32 << 10;
/// L1d sizes believed (from CPUID or `ADVBN_CPU_L1D_KB`); anything outside is refused.
const PLAUSIBLE_L1D: std::ops::RangeInclusive<usize> = (8 << 10)..=(1 << 20);

/// Bytes of one channel block's panel slice or padded planes (half the L1d; see the module doc).
pub fn l1_budget() -> usize {
    #[cfg(test)]
    if let Some(bytes) = TEST_BUDGET.with(std::cell::Cell::get) {
        return bytes;
    }
    l1d_bytes() / 2
}

/// This core's L1 data cache in bytes: `ADVBN_CPU_L1D_KB` if set (to measure another machine's
/// blocking here), else CPUID's, else 32 KB.
pub fn l1d_bytes() -> usize {
    static L1D: OnceLock<usize> = OnceLock::new();
    *L1D.get_or_init(|| {
        let detected = detect_l1d().filter(|b| PLAUSIBLE_L1D.contains(b));
        let Ok(value) = std::env::var("ADVBN_CPU_L1D_KB") else { return detected.unwrap_or(FALLBACK_L1D) };
        match parse_kb(&value) {
            Some(bytes) => bytes,
            None => {
                let used = detected.unwrap_or(FALLBACK_L1D);
                eprintln!(
                    "advbn: ignoring ADVBN_CPU_L1D_KB={value:?}: not a whole number of KB from {} to {}; using {} KB",
                    PLAUSIBLE_L1D.start() >> 10,
                    PLAUSIBLE_L1D.end() >> 10,
                    used >> 10
                );
                used
            }
        }
    })
}

fn parse_kb(value: &str) -> Option<usize> {
    let bytes = value.trim().parse::<usize>().ok()?.checked_mul(1 << 10)?;
    PLAUSIBLE_L1D.contains(&bytes).then_some(bytes)
}

/// The level-1 data (or unified) cache from CPUID's cache descriptors: leaf 4 (Intel), leaf
/// 0x8000001D (AMD with topology extensions; the same layout), else AMD's leaf 0x80000005.
#[cfg(target_arch = "x86_64")]
fn detect_l1d() -> Option<usize> {
    use std::arch::x86_64::{__cpuid, __cpuid_count};
    let descriptors = |leaf: u32| {
        (0..16).map_while(move |sub| {
            let r = __cpuid_count(leaf, sub);
            let kind = r.eax & 0x1f; // 0: no more caches, 1: data, 2: instruction, 3: unified
            (kind != 0).then_some((kind, (r.eax >> 5) & 7, r))
        })
    };
    let level_one = |leaf: u32| {
        descriptors(leaf).find(|&(kind, level, _)| level == 1 && (kind == 1 || kind == 3)).map(|(_, _, r)| {
            let ways = ((r.ebx >> 22) & 0x3ff) as usize + 1;
            let partitions = ((r.ebx >> 12) & 0x3ff) as usize + 1;
            let line = (r.ebx & 0xfff) as usize + 1;
            ways * partitions * line * (r.ecx as usize + 1)
        })
    };
    let max_basic = __cpuid(0).eax;
    let max_extended = __cpuid(0x8000_0000).eax;
    let intel = (max_basic >= 4).then(|| level_one(4)).flatten();
    let amd = || (max_extended >= 0x8000_001d).then(|| level_one(0x8000_001d)).flatten();
    let amd_legacy = || (max_extended >= 0x8000_0005).then(|| (__cpuid(0x8000_0005).ecx >> 24) as usize * 1024).filter(|&b| b > 0);
    intel.or_else(amd).or_else(amd_legacy)
}

#[cfg(not(target_arch = "x86_64"))]
fn detect_l1d() -> Option<usize> {
    None
}

#[cfg(test)]
thread_local! {
    static TEST_BUDGET: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// Runs `f` with `l1_budget()` returning `bytes` on this thread (the kernels read it before they
/// fan out), so tests can compare blockings within one process.
#[cfg(test)]
pub fn with_l1_budget<T>(bytes: usize, f: impl FnOnce() -> T) -> T {
    let previous = TEST_BUDGET.with(|b| b.replace(Some(bytes)));
    let out = f();
    TEST_BUDGET.with(|b| b.set(previous));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_detected_l1d_is_plausible_and_the_budget_is_half_of_it() {
        let l1d = l1d_bytes();
        assert!(PLAUSIBLE_L1D.contains(&l1d), "{l1d} bytes");
        assert_eq!(l1_budget(), l1d / 2);
        #[cfg(target_arch = "x86_64")]
        if std::env::var_os("ADVBN_CPU_L1D_KB").is_none() {
            // Every x86-64 CPU of the last fifteen years reports it one way or another.
            assert_eq!(Some(l1d), detect_l1d());
        }
    }

    #[test]
    fn the_override_takes_whole_kb_in_range_only() {
        assert_eq!(parse_kb("32"), Some(32 << 10));
        assert_eq!(parse_kb(" 48 "), Some(48 << 10));
        for bad in ["", "32k", "-1", "4", "4096", "1.5", "99999999999999999999"] {
            assert_eq!(parse_kb(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_test_budget_is_scoped_to_the_closure() {
        let outside = l1_budget();
        assert_eq!(with_l1_budget(1000, l1_budget), 1000);
        assert_eq!(l1_budget(), outside);
    }
}

#![no_main]
//! The JPEG scan check (issue #14, item 4) on arbitrary bytes. It must not panic or hang; a scan
//! it finds cut short makes `decode_image` refuse the file; and when it finds every scan complete,
//! cutting any scan's entropy-coded data there (an end-of-image marker appended) must be caught.

use advbn_core::data::decode::decode_image;
use advbn_core::data::decode::jpeg_scan::{check, Verdict};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match check(data) {
        Verdict::Truncated(reason) => {
            assert!(reason.starts_with("truncated JPEG: scan data ends after "), "{reason}");
            assert!(decode_image(data, "fuzz").is_err(), "decoded although {reason}");
        }
        Verdict::Complete(scans) => {
            let total: usize = scans.iter().map(|r| r.len()).sum();
            assert!(scans.iter().all(|r| !r.is_empty() && r.end <= data.len()), "{scans:?}");
            let hash = data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
            for pick in [hash, hash >> 32, 0] {
                let (mut offset, mut at) = ((pick % total as u64) as usize, 0);
                for r in &scans {
                    if offset < r.len() {
                        at = r.start + offset;
                        break;
                    }
                    offset -= r.len();
                }
                let mut cut = data[..at].to_vec();
                while cut.last() == Some(&0xFF) {
                    cut.pop();
                }
                cut.extend_from_slice(&[0xFF, 0xD9]);
                assert!(matches!(check(&cut), Verdict::Truncated(_)), "cut at {at} (scans {scans:?}) not caught: {:?}", check(&cut));
            }
        }
        Verdict::NotUnderstood => {}
    }
});

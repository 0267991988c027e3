//! The 19 corruptions at every severity on small images the input fills, including sizes below
//! the documented minimum. Must return Ok or an error, never panic or produce NaN.
#![no_main]

use advbn_core::data::corruptions::{corrupt, Corruption};
use advbn_core::data::Image;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let (w, h, c) = (data[0] as usize % 48 + 1, data[1] as usize % 48 + 1, [1, 3][data[2] as usize % 2]);
    let pixels: Vec<u8> = data[4..].iter().copied().cycle().take(w * h * c).collect();
    if pixels.len() != w * h * c {
        return;
    }
    let Ok(image) = Image::from_u8(w, h, c, &pixels) else { return };
    let corruption = Corruption::ALL[data[3] as usize % Corruption::ALL.len()];
    let severity = data[3] / 19 % 7; // 0 and 6 are out of range
    if let Ok(out) = corrupt(&image, corruption, severity, u64::from(data[0])) {
        assert!(out.data.iter().all(|v| v.is_finite()), "{corruption:?} at {severity} produced a non-finite pixel");
    }
});

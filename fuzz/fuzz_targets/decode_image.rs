#![no_main]
//! `decode_image` on arbitrary bytes (JPEG / PNG sniffed from the content).

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(image) = advbn_core::data::decode::decode_image(data, "fuzz") {
        assert!(image.width > 0 && image.height > 0);
        assert_eq!(image.data.len(), image.width * image.height * image.channels);
    }
});

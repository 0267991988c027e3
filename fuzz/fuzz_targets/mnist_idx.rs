#![no_main]
//! `Mnist::from_bytes`: the input is split into an images file and a labels file at a
//! position given by its first two bytes; every record of an accepted pair is loaded.

use advbn_core::data::sources::{Mnist, Source};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let split = (u16::from_le_bytes([data[0], data[1]]) as usize).min(data.len() - 2);
    let (images, labels) = data[2..].split_at(split);
    if let Ok(mnist) = Mnist::from_bytes(images, labels, "fuzz") {
        for i in 0..mnist.len().min(64) {
            mnist.load(i).expect("an accepted record loads");
        }
        assert!(mnist.load(mnist.len()).is_err());
    }
});

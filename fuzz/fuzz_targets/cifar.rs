#![no_main]
//! `Cifar10::from_batches` on arbitrary bytes as one batch file (it reads paths); every
//! record of an accepted file is loaded and described.

use advbn_core::data::sources::{Cifar10, Source};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = advbn_fuzz::scratch("batch.bin", data);
    if let Ok(cifar) = Cifar10::from_batches(&[path]) {
        for i in 0..cifar.len().min(64) {
            cifar.load(i).expect("an accepted record loads");
            let _ = cifar.describe(i);
        }
        assert!(cifar.load(cifar.len()).is_err());
        let _ = cifar.describe(cifar.len());
    }
});

#![no_main]
//! `load_checkpoint` on arbitrary bytes, into a tiny model and an SGD-momentum trainer (format 2:
//! header, tensor list and CRC-32 checked before anything is restored).

use std::cell::RefCell;

use advbn_core::models::ResNet;
use advbn_core::train::{load_checkpoint, Method, TrainConfig, Trainer};
use libfuzzer_sys::fuzz_target;

thread_local! {
    static STATE: RefCell<(ResNet, Trainer)> = RefCell::new({
        let mut model = advbn_fuzz::tiny_model();
        let trainer = Trainer::new(&mut model, TrainConfig::reference(Method::AdvBn, 2)).expect("trainer");
        (model, trainer)
    });
}

fuzz_target!(|data: &[u8]| {
    let path = advbn_fuzz::scratch("ckpt.safetensors", data);
    STATE.with(|s| {
        let (model, trainer) = &mut *s.borrow_mut();
        let _ = load_checkpoint(&path, model, trainer, "{}");
    });
});

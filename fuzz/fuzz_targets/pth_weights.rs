#![no_main]
//! `ResNet::load_weights` on arbitrary bytes saved as `.pth` (candle_core::pickle path).

use std::cell::RefCell;

use advbn_core::models::ResNet;
use libfuzzer_sys::fuzz_target;

thread_local! {
    static MODEL: RefCell<ResNet> = RefCell::new(advbn_fuzz::tiny_model());
}

fuzz_target!(|data: &[u8]| {
    let path = advbn_fuzz::scratch("w.pth", data);
    let allow_new_head = data.len() % 2 == 0;
    MODEL.with(|m| {
        let _ = m.borrow_mut().load_weights(&path, allow_new_head);
    });
});

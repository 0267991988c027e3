//! fromArrays' core: an in-memory dataset from pixels, labels, a shape and a layout the input
//! chooses. Must return Ok or an error, never panic.
#![no_main]

use advbn_core::data::{ArrayDataset, ImageLayout, PixelData};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 6 {
        return;
    }
    let shape: Vec<usize> = data[..4].iter().map(|&b| b as usize % 5).collect();
    let layout = if data[4] & 1 == 0 { ImageLayout::Nchw } else { ImageLayout::Nhwc };
    let labels: Vec<i32> = data[5..].iter().take(shape[0].max(1)).map(|&b| b as i32 - 2).collect();
    let pixels = &data[5..];
    let floats: Vec<f32> = pixels.iter().map(|&b| if b == 255 { f32::NAN } else { b as f32 / 10.0 }).collect();
    let classes = (data[4] >> 1) as usize % 6;
    let num_classes = if classes == 0 { None } else { Some(classes) };
    let _ = ArrayDataset::new(PixelData::U8(pixels), &labels, &shape, layout, num_classes, None);
    let _ = ArrayDataset::new(PixelData::F32(&floats), &labels, &shape, layout, num_classes, None);
});

//! Writes the small seed corpus under fuzz/seeds/<target>/ (run from fuzz/):
//!     cargo run --release --example make_seeds
//! Tiny generated files plus copies of crates/advbn-core/tests/fixtures/{tiny_resnet,malicious}.pth
//! and of the JPEG fixtures in crates/advbn-core/tests/fixtures/jpeg/.

use std::io::Cursor;
use std::path::Path;

use advbn_core::train::{save_checkpoint, CheckpointRecord, Method, RunPosition, TrainConfig, Trainer};
use image::{ImageFormat, RgbImage};

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new("seeds").join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

fn encode(img: image::DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

fn main() {
    let scratch = std::env::temp_dir().join(format!("advbn-seeds-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();

    // Weights and a checkpoint of the model the targets load into.
    let mut model = advbn_fuzz::tiny_model();
    let w = scratch.join("w.safetensors");
    model.save_weights(&w).unwrap();
    write("safetensors_weights", "tiny.safetensors", &std::fs::read(&w).unwrap());
    let trainer = Trainer::new(&mut model, TrainConfig::reference(Method::AdvBn, 2)).unwrap();
    let c = scratch.join("c.safetensors");
    let record = CheckpointRecord { position: RunPosition { epoch: 1, next_batch: 0 }, settings: "{}", record: r#"{"history":[]}"# };
    save_checkpoint(&c, &model, &trainer, &record).unwrap();
    write("checkpoint", "tiny.ckpt", &std::fs::read(&c).unwrap());

    let fixtures = Path::new("../crates/advbn-core/tests/fixtures");
    for name in ["tiny_resnet.pth", "malicious.pth"] {
        write("pth_weights", name, &std::fs::read(fixtures.join(name)).unwrap());
    }

    // Images: RGB PNG, 16-bit gray PNG, RGBA PNG, baseline JPEG.
    let rgb = RgbImage::from_fn(5, 3, |x, y| image::Rgb([(x * 40) as u8, (y * 70) as u8, 128]));
    write("decode_image", "rgb.png", &encode(rgb.clone().into(), ImageFormat::Png));
    let gray16 = image::ImageBuffer::<image::Luma<u16>, _>::from_fn(3, 4, |x, y| image::Luma([(x * 9000 + y * 3000) as u16]));
    write("decode_image", "gray16.png", &encode(gray16.into(), ImageFormat::Png));
    let rgba = image::RgbaImage::from_fn(2, 2, |x, _| image::Rgba([200, 10, 10, (x * 255) as u8]));
    write("decode_image", "rgba.png", &encode(rgba.into(), ImageFormat::Png));
    let big = RgbImage::from_fn(16, 16, |x, y| image::Rgb([(x * 16) as u8, (y * 16) as u8, ((x ^ y) * 16) as u8]));
    let jpeg = encode(big.into(), ImageFormat::Jpeg);
    write("decode_image", "rgb.jpg", &jpeg);
    // The scan check: that JPEG and the progressive / restart-interval test fixtures.
    write("jpeg_scan", "baseline_16x16.jpg", &jpeg);
    for entry in std::fs::read_dir(fixtures.join("jpeg")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "jpg") {
            write("jpeg_scan", &path.file_name().unwrap().to_string_lossy(), &std::fs::read(&path).unwrap());
        }
    }

    // MNIST: u16 LE split position, then 2 images of 4x3 and their labels.
    let mut images = vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 4, 0, 0, 0, 3];
    images.extend((0..24).map(|i| (i * 10) as u8));
    let labels = [0, 0, 8, 1, 0, 0, 0, 2, 7, 3];
    let mut mnist = (images.len() as u16).to_le_bytes().to_vec();
    mnist.extend(&images);
    mnist.extend(labels);
    write("mnist_idx", "two.idx", &mnist);

    // CIFAR-10: one record, label 6.
    let mut record = vec![6u8];
    record.extend((0..3072).map(|i| (i % 251) as u8));
    write("cifar", "one.bin", &record);

    std::fs::remove_dir_all(&scratch).unwrap();
}

//! Image pipeline: decoding, sources (folder, MNIST IDX, CIFAR-10), transforms, the loader.
//! All data is written by the tests into fresh temp folders.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use advbn_core::data::transforms::{resize_region, sample_rng};
use advbn_core::data::{
    decode_image, epoch_order, BadSample, Batch, Cifar10, Image, ImageFolder, Loader, LoaderConfig, Mnist, Pass, Pipeline, Source, Transform, IMAGENET_MEAN,
    IMAGENET_STD,
};

/// A fresh folder under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let dir = std::env::temp_dir().join(format!("advbn-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn rgb(w: u32, h: u32, seed: u32) -> image::RgbImage {
    image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 7 + seed * 40) as u8, (y * 11 + seed) as u8, ((x ^ y) * 5) as u8]))
}

fn write(path: &Path, img: &image::RgbImage, format: image::ImageFormat) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    img.save_with_format(path, format).unwrap();
}

fn jpeg_bytes(img: &image::RgbImage) -> Vec<u8> {
    let mut buf = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut buf), image::ImageFormat::Jpeg).unwrap();
    buf
}

/// Classes "cat", "ant", "bee" (created in that order) with PNG and JPEG files of several sizes,
/// a nested file, and files the folder source must ignore.
fn three_class_folder(dir: &Path) {
    use image::ImageFormat::{Jpeg, Png};
    for (c, class) in ["cat", "ant", "bee"].iter().enumerate() {
        for i in 0..4u32 {
            let (ext, fmt) = if i % 2 == 0 { ("png", Png) } else { ("JPG", Jpeg) };
            write(&dir.join(class).join(format!("img{i}.{ext}")), &rgb(20 + i * 3, 18 + c as u32, i + c as u32), fmt);
        }
        std::fs::write(dir.join(class).join("notes.txt"), "not an image").unwrap();
        write(&dir.join(class).join(".hidden.png"), &rgb(8, 8, 0), Png);
    }
    write(&dir.join("ant/deeper/nested.png"), &rgb(30, 24, 9), image::ImageFormat::Png);
}

fn train_pipeline(size: usize) -> Arc<Pipeline> {
    let transforms = vec![Transform::random_resized_crop(size), Transform::HorizontalFlip(0.5)];
    Arc::new(Pipeline::new(transforms, Some((IMAGENET_MEAN.to_vec(), IMAGENET_STD.to_vec()))).unwrap())
}

fn config(batch_size: usize, threads: usize, pipeline: Arc<Pipeline>) -> LoaderConfig {
    LoaderConfig { batch_size, shuffle: true, seed: 5, threads, prefetch: 2, pipeline, ..LoaderConfig::default() }
}

fn all_batches(loader: &Loader, epoch: u64) -> Vec<Batch> {
    loader.epoch(epoch).map(|b| b.unwrap()).collect()
}

fn err_text<T>(r: advbn_core::error::Result<T>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn image_folder_classes_labels_and_deterministic_batches() {
    let tmp = TempDir::new("folder");
    three_class_folder(&tmp.0);
    let folder = ImageFolder::new(&tmp.0, None).unwrap();
    assert_eq!(folder.class_names(), ["ant", "bee", "cat"]);
    assert_eq!(folder.len(), 13);
    for (path, label) in folder.samples() {
        let class = path.strip_prefix(&tmp.0).unwrap().components().next().unwrap();
        assert_eq!(folder.class_names()[*label as usize], class.as_os_str().to_str().unwrap());
    }
    assert!(folder.samples()[..5].iter().any(|(p, _)| p.ends_with("deeper/nested.png")));
    let given = ImageFolder::new(&tmp.0, Some(vec!["cat".into(), "ant".into()])).unwrap();
    assert_eq!((given.len(), given.samples()[0].1, given.samples()[4].1), (9, 0, 1));

    let source: Arc<dyn Source> = Arc::new(folder);
    let reference = all_batches(&Loader::new(source.clone(), config(4, 1, train_pipeline(16))).unwrap(), 3);
    assert_eq!(reference.iter().map(Batch::len).collect::<Vec<_>>(), [4, 4, 4, 1]);
    assert_eq!((reference[0].channels, reference[0].height, reference[0].width), (3, 16, 16));
    let order = epoch_order(13, true, 5, 3);
    let labels: Vec<u32> = reference.iter().flat_map(|b| b.labels.clone()).collect();
    let expected: Vec<u32> = order.iter().map(|&i| source.load(i as usize).unwrap().1).collect();
    assert_eq!(labels, expected);
    for threads in [2, 4] {
        let loader = Loader::new(source.clone(), config(4, threads, train_pipeline(16))).unwrap();
        assert_eq!(all_batches(&loader, 3), reference, "threads = {threads}");
    }
    let other_epoch = all_batches(&Loader::new(source.clone(), config(4, 2, train_pipeline(16))).unwrap(), 4);
    assert_ne!(other_epoch, reference);
    let dropped = Loader::new(source, LoaderConfig { drop_last: true, ..config(4, 2, train_pipeline(16)) }).unwrap();
    assert_eq!(dropped.num_batches(), 3);
    assert_eq!(dropped.epoch(0).count(), 3);
}

#[test]
fn folder_errors_name_the_folder() {
    let tmp = TempDir::new("folder-errors");
    assert!(err_text(ImageFolder::new(&tmp.0, None)).contains("no class folders"));
    write(&tmp.0.join("a/x.png"), &rgb(4, 4, 0), image::ImageFormat::Png);
    std::fs::create_dir_all(tmp.0.join("b")).unwrap();
    std::fs::write(tmp.0.join("b/readme.md"), "x").unwrap();
    let e = err_text(ImageFolder::new(&tmp.0, None));
    assert!(e.contains(&tmp.0.join("b").display().to_string()) && e.contains("no .jpg"), "{e}");
    let e = err_text(ImageFolder::new(&tmp.0, Some(vec!["a".into(), "zebra".into()])));
    assert!(e.contains("zebra"), "{e}");
}

#[test]
fn bad_files_error_or_are_skipped_by_name() {
    let tmp = TempDir::new("bad-files");
    for i in 0..6u32 {
        write(&tmp.0.join(format!("c{}/f{i}.jpg", i % 2)), &rgb(12, 12, i), image::ImageFormat::Jpeg);
    }
    let full = jpeg_bytes(&rgb(40, 40, 3));
    std::fs::write(tmp.0.join("c1/truncated.jpg"), &full[..full.len() * 2 / 3]).unwrap();
    let e = err_text(decode_image(&full[..full.len() * 2 / 3], "t.jpg"));
    assert!(e.contains("t.jpg") && e.contains("truncated"), "{e}");

    let folder = Arc::new(ImageFolder::new(&tmp.0, None).unwrap());
    let bad = folder.samples().iter().position(|(p, _)| p.ends_with("truncated.jpg")).unwrap();
    let pipeline = Arc::new(Pipeline::new(vec![Transform::CenterCrop(10)], None).unwrap());
    let loader = Loader::new(folder.clone(), LoaderConfig { shuffle: false, ..config(3, 2, pipeline.clone()) }).unwrap();
    let results: Vec<_> = loader.epoch(0).collect();
    let e = results.iter().find_map(|r| r.as_ref().err()).expect("an error").to_string();
    assert!(e.contains("truncated.jpg") && e.contains("truncated JPEG"), "{e}");
    assert!(results.last().unwrap().is_err(), "the epoch ends at the error");

    let skip = LoaderConfig { on_bad_sample: BadSample::Skip, ..config(3, 2, pipeline) };
    let batches = all_batches(&Loader::new(folder.clone(), skip).unwrap(), 1);
    let skipped: Vec<&String> = batches.iter().flat_map(|b| &b.skipped).collect();
    assert_eq!(skipped.len(), 1);
    assert!(skipped[0].contains("truncated.jpg"));
    let labels: Vec<u32> = batches.iter().flat_map(|b| b.labels.clone()).collect();
    let expected: Vec<u32> = epoch_order(7, true, 5, 1).iter().filter(|&&i| i as usize != bad).map(|&i| folder.samples()[i as usize].1).collect();
    assert_eq!(labels, expected);
    assert_eq!(batches.iter().map(Batch::len).sum::<usize>(), 6);

    std::fs::write(tmp.0.join("c0/x.jpg"), "this is a text file").unwrap();
    let folder = ImageFolder::new(&tmp.0, None).unwrap();
    let i = folder.samples().iter().position(|(p, _)| p.ends_with("x.jpg")).unwrap();
    let e = err_text(folder.load(i));
    assert!(e.contains("x.jpg") && e.contains("not a JPEG or PNG"), "{e}");
}

#[test]
fn mixed_sizes_or_channels_without_a_resize_fail_clearly() {
    let tmp = TempDir::new("mixed");
    write(&tmp.0.join("a/big.png"), &rgb(20, 10, 0), image::ImageFormat::Png);
    write(&tmp.0.join("a/small.png"), &rgb(8, 8, 0), image::ImageFormat::Png);
    let source = Arc::new(ImageFolder::new(&tmp.0, None).unwrap());
    let loader = Loader::new(source.clone(), LoaderConfig { shuffle: false, ..config(2, 1, Arc::default()) }).unwrap();
    let e = err_text(loader.epoch(0).next().unwrap());
    assert!(e.contains("20x10x3") && e.contains("8x8x3") && e.contains("small.png"), "{e}");
    let fixed = Arc::new(Pipeline::new(vec![Transform::Resize(6, 7)], None).unwrap());
    let batch = Loader::new(source, config(2, 1, fixed)).unwrap().epoch(0).next().unwrap().unwrap();
    assert_eq!((batch.len(), batch.height, batch.width), (2, 6, 7));

    image::GrayImage::from_pixel(8, 8, image::Luma([9])).save(tmp.0.join("a/gray.png")).unwrap();
    let source = Arc::new(ImageFolder::new(&tmp.0, None).unwrap());
    let resize = Arc::new(Pipeline::new(vec![Transform::Resize(6, 6)], None).unwrap());
    let loader = Loader::new(source.clone(), LoaderConfig { shuffle: false, ..config(3, 1, resize) }).unwrap();
    let e = err_text(loader.epoch(0).next().unwrap());
    assert!(e.contains("6x6x1") && e.contains("6x6x3") && e.contains("Grayscale(3)"), "{e}");
    let to_rgb = Arc::new(Pipeline::new(vec![Transform::Resize(6, 6), Transform::Grayscale(3)], None).unwrap());
    let batch = Loader::new(source, config(3, 1, to_rgb)).unwrap().epoch(0).next().unwrap().unwrap();
    assert_eq!((batch.len(), batch.channels), (3, 3));
}

#[test]
fn decode_handles_gray_alpha_and_16_bit() {
    let mut buf = Vec::new();
    let rgba = image::RgbaImage::from_pixel(3, 2, image::Rgba([255, 0, 51, 7]));
    rgba.write_to(&mut std::io::Cursor::new(&mut buf), image::ImageFormat::Png).unwrap();
    let img = decode_image(&buf, "rgba.png").unwrap();
    assert_eq!((img.width, img.height, img.channels), (3, 2, 3));
    assert_eq!(&img.data[..3], &[1.0, 0.0, 0.2]);

    let mut buf = Vec::new();
    let gray16 = image::ImageBuffer::<image::Luma<u16>, _>::from_pixel(2, 2, image::Luma([65535u16]));
    gray16.write_to(&mut std::io::Cursor::new(&mut buf), image::ImageFormat::Png).unwrap();
    let img = decode_image(&buf, "g16.png").unwrap();
    assert_eq!((img.channels, img.data[0]), (1, 1.0));

    let e = err_text(decode_image(b"", "empty.png"));
    assert!(e.contains("empty.png") && e.contains("empty"), "{e}");
    let e = err_text(decode_image(b"GIF89a\x01\x00\x01\x00", "anim.gif"));
    assert!(e.contains("anim.gif"), "{e}");
}

fn idx_images(n: u32, magic: u32) -> Vec<u8> {
    let mut b: Vec<u8> = [magic, n, 28, 28].iter().flat_map(|v| v.to_be_bytes()).collect();
    b.extend((0..n * 784).map(|i| (i % 251) as u8));
    b
}

fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut b: Vec<u8> = [2049u32, labels.len() as u32].iter().flat_map(|v| v.to_be_bytes()).collect();
    b.extend_from_slice(labels);
    b
}

#[test]
fn mnist_idx_reads_back_and_checks_its_files() {
    let tmp = TempDir::new("mnist");
    let (images, labels) = (tmp.0.join("train-images-idx3-ubyte"), tmp.0.join("train-labels-idx1-ubyte"));
    std::fs::write(&images, idx_images(3, 2051)).unwrap();
    std::fs::write(&labels, idx_labels(&[7, 0, 9])).unwrap();
    let mnist = Mnist::from_idx(&images, &labels).unwrap();
    assert_eq!((mnist.len(), mnist.num_classes()), (3, 10));
    let (img, label) = mnist.load(1).unwrap();
    assert_eq!((img.width, img.height, img.channels, label), (28, 28, 1, 0));
    assert_eq!(img.to_u8()[0], (784 % 251) as u8);
    assert!(mnist.describe(2).contains("train-images-idx3-ubyte"));

    std::fs::write(&images, idx_images(3, 2049)).unwrap();
    let e = err_text(Mnist::from_idx(&images, &labels));
    assert!(e.contains("train-images-idx3-ubyte") && e.contains("magic"), "{e}");
    let e = err_text(Mnist::from_bytes(&idx_images(3, 2051), &idx_labels(&[1, 2]), "mem"));
    assert!(e.contains("2 labels for 3 images"), "{e}");
    let mut short = idx_images(3, 2051);
    short.pop();
    assert!(err_text(Mnist::from_bytes(&short, &idx_labels(&[1, 2, 3]), "mem")).contains("bytes"));
    assert!(err_text(Mnist::from_bytes(&idx_images(1, 2051), &idx_labels(&[10]), "mem")).contains("label 10"));
}

#[test]
fn cifar10_records_and_length_check() {
    let tmp = TempDir::new("cifar");
    let record = |label: u8, r: u8| -> Vec<u8> {
        let mut rec = vec![label];
        rec.extend(std::iter::repeat_n(r, 1024).chain(std::iter::repeat_n(1, 1024)).chain(std::iter::repeat_n(2, 1024)));
        rec
    };
    let (a, b) = (tmp.0.join("data_batch_1.bin"), tmp.0.join("data_batch_2.bin"));
    std::fs::write(&a, [record(3, 200), record(9, 0)].concat()).unwrap();
    std::fs::write(&b, record(1, 50)).unwrap();
    let cifar = Cifar10::from_batches(&[a.clone(), b.clone()]).unwrap();
    assert_eq!((cifar.len(), cifar.class_names()[3].as_str()), (3, "cat"));
    let (img, label) = cifar.load(2).unwrap();
    assert_eq!((img.width, img.channels, label), (32, 3, 1));
    assert_eq!(&img.to_u8()[..3], &[50, 1, 2]);
    assert!(cifar.describe(2).ends_with("data_batch_2.bin record 0"));

    std::fs::write(&b, &record(1, 50)[..3000]).unwrap();
    let e = err_text(Cifar10::from_batches(&[a.clone(), b]));
    assert!(e.contains("data_batch_2.bin") && e.contains("3073"), "{e}");
    std::fs::write(&a, record(10, 0)).unwrap();
    assert!(err_text(Cifar10::from_batches(&[a])).contains("label 10"));
}

fn ramp(w: usize, h: usize, c: usize) -> Image {
    Image::new(w, h, c, (0..w * h * c).map(|i| i as f32 / (w * h * c) as f32).collect()).unwrap()
}

#[test]
fn transforms_shapes_mirror_and_seeds() {
    let mut rng = sample_rng(1, 0, 0);
    let run = |t: Transform, img: &Image, rng: &mut _| Pipeline::new(vec![t], None).unwrap().apply(img.clone(), rng).unwrap();
    let img = ramp(40, 30, 3);
    let r = run(Transform::ResizeShorter(15), &img, &mut rng);
    assert_eq!((r.width, r.height), (20, 15));
    let r = run(Transform::Resize(7, 9), &img, &mut rng);
    assert_eq!((r.width, r.height, r.channels), (9, 7, 3));
    let c = run(Transform::CenterCrop(10), &img, &mut rng);
    assert_eq!((c.width, c.height), (10, 10));
    assert_eq!(c.get(0, 0, 1), img.get(15, 10, 1));
    let padded = run(Transform::CenterCrop(44), &img, &mut rng);
    assert_eq!((padded.get(0, 0, 0), padded.get(2, 7, 2)), (0.0, img.get(0, 0, 2)));

    let flipped = run(Transform::HorizontalFlip(1.0), &img, &mut rng);
    for (x, y, ch) in [(0, 0, 0), (3, 5, 2), (39, 29, 1)] {
        assert_eq!(flipped.get(x, y, ch), img.get(39 - x, y, ch));
    }
    assert_eq!(run(Transform::HorizontalFlip(0.0), &img, &mut rng), img);
    let gray = run(Transform::Grayscale(1), &img, &mut rng);
    assert!((gray.data[1] - (img.data[3] * 0.299 + img.data[4] * 0.587 + img.data[5] * 0.114)).abs() < 1e-6);

    let rrc = Pipeline::new(vec![Transform::random_resized_crop(12)], None).unwrap();
    let a = rrc.apply(img.clone(), &mut sample_rng(9, 2, 17)).unwrap();
    assert_eq!((a.width, a.height), (12, 12));
    assert_eq!(a, rrc.apply(img.clone(), &mut sample_rng(9, 2, 17)).unwrap());
    assert_ne!(a, rrc.apply(img.clone(), &mut sample_rng(9, 2, 18)).unwrap());
    assert_ne!(a, rrc.apply(img.clone(), &mut sample_rng(9, 3, 17)).unwrap());
    assert!(Pipeline::new(vec![Transform::RandomResizedCrop { size: 8, scale: (0.5, 0.1), ratio: (1.0, 1.0) }], None).is_err());
    assert!(Pipeline::new(vec![Transform::HorizontalFlip(1.5)], None).is_err());
}

#[test]
fn resize_is_antialiased_bilinear_like_pil() {
    // PIL bilinear, 4 -> 2: triangle filter of support 2, weights (.75, .75, .25)/1.75 at x = 0..3.
    let row = Image::new(4, 1, 1, vec![0.0, 1.0, 2.0, 3.0]).unwrap();
    let r = resize_region(&row, (0, 0, 4, 1), 2, 1);
    assert!((r.data[0] - 1.25 / 1.75).abs() < 1e-6 && (r.data[1] - 4.0 / 1.75).abs() < 1e-6, "{:?}", r.data);
    let checker = Image::new(8, 8, 1, (0..64).map(|i| ((i % 8 + i / 8) % 2) as f32).collect()).unwrap();
    let small = resize_region(&checker, (0, 0, 8, 8), 2, 2);
    assert!(small.data.iter().all(|v| (v - 0.5).abs() < 0.02), "{:?}", small.data);
    let flat = Image::filled(5, 3, 3, 0.25);
    assert!(resize_region(&flat, (1, 0, 4, 3), 11, 7).data.iter().all(|v| (v - 0.25).abs() < 1e-6));
    let same = ramp(6, 4, 3);
    let id = resize_region(&same, (0, 0, 6, 4), 6, 4);
    assert!(id.data.iter().zip(&same.data).all(|(a, b)| (a - b).abs() < 1e-6));
}

#[test]
fn normalize_values() {
    let p = Pipeline::new(vec![], Some((IMAGENET_MEAN.to_vec(), IMAGENET_STD.to_vec()))).unwrap();
    let img = Image::new(2, 1, 3, vec![0.485, 0.0, 1.0, 0.0, 0.456, 0.406]).unwrap();
    let chw = p.to_chw_normalized(&img).unwrap();
    let expect = [0.0, -0.485 / 0.229, -0.456 / 0.224, 0.0, 0.594 / 0.225, 0.0];
    assert!(chw.iter().zip(expect).all(|(a, b)| (a - b).abs() < 1e-5), "{chw:?}");
    assert!(err_text(p.to_chw_normalized(&Image::filled(2, 2, 1, 0.0))).contains("channels"));
    assert!(Pipeline::new(vec![], Some((vec![0.5], vec![0.0]))).is_err());
}

/// A source whose samples take a while, to check that dropping the iterator returns promptly.
struct Slow;

impl Source for Slow {
    fn len(&self) -> usize {
        10_000
    }
    fn num_classes(&self) -> usize {
        1
    }
    fn class_names(&self) -> Vec<String> {
        vec!["x".into()]
    }
    fn load(&self, _: usize) -> advbn_core::error::Result<(Image, u32)> {
        std::thread::sleep(Duration::from_millis(5));
        Ok((Image::filled(4, 4, 3, 0.5), 0))
    }
    fn describe(&self, index: usize) -> String {
        format!("slow {index}")
    }
}

#[test]
fn dropping_the_iterator_mid_epoch_stops_the_workers() {
    let loader = Loader::new(Arc::new(Slow), LoaderConfig { batch_size: 64, threads: 4, prefetch: 4, ..LoaderConfig::default() }).unwrap();
    let mut epoch = loader.epoch(0);
    assert_eq!(epoch.next().unwrap().unwrap().len(), 64);
    let start = Instant::now();
    drop(epoch);
    assert!(start.elapsed() < Duration::from_millis(500), "drop took {:?}", start.elapsed());
    // A panicking custom transform is an error for its batch, not a hang.
    let panics = Transform::Custom(Arc::new(|_: &Image, _: &mut _| panic!("boom")));
    let config = LoaderConfig { batch_size: 2, threads: 2, pipeline: Arc::new(Pipeline::new(vec![panics], None).unwrap()), ..LoaderConfig::default() };
    let e = err_text(Loader::new(Arc::new(Slow), config).unwrap().epoch(0).next().unwrap());
    assert!(e.contains("panicked"), "{e}");
}

/// Samples whose index is in `bad` fail to load.
struct Flaky {
    len: usize,
    bad: Vec<usize>,
}

impl Source for Flaky {
    fn len(&self) -> usize {
        self.len
    }
    fn num_classes(&self) -> usize {
        1
    }
    fn class_names(&self) -> Vec<String> {
        vec!["x".into()]
    }
    fn load(&self, index: usize) -> advbn_core::error::Result<(Image, u32)> {
        if self.bad.contains(&index) {
            return Err(advbn_core::Error::invalid_data(format!("sample {index} is broken")));
        }
        Ok((Image::filled(2, 2, 1, index as f32 / 10.0), 0))
    }
    fn describe(&self, index: usize) -> String {
        format!("flaky {index}")
    }
}

fn skip_loader(len: usize, bad: &[usize]) -> Loader {
    let config = LoaderConfig { batch_size: 2, shuffle: false, threads: 2, on_bad_sample: BadSample::Skip, ..LoaderConfig::default() };
    Loader::new(Arc::new(Flaky { len, bad: bad.to_vec() }), config).unwrap()
}

#[test]
fn a_pass_folds_batches_of_skipped_samples_into_their_neighbours() {
    // Batches of 2 over 10 samples: [0 1] all bad, [2 3] ok, [4 5] one bad, [6 7] ok, [8 9] all bad.
    let mut pass = Pass::new(skip_loader(10, &[0, 1, 5, 8, 9]).epoch(0));
    let mut seen = Vec::new();
    while let Some((batch, skipped)) = pass.next_batch().unwrap() {
        let skipped: Vec<usize> = skipped.iter().map(|s| s.split(':').next().unwrap().trim_start_matches("flaky ").parse().unwrap()).collect();
        seen.push((batch.len(), skipped));
    }
    // The leading empty batch joins the first real one; the trailing one is reported by the
    // look-ahead with the last real batch; nothing is lost or counted twice.
    assert_eq!(seen, vec![(2, vec![0, 1]), (1, vec![5]), (2, vec![8, 9])]);
    assert!(pass.next_batch().unwrap().is_none(), "the pass stays over");
    // Every sample bad: an error naming the first one, not an empty pass.
    let e = err_text(Pass::new(skip_loader(4, &[0, 1, 2, 3]).epoch(0)).next_batch());
    assert!(e.contains("every sample of this pass was skipped") && e.contains("flaky 0"), "{e}");
}

//! Issue 14, item 4: a JPEG cut in the middle of its entropy-coded data with an end-of-image
//! marker appended used to decode silently (zune-jpeg fills the rest with zero bits). The scan
//! check in `data::decode::jpeg_scan` refuses it by name and reason; valid JPEGs of every kind pass and
//! decode exactly as before. The progressive and restart-interval fixtures in
//! tests/fixtures/jpeg were made by its make.sh (libjpeg-turbo's cjpeg).

use std::ops::Range;
use std::path::Path;

use advbn_core::data::decode::decode_image;
use advbn_core::data::decode::jpeg_scan::missing_scan_data;
use image::codecs::jpeg::JpegEncoder;
use image::ExtendedColorType;

fn encoded(w: u32, h: u32, gray: bool, quality: u8) -> Vec<u8> {
    let channels = if gray { 1 } else { 3 };
    let pixels: Vec<u8> = (0..w * h * channels).map(|i| (((i * 37 + (i / (w * channels)) * 11) % 251) ^ ((i % 7) * 9)) as u8).collect();
    let mut out = Vec::new();
    let color = if gray { ExtendedColorType::L8 } else { ExtendedColorType::Rgb8 };
    JpegEncoder::new_with_quality(&mut out, quality).encode(&pixels, w, h, color).unwrap();
    out
}

fn fixtures() -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jpeg");
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "jpg")).collect();
    files.sort();
    assert!(files.len() >= 6, "fixtures missing in {}", dir.display());
    files.into_iter().map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap())).collect()
}

/// Encoder output of many shapes: odd sizes, gray and RGB, low to top quality.
fn generated() -> Vec<(String, Vec<u8>)> {
    let mut all = Vec::new();
    for (w, h) in [(1, 1), (2, 3), (8, 8), (9, 7), (17, 9), (16, 16), (64, 48), (333, 77), (31, 200)] {
        for gray in [false, true] {
            for quality in [10, 50, 90, 100] {
                all.push((format!("{w}x{h} gray={gray} q{quality}"), encoded(w, h, gray, quality)));
            }
        }
    }
    all
}

/// The entropy-coded data of each scan (from the end of its SOS header to its first non-RST marker).
fn scan_data(b: &[u8]) -> Vec<Range<usize>> {
    let (mut out, mut i) = (Vec::new(), 2);
    while i + 4 <= b.len() && b[i] == 0xFF {
        let m = b[i + 1];
        if m == 0xFF || (0xD0..=0xD7).contains(&m) {
            i += if m == 0xFF { 1 } else { 2 };
            continue;
        }
        if m == 0xD9 {
            break;
        }
        i += 2 + u16::from_be_bytes([b[i + 2], b[i + 3]]) as usize;
        if m == 0xDA {
            let start = i;
            while i + 1 < b.len() && (b[i] != 0xFF || matches!(b[i + 1], 0x00 | 0xD0..=0xD7 | 0xFF)) {
                i += 1;
            }
            out.push(start..i);
        }
    }
    out
}

/// The file cut at `at` (inside scan data) with an end-of-image marker appended.
fn cut(b: &[u8], at: usize) -> Vec<u8> {
    let mut c = b[..at].to_vec();
    while c.last() == Some(&0xFF) {
        c.pop(); // keep the cut from forming a marker with the appended bytes
    }
    c.extend_from_slice(&[0xFF, 0xD9]);
    c
}

/// `parts` cut points spread over all the scan data of `b`, with the scan (1-based) each is in.
fn cut_points(b: &[u8], parts: usize) -> Vec<(usize, usize)> {
    let scans = scan_data(b);
    let total: usize = scans.iter().map(|r| r.len()).sum();
    assert!(total > 0);
    let mut points = Vec::new();
    for k in 0..parts {
        let mut offset = total * k / parts;
        for (s, r) in scans.iter().enumerate() {
            if offset < r.len() {
                points.push((r.start + offset, s + 1));
                break;
            }
            offset -= r.len();
        }
    }
    points.dedup();
    points
}

/// MCUs of the first scan of a single-scan (interleaved or one-component) baseline file.
fn baseline_mcus(b: &[u8]) -> usize {
    let sof = b.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
    let (h, w, nf) = (u16::from_be_bytes([b[sof + 5], b[sof + 6]]) as usize, u16::from_be_bytes([b[sof + 7], b[sof + 8]]) as usize, b[sof + 9] as usize);
    let factors: Vec<(usize, usize)> = (0..nf).map(|c| b[sof + 11 + 3 * c]).map(|f| ((f >> 4) as usize, (f & 15) as usize)).collect();
    if nf == 1 {
        return w.div_ceil(8) * h.div_ceil(8);
    }
    let (hmax, vmax) = (factors.iter().map(|f| f.0).max().unwrap(), factors.iter().map(|f| f.1).max().unwrap());
    w.div_ceil(8 * hmax) * h.div_ceil(8 * vmax)
}

/// (N, M) of "scan data ends after N of M MCUs".
fn counts(message: &str) -> (usize, usize) {
    let rest = &message[message.find("ends after ").expect(message) + 11..];
    let words: Vec<&str> = rest.split_whitespace().collect();
    assert_eq!((words[1], words[3]), ("of", "MCUs"), "{message}");
    (words[0].parse().unwrap(), words[2].parse().unwrap())
}

fn same_as_image_crate(bytes: &[u8], name: &str) {
    let ours = decode_image(bytes, name).unwrap_or_else(|e| panic!("{name}: {e}"));
    let theirs = image::load_from_memory_with_format(bytes, image::ImageFormat::Jpeg).unwrap();
    let raw = if ours.channels == 1 { theirs.to_luma8().into_raw() } else { theirs.to_rgb8().into_raw() };
    assert_eq!((ours.width, ours.height), (theirs.width() as usize, theirs.height() as usize), "{name}");
    assert!(ours.data.iter().zip(&raw).all(|(&a, &b)| a == b as f32 / 255.0), "{name}: decoded differently");
}

#[test]
fn intact_jpegs_pass_the_check_and_decode_as_before() {
    for (name, bytes) in generated().into_iter().chain(fixtures()) {
        assert_eq!(missing_scan_data(&bytes), None, "{name}");
        same_as_image_crate(&bytes, &name);
    }
}

#[test]
fn a_scan_cut_short_with_an_end_marker_is_a_named_bad_sample() {
    for (name, bytes) in generated() {
        let expected = baseline_mcus(&bytes);
        for (at, _) in cut_points(&bytes, 9) {
            let e = decode_image(&cut(&bytes, at), "photos/cut.jpg").expect_err(&format!("{name} cut at {at} decoded")).to_string();
            assert!(e.contains("photos/cut.jpg: truncated JPEG: scan data ends after "), "{name} at {at}: {e}");
            let (n, m) = counts(&e);
            assert!(n < m && m == expected, "{name} at {at}: {e} (expected {expected} MCUs)");
        }
    }
}

#[test]
fn every_kind_of_scan_is_counted_progressive_and_restart_intervals_included() {
    for (name, bytes) in fixtures() {
        let scans = scan_data(&bytes);
        // Every scan, cut at its start, a third, two thirds and its last byte.
        for (s, r) in scans.iter().enumerate() {
            for at in [r.start, r.start + r.len() / 3, r.start + 2 * r.len() / 3, r.end - 1] {
                let reason = missing_scan_data(&cut(&bytes, at)).unwrap_or_else(|| panic!("{name}: scan {} cut at {at} not caught", s + 1));
                assert!(reason.starts_with("truncated JPEG: scan data ends after "), "{reason}");
                if s > 0 || name.starts_with("progressive") {
                    assert!(reason.ends_with(&format!(" of scan {}", s + 1)), "{name} at {at}: {reason}");
                }
                assert!(decode_image(&cut(&bytes, at), "f.jpg").is_err());
            }
        }
        // Cut right before and right after each restart marker.
        let rst: Vec<usize> = scans.iter().flat_map(|r| r.clone()).filter(|&i| bytes[i] == 0xFF && (0xD0..=0xD7).contains(&bytes[i + 1])).collect();
        for &i in &rst {
            for at in [i, i + 2] {
                assert!(missing_scan_data(&cut(&bytes, at)).is_some(), "{name}: cut at RST {i} (+{}) not caught", at - i);
            }
        }
        if name.contains("restart") {
            assert!(!rst.is_empty(), "{name} has no restart markers");
        }
    }
}

#[test]
fn odd_structure_is_left_to_the_decoder() {
    let good = encoded(40, 24, false, 80);
    let end = scan_data(&good)[0].end;
    // Arithmetic coding (SOF9): not understood, so no verdict (the decoder refuses it itself).
    let mut arithmetic = good.clone();
    let sof = arithmetic.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
    arithmetic[sof + 1] = 0xC9;
    assert_eq!(missing_scan_data(&arithmetic), None);
    // Bytes after the scan's last MCU, before the end marker: no verdict.
    let mut extra = good[..end].to_vec();
    extra.extend_from_slice(&[0x12, 0x34, 0x56, 0xFF, 0xD9]);
    assert_eq!(missing_scan_data(&extra), None);
    // A scan whose Huffman tables were never defined: no verdict.
    let mut no_tables = good.clone();
    while let Some(p) = no_tables.windows(2).position(|w| w == [0xFF, 0xC4]) {
        let len = u16::from_be_bytes([no_tables[p + 2], no_tables[p + 3]]) as usize;
        no_tables.drain(p..p + 2 + len);
    }
    assert_eq!(missing_scan_data(&no_tables), None);
    // Data after the end-of-image marker (a second image, a trailer) is not read.
    let mut trailer = good.clone();
    trailer.extend_from_slice(&good[..good.len() / 2]);
    assert_eq!(missing_scan_data(&trailer), None);
    same_as_image_crate(&trailer, "trailer");
    // Not a JPEG, empty, a lone SOI, a header cut before the scan: no verdict.
    for b in [&b""[..], b"\xFF\xD8", b"\xFF\xD8\xFF\xD9", &good[..sof + 4], b"\x89PNG\r\n\x1a\n"] {
        assert_eq!(missing_scan_data(b), None);
    }
}

/// The PACS photos when this machine has them (the check must pass each, and catch a cut of
/// each); skipped otherwise.
#[test]
fn shared_dataset_jpegs_if_present() {
    let root = Path::new("/work/shared/datasets/pacs96");
    if !root.is_dir() {
        eprintln!("skipped: {} absent", root.display());
        return;
    }
    let mut stack = vec![root.to_path_buf()];
    let (mut seen, mut checked) = (0, 0);
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for path in entries.flatten().map(|e| e.path()) {
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("jpg")) {
                seen += 1;
                if seen % 7 != 0 {
                    continue;
                }
                let bytes = std::fs::read(&path).unwrap();
                let name = path.display().to_string();
                assert_eq!(missing_scan_data(&bytes), None, "{name}");
                if let Some(&(at, _)) = cut_points(&bytes, 3).get(1) {
                    assert!(missing_scan_data(&cut(&bytes, at)).is_some(), "{name} cut at {at}");
                }
                checked += 1;
            }
        }
    }
    eprintln!("checked {checked} of {seen} JPEGs under {}", root.display());
}

/// zune-jpeg 0.5.15 panics on this valid file (fixtures/jpeg/decoder_panics, see make.sh): the
/// panic is caught and becomes an error naming the file, like any other bad sample.
#[test]
fn a_decoder_panic_is_a_named_error() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jpeg/decoder_panics/progressive_chroma_finer_8x8.jpg");
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(missing_scan_data(&bytes), None, "the file is complete");
    let e = decode_image(&bytes, "photos/odd.jpg").expect_err("zune-jpeg no longer panics: drop this test").to_string();
    assert!(e.contains("photos/odd.jpg: the JPEG decoder failed on this file (it panicked)"), "{e}");
}

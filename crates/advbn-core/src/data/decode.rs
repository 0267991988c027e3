//! JPEG / PNG bytes to an [`Image`]: the format is guessed from the content, never the file name.

use std::io::Cursor;

use image::{DynamicImage, ImageError, ImageFormat, ImageReader, Limits};

use crate::data::Image;
use crate::error::{Error, Result};

pub mod jpeg_scan;

/// Largest accepted side, in pixels.
pub const MAX_SIDE: u32 = 16_384;
/// Largest accepted pixel count (width * height) at all.
pub const MAX_PIXELS: u64 = 100_000_000;

/// Decodes a JPEG or PNG (8- or 16-bit, gray or RGB; alpha is dropped) to floats in [0, 1],
/// refusing images that declare more than the default `maxPixels`. Every error names `origin`
/// (usually the file path) and the reason.
pub fn decode_image(bytes: &[u8], origin: &str) -> Result<Image> {
    decode_image_within(bytes, origin, crate::options::MAX_PIXELS.default_value() as u64)
}

/// [`decode_image`] refusing images whose header declares more than `max_pixels`, before any
/// pixel is decoded.
pub fn decode_image_within(bytes: &[u8], origin: &str, max_pixels: u64) -> Result<Image> {
    let fail = |reason: String| Error::invalid_data(format!("{origin}: {}", reason.trim_end()));
    if bytes.is_empty() {
        return Err(fail("empty file, not an image".into()));
    }
    let format = match image::guess_format(bytes) {
        Ok(f @ (ImageFormat::Jpeg | ImageFormat::Png)) => f,
        Ok(other) => return Err(fail(format!("unsupported image format {other:?} (only JPEG and PNG are read)"))),
        Err(_) => return Err(fail("not a JPEG or PNG image (unrecognised content)".into())),
    };
    let name = if format == ImageFormat::Jpeg { "JPEG" } else { "PNG" };
    let reason = |e: ImageError| fail(describe_error(name, e));
    let (w, h) = ImageReader::with_format(Cursor::new(bytes), format).into_dimensions().map_err(reason)?;
    if w == 0 || h == 0 || w > MAX_SIDE || h > MAX_SIDE || w as u64 * h as u64 > MAX_PIXELS {
        return Err(fail(format!("{name} of {w}x{h} pixels is outside the accepted size (1..={MAX_SIDE} a side, at most {MAX_PIXELS} pixels)")));
    }
    if w as u64 * h as u64 > max_pixels {
        return Err(fail(format!(
            "{name} declares {w}x{h} = {} pixels, more than the limit of {max_pixels} (maxPixels); nothing was decoded",
            w as u64 * h as u64
        )));
    }
    if format == ImageFormat::Jpeg && !has_jpeg_end(bytes) {
        // zune-jpeg fills missing scan data with grey instead of failing.
        return Err(fail("truncated JPEG (no end-of-image marker)".into()));
    }
    if format == ImageFormat::Jpeg {
        // Cut mid-scan with an end marker appended: zune-jpeg zero-fills the rest silently.
        if let Some(reason) = jpeg_scan::missing_scan_data(bytes) {
            return Err(fail(reason));
        }
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = Limits::default();
    limits.max_alloc = Some(MAX_PIXELS * 3 * 2 * 2);
    reader.limits(limits);
    // zune-jpeg 0.5 panics on some valid files (progressive with chroma sampled finer than luma):
    // a named bad sample rather than a worker panic that names no file.
    let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| reader.decode()))
        .map_err(|_| fail(format!("the {name} decoder failed on this file (it panicked)")))?
        .map_err(reason)?;
    to_image(decoded).map_err(|e| fail(e.to_string()))
}

/// Walks the JPEG segments (skipping APPn payloads, so an embedded thumbnail does not count)
/// and the entropy-coded scans; false when the bytes run out before the end-of-image marker.
/// Bytes after the marker are allowed; odd structure is left to the decoder to judge.
fn has_jpeg_end(b: &[u8]) -> bool {
    let mut i = 2; // after SOI
    loop {
        if i + 1 >= b.len() {
            return false;
        }
        if b[i] != 0xFF {
            return true;
        }
        let marker = b[i + 1];
        i += 2;
        match marker {
            0xD9 => return true,
            0xFF => i -= 1, // fill byte
            0x01 | 0xD0..=0xD7 => {}
            _ => {
                if i + 2 > b.len() {
                    return false;
                }
                i += u16::from_be_bytes([b[i], b[i + 1]]) as usize;
                if marker == 0xDA {
                    // Entropy-coded data: FF is stuffed as FF 00; RSTn markers stay inside the scan.
                    loop {
                        match b.get(i..).and_then(|rest| rest.iter().position(|&x| x == 0xFF)) {
                            Some(p) => i += p,
                            None => return false,
                        }
                        match b.get(i + 1) {
                            None => return false,
                            Some(0x00 | 0xD0..=0xD7) => i += 2,
                            Some(0xFF) => i += 1,
                            Some(_) => break,
                        }
                    }
                }
            }
        }
    }
}

fn describe_error(name: &str, e: ImageError) -> String {
    match e {
        ImageError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => format!("truncated {name}"),
        ImageError::IoError(io) => format!("cannot read {name}: {io}"),
        ImageError::Decoding(d) => format!("corrupt or truncated {name}: {d}"),
        ImageError::Unsupported(u) => format!("unsupported {name}: {u}"),
        ImageError::Limits(l) => format!("{name} too large: {l}"),
        other => format!("cannot decode {name}: {other}"),
    }
}

fn to_image(decoded: DynamicImage) -> Result<Image> {
    let (w, h) = (decoded.width() as usize, decoded.height() as usize);
    let lut: Vec<f32> = (0..=255u32).map(|b| b as f32 / 255.0).collect();
    let u8s = |bytes: &[u8]| bytes.iter().map(|&b| lut[b as usize]).collect::<Vec<f32>>();
    let u16s = |vals: &[u16]| vals.iter().map(|&v| v as f32 / 65535.0).collect::<Vec<f32>>();
    match decoded {
        DynamicImage::ImageLuma8(b) => Image::new(w, h, 1, u8s(b.as_raw())),
        DynamicImage::ImageRgb8(b) => Image::new(w, h, 3, u8s(b.as_raw())),
        DynamicImage::ImageLuma16(b) => Image::new(w, h, 1, u16s(b.as_raw())),
        DynamicImage::ImageRgb16(b) => Image::new(w, h, 3, u16s(b.as_raw())),
        DynamicImage::ImageLumaA8(b) => Image::new(w, h, 1, u8s(&b.into_raw().chunks_exact(2).map(|p| p[0]).collect::<Vec<_>>())),
        DynamicImage::ImageLumaA16(b) => Image::new(w, h, 1, u16s(&b.into_raw().chunks_exact(2).map(|p| p[0]).collect::<Vec<_>>())),
        DynamicImage::ImageRgba16(_) | DynamicImage::ImageRgb32F(_) | DynamicImage::ImageRgba32F(_) => {
            Image::new(w, h, 3, decoded.to_rgb32f().into_raw().into_iter().map(|v| v.clamp(0.0, 1.0)).collect())
        }
        // Rgba8 and any future 8-bit variant: drop alpha.
        other => Image::new(w, h, 3, u8s(other.to_rgb8().as_raw())),
    }
}

//! conv2d on the CPU (NCHW, groups 1, dilation 1) as im2col / col2im around one matrix product
//! per chunk of images: forward, backward-data and backward-filter.
//!
//! A chunk's columns are its images' output positions side by side ([C*KH*KW, images * OH*OW]),
//! so the late stages' small feature maps still make wide products, and its column buffer stays
//! bounded (`COL_BUDGET`). With enough chunks, each thread takes
//! whole chunks (im2col, product and write-back on one core, no hand-over between threads);
//! otherwise the chunks run in turn, each on all threads. Every output element is computed by
//! one task in a fixed order, and the filter gradient sums a fixed number of partial sums in a
//! fixed order: results do not depend on the thread count.

use std::mem::MaybeUninit;
use std::ops::Range;

use rayon::prelude::*;

use super::gemm::{matmul, Float, Mat, MatMut, Threads};
use super::scatter::{col2im_plane, for_each_addition, TapRows};
use super::scratch::{filled, Scratch};
use crate::ops::conv::ConvParams;
use candle_core::Result;

/// Elements one chunk's column buffer aims to stay under (1 M: 4 MB in f32). Measured on the
/// benchmark's layers (bench/NOTES.md): smaller budgets starve the late stages' products
/// (K = 2304-4608) of columns, larger ones change nothing.
const COL_BUDGET: usize = 1 << 20;
/// Fewest columns a chunk aims for (measured likewise: 256-2048 are within noise).
const MIN_COLS: usize = 256;
/// Partial sums of the filter gradient (fixed, so the summation order never depends on the
/// thread count).
const FILTER_PARTS: usize = 4;

/// The shapes of one convolution: x [n, c, h, w], w [o, c, kh, kw], y [n, o, oh, ow].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub o: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    pub pad: usize,
    pub oh: usize,
    pub ow: usize,
}

impl Geometry {
    pub fn new(x: (usize, usize, usize, usize), weight: (usize, usize, usize, usize), params: ConvParams) -> Result<Self> {
        let (n, c, h, w) = x;
        let (o, wc, kh, kw) = weight;
        if c != wc {
            candle_core::bail!("conv2d: input has {c} channels, the kernel expects {wc}");
        }
        let (oh, ow) = (params.out_size(h, kh)?, params.out_size(w, kw)?);
        Ok(Self { n, c, h, w, o, kh, kw, stride: params.stride, pad: params.padding, oh, ow })
    }

    fn ohw(&self) -> usize {
        self.oh * self.ow
    }

    /// Rows of the column matrix: one per (input channel, kernel row, kernel column).
    fn ckk(&self) -> usize {
        self.c * self.kh * self.kw
    }

    /// A 1x1, stride-1, unpadded conv reads its input as the column matrix itself.
    fn is_pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.stride == 1 && self.pad == 0
    }

    pub fn input_len(&self) -> usize {
        self.n * self.c * self.h * self.w
    }

    pub fn output_len(&self) -> usize {
        self.n * self.o * self.ohw()
    }

    pub fn weight_len(&self) -> usize {
        self.o * self.ckk()
    }

    /// Images per chunk: enough for `MIN_COLS` columns if the column budget allows, at least
    /// one, and balanced so the last chunk is not a sliver.
    fn images_per_chunk(&self) -> usize {
        let ohw = self.ohw().max(1);
        let by_budget = (COL_BUDGET / self.ckk().max(1) / ohw).max(1);
        let wanted = MIN_COLS.div_ceil(ohw).min(by_budget).clamp(1, self.n.max(1));
        let chunks = self.n.div_ceil(wanted).max(1);
        self.n.div_ceil(chunks)
    }

    fn chunks(&self) -> Vec<Range<usize>> {
        let per = self.images_per_chunk();
        (0..self.n).step_by(per).map(|start| start..(start + per).min(self.n)).collect()
    }

    /// The output columns `ox` whose input column `ox * stride + j - pad` lies in [0, w).
    fn valid_columns(&self, j: usize) -> std::ops::Range<usize> {
        let (s, p) = (self.stride, self.pad);
        let lo = if j >= p { 0 } else { (p - j).div_ceil(s) };
        let hi = if self.w + p > j { ((self.w + p - j - 1) / s + 1).min(self.ow) } else { 0 };
        lo.min(hi)..hi
    }

    /// The input row of output row `oy` for kernel row `i`, if it lies inside the image.
    fn input_row(&self, oy: usize, i: usize) -> Option<usize> {
        (oy * self.stride + i).checked_sub(self.pad).filter(|&iy| iy < self.h)
    }
}

/// Runs `f(index, row)` over the `len`-element rows of `data`, on rayon's threads if `parallel`.
fn for_rows<T: Send>(data: &mut [T], len: usize, parallel: bool, f: impl Fn(usize, &mut [T]) + Sync + Send) {
    if parallel {
        data.par_chunks_mut(len).enumerate().for_each(|(i, row)| f(i, row));
    } else {
        data.chunks_mut(len).enumerate().for_each(|(i, row)| f(i, row));
    }
}

/// col[(c, i, j), (b, oy, ox)] = x[n0 + b, c, oy * s + i - p, ox * s + j - p] (0 outside).
fn im2col<T: Float>(x: &[T], g: &Geometry, images: Range<usize>, col: &mut [T], parallel: bool) {
    let (ohw, cols, hw) = (g.ohw(), images.len() * g.ohw(), g.h * g.w);
    for_rows(&mut col[..g.ckk() * cols], cols, parallel, |row, out| {
        let (c, i, j) = (row / (g.kh * g.kw), (row / g.kw) % g.kh, row % g.kw);
        let valid = g.valid_columns(j);
        for (b, n) in images.clone().enumerate() {
            let plane = &x[(n * g.c + c) * hw..][..hw];
            for oy in 0..g.oh {
                let dst = &mut out[b * ohw + oy * g.ow..][..g.ow];
                let Some(iy) = g.input_row(oy, i) else {
                    dst.fill(T::ZERO);
                    continue;
                };
                let src = &plane[iy * g.w..][..g.w];
                dst[..valid.start].fill(T::ZERO);
                dst[valid.end..].fill(T::ZERO);
                let first = valid.start * g.stride + j - g.pad;
                if g.stride == 1 {
                    dst[valid.clone()].copy_from_slice(&src[first..first + valid.len()]);
                } else {
                    for (d, s) in dst[valid.clone()].iter_mut().zip(src[first..].iter().step_by(g.stride)) {
                        *d = *s;
                    }
                }
            }
        }
    });
}

/// dx planes of `images` = the column rows (c, i, j) placed back where im2col took them from,
/// summed over (i, j) in a fixed order. `dx` holds exactly those images' planes. Float32 rows
/// at stride 1 or 2 are added with vector instructions (bit-identical: `scatter`).
fn col2im<T: Float>(dcol: &[T], g: &Geometry, images: Range<usize>, dx: &mut [T], parallel: bool) {
    col2im_with(super::simd::detect().filter(|_| g.stride <= 2), dcol, g, images, dx, parallel)
}

/// `col2im`, with the vector additions of `vector` (None: the scalar loops).
fn col2im_with<T: Float>(vector: Option<super::simd::Isa>, dcol: &[T], g: &Geometry, images: Range<usize>, dx: &mut [T], parallel: bool) {
    let (ohw, cols, hw) = (g.ohw(), images.len() * g.ohw(), g.h * g.w);
    // Per kernel row i, the input row of every output row; per tap, where its values go.
    let input_rows: Vec<Vec<Option<usize>>> = (0..g.kh).map(|i| (0..g.oh).map(|oy| g.input_row(oy, i)).collect()).collect();
    let taps: Vec<TapRows> = (0..g.kh * g.kw)
        .map(|t| {
            let (i, j) = (t / g.kw, t % g.kw);
            let valid = g.valid_columns(j);
            let first = if valid.is_empty() { 0 } else { valid.start * g.stride + j - g.pad };
            TapRows { valid, first, input_rows: &input_rows[i] }
        })
        .collect();
    let (kk, shape) = (g.kh * g.kw, (g.ow, g.w, g.stride));
    for_rows(&mut dx[..images.len() * g.c * hw], hw, parallel, |q, plane| {
        let (b, c) = (q / g.c, q % g.c);
        let values = &dcol[c * kk * cols + b * ohw..];
        match (vector, T::as_f32(values)) {
            (Some(isa), Some(values)) => col2im_plane(isa, T::as_f32_mut(plane).expect("T is f32"), values, cols, &taps, shape),
            _ => {
                plane.fill(T::ZERO);
                for_each_addition(plane, values, cols, &taps, shape, |dst, src| {
                    for (d, s) in dst.iter_mut().step_by(g.stride).zip(src) {
                        *d += *s;
                    }
                });
            }
        }
    });
}

/// Copies `planes` [images, rows, ohw] (NCHW planes) into `packed` [rows, images * ohw].
fn pack_planes<T: Float>(planes: &[T], rows: usize, ohw: usize, images: usize, packed: &mut [T], parallel: bool) {
    for_rows(&mut packed[..rows * images * ohw], images * ohw, parallel, |r, out| {
        for b in 0..images {
            out[b * ohw..][..ohw].copy_from_slice(&planes[(b * rows + r) * ohw..][..ohw]);
        }
    });
}

/// The inverse of `pack_planes`: `packed` [rows, images * ohw] into NCHW planes.
fn unpack_planes<T: Float>(packed: &[T], rows: usize, ohw: usize, images: usize, planes: &mut [T], parallel: bool) {
    for_rows(&mut planes[..images * rows * ohw], ohw, parallel, |q, out| {
        let (b, r) = (q / rows, q % rows);
        out.copy_from_slice(&packed[r * images * ohw + b * ohw..][..ohw]);
    });
}

fn check_len<T>(what: &str, data: &[T], len: usize) -> Result<()> {
    if data.len() != len {
        candle_core::bail!("conv2d: {what} has {} elements, the geometry needs {len}", data.len());
    }
    Ok(())
}

/// The two scratch buffers of one task (column matrices, packed gradients, products), from the
/// thread's pool: reused from call to call without a zero fill (every use writes what it reads).
struct Buffers<T: Float> {
    a: Option<Scratch<T>>,
    b: Option<Scratch<T>>,
}

impl<T: Float> Buffers<T> {
    fn new() -> Self {
        Self { a: None, b: None }
    }
}

/// How one pass spreads its chunks: whole chunks per thread when there are enough of them to
/// share out evenly, else one chunk at a time on all threads.
fn split(chunks: usize) -> (bool, Threads) {
    let threads = rayon::current_num_threads();
    if threads > 1 && chunks >= 2 * threads {
        (true, Threads::One)
    } else {
        (false, Threads::All)
    }
}

/// The column matrix of a chunk: the input planes themselves for a one-image pointwise conv,
/// else im2col into `buffer`.
fn columns<'a, T: Float>(x: &'a [T], g: &Geometry, images: Range<usize>, buffer: &'a mut Option<Scratch<T>>, parallel: bool) -> Mat<'a, T> {
    let cols = images.len() * g.ohw();
    if g.is_pointwise() && images.len() == 1 {
        return Mat::rows(&x[images.start * g.c * g.ohw()..][..g.c * g.ohw()], g.c, cols);
    }
    let col = Scratch::in_slot(buffer, g.ckk() * cols);
    im2col(x, g, images, col, parallel);
    Mat::rows(col, g.ckk(), cols)
}

/// The output gradient of a chunk as [o, images * ohw]: its planes for one image, else packed.
fn chunk_rows<'a, T: Float>(planes: &'a [T], g: &Geometry, images: Range<usize>, buffer: &'a mut Option<Scratch<T>>, parallel: bool) -> Mat<'a, T> {
    let (ohw, cols) = (g.ohw(), images.len() * g.ohw());
    let chunk = &planes[images.start * g.o * ohw..][..images.len() * g.o * ohw];
    if images.len() == 1 {
        return Mat::rows(chunk, g.o, cols);
    }
    let rows = Scratch::in_slot(buffer, g.o * cols);
    pack_planes(chunk, g.o, ohw, images.len(), rows, parallel);
    Mat::rows(rows, g.o, cols)
}

/// Runs `pass(images, out_chunk, scratch, parallel, threads)` for every chunk, where `out_chunk`
/// is the part of `out` (`per_image` elements per image) that the chunk's images own.
fn over_chunks<T: Float>(
    g: &Geometry,
    out: &mut [T],
    per_image: usize,
    pass: impl Fn(Range<usize>, &mut [T], &mut Buffers<T>, bool, Threads) -> Result<()> + Sync + Send,
) -> Result<()> {
    let chunks = g.chunks();
    let per_chunk = chunks[0].len() * per_image;
    let (across, threads) = split(chunks.len());
    if across {
        out.par_chunks_mut(per_chunk).zip(chunks).try_for_each_init(Buffers::new, |scratch, (out, images)| pass(images, out, scratch, false, threads))
    } else {
        let mut scratch = Buffers::new();
        out.chunks_mut(per_chunk).zip(chunks).try_for_each(|(out, images)| pass(images, out, &mut scratch, true, threads))
    }
}

/// A pass of the f32-only kernels: (input or gradient, weight or gradient, geometry) -> result.
type F32Pass = fn(&[f32], &[f32], &Geometry) -> Result<Vec<f32>>;

/// The direct kernels' result for f32 inputs of a geometry they suit.
fn direct<T: Float>(suits: bool, g: &Geometry, a: &[T], b: &[T], pass: F32Pass) -> Option<Result<Vec<T>>> {
    if !suits {
        return None;
    }
    let (a, b) = (T::as_f32(a)?, T::as_f32(b)?);
    Some(pass(a, b, g).map(|v| T::from_f32(v).expect("T is f32")))
}

/// y = conv2d(x, w): x [n, c, h, w], w [o, c, kh, kw] (contiguous), y [n, o, oh, ow].
pub fn forward<T: Float>(x: &[T], w: &[T], g: &Geometry) -> Result<Vec<T>> {
    check_len("the input", x, g.input_len())?;
    check_len("the weight", w, g.weight_len())?;
    if let Some(y) = direct(super::same::suits(g), g, x, w, super::same::forward) {
        return y;
    }
    if let Some(y) = direct(super::direct::suits(g), g, x, w, super::direct::forward) {
        return y;
    }
    forward_im2col(x, w, g)
}

/// `forward` through im2col and a matrix product (every geometry and float type).
pub fn forward_im2col<T: Float>(x: &[T], w: &[T], g: &Geometry) -> Result<Vec<T>> {
    check_len("the input", x, g.input_len())?;
    check_len("the weight", w, g.weight_len())?;
    let mut y = vec![T::ZERO; g.output_len()];
    if g.n == 0 {
        return Ok(y);
    }
    let weight = Mat::rows(w, g.o, g.ckk());
    over_chunks(g, &mut y, g.o * g.ohw(), |images, out, scratch, parallel, threads| {
        let (n, cols) = (images.len(), images.len() * g.ohw());
        let col = columns(x, g, images, &mut scratch.a, parallel);
        if n == 1 {
            return matmul(MatMut::rows(out, g.o, cols), weight, col, false, threads);
        }
        let product = Scratch::in_slot(&mut scratch.b, g.o * cols);
        matmul(MatMut::rows(product, g.o, cols), weight, col, false, threads)?;
        unpack_planes(product, g.o, g.ohw(), n, out, parallel);
        Ok(())
    })?;
    Ok(y)
}

/// dL/dx from dL/dy [n, o, oh, ow] and w.
pub fn backward_data<T: Float>(dy: &[T], w: &[T], g: &Geometry) -> Result<Vec<T>> {
    check_len("the output gradient", dy, g.output_len())?;
    check_len("the weight", w, g.weight_len())?;
    if let Some(dx) = direct(super::same::suits(g), g, dy, w, super::same::backward_data) {
        return dx;
    }
    if let Some(dx) = direct(super::direct::suits_input_gradient(g), g, dy, w, super::direct::backward_data) {
        return dx;
    }
    if let Some(dx) = direct(super::phases::suits(g), g, dy, w, super::phases::backward_data) {
        return dx;
    }
    backward_data_im2col(dy, w, g)
}

/// `backward_data` through a matrix product and col2im (every geometry and float type).
pub fn backward_data_im2col<T: Float>(dy: &[T], w: &[T], g: &Geometry) -> Result<Vec<T>> {
    check_len("the output gradient", dy, g.output_len())?;
    check_len("the weight", w, g.weight_len())?;
    let mut dx = vec![T::ZERO; g.input_len()];
    if g.n == 0 {
        return Ok(dx);
    }
    let weight_t = Mat::rows(w, g.o, g.ckk()).t();
    over_chunks(g, &mut dx, g.c * g.h * g.w, |images, out, scratch, parallel, threads| {
        let cols = images.len() * g.ohw();
        let pointwise_image = g.is_pointwise() && images.len() == 1;
        let dy_rows = chunk_rows(dy, g, images.clone(), &mut scratch.a, parallel);
        if pointwise_image {
            return matmul(MatMut::rows(out, g.c, cols), weight_t, dy_rows, false, threads);
        }
        let dcol = Scratch::in_slot(&mut scratch.b, g.ckk() * cols);
        matmul(MatMut::rows(dcol, g.ckk(), cols), weight_t, dy_rows, false, threads)?;
        col2im(dcol, g, images, out, parallel);
        Ok(())
    })?;
    Ok(dx)
}

/// dL/dw [o, c, kh, kw] from x and dL/dy.
pub fn backward_filter<T: Float>(x: &[T], dy: &[T], g: &Geometry) -> Result<Vec<T>> {
    check_len("the input", x, g.input_len())?;
    check_len("the output gradient", dy, g.output_len())?;
    if let Some(dw) = direct(super::winograd::suits_filter(g), g, x, dy, super::winograd::backward_filter) {
        return dw;
    }
    if let Some(dw) = direct(super::direct::suits(g), g, x, dy, super::filter::backward_filter) {
        return dw;
    }
    backward_filter_im2col(x, dy, g)
}

/// `backward_filter` through im2col and matrix products (every geometry and float type):
/// `FILTER_PARTS` partial sums over consecutive chunks, then their sum in order.
pub fn backward_filter_im2col<T: Float>(x: &[T], dy: &[T], g: &Geometry) -> Result<Vec<T>> {
    check_len("the input", x, g.input_len())?;
    check_len("the output gradient", dy, g.output_len())?;
    if g.n == 0 {
        // No image: a zero gradient (the parts below would hold no product to overwrite them).
        return Ok(vec![T::ZERO; g.weight_len()]);
    }
    let chunks = g.chunks();
    let per_part = chunks.len().div_ceil(FILTER_PARTS).max(1);
    let parts = chunks.len().div_ceil(per_part).max(1);
    let (across, threads) = split(chunks.len());
    // Each part's first product overwrites its slice (no zero fill needed).
    let mut partials = Scratch::<T>::take(parts * g.weight_len());
    let partials = partials.as_mut_slice(parts * g.weight_len());
    let part = |k: usize, dw: &mut [T], scratch: &mut Buffers<T>, parallel: bool| -> Result<()> {
        for (i, images) in chunks.iter().skip(k * per_part).take(per_part).enumerate() {
            let dy_rows = chunk_rows(dy, g, images.clone(), &mut scratch.a, parallel);
            let col = columns(x, g, images.clone(), &mut scratch.b, parallel);
            matmul(MatMut::rows(dw, g.o, g.ckk()), dy_rows, col.t(), i > 0, threads)?;
        }
        Ok(())
    };
    if across {
        partials.par_chunks_mut(g.weight_len()).enumerate().try_for_each_init(Buffers::new, |scratch, (k, dw)| part(k, dw, scratch, false))?;
    } else {
        let mut scratch = Buffers::new();
        partials.chunks_mut(g.weight_len()).enumerate().try_for_each(|(k, dw)| part(k, dw, &mut scratch, true))?;
    }
    // dw = ((p0 + p1) + p2) + ...: the parts added in order, a run at a time (in L1), in one
    // pass over them.
    const RUN: usize = 2048;
    let partials = &*partials;
    let sum = |out: &mut [MaybeUninit<T>]| {
        out.par_chunks_mut(RUN).enumerate().for_each(|(r, dst)| {
            let mut acc = [T::ZERO; RUN];
            let acc = &mut acc[..dst.len()];
            acc.copy_from_slice(&partials[r * RUN..][..dst.len()]);
            for p in 1..parts {
                for (a, v) in acc.iter_mut().zip(&partials[p * g.weight_len() + r * RUN..]) {
                    *a += *v;
                }
            }
            for (d, a) in dst.iter_mut().zip(acc.iter()) {
                d.write(*a);
            }
        });
    };
    // SAFETY: the runs cover the output and each writes all its elements.
    Ok(unsafe { filled(g.weight_len(), sum) })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition, summed in f64.
    fn naive_forward(x: &[f64], w: &[f64], g: &Geometry) -> Vec<f64> {
        let mut y = vec![0.0; g.output_len()];
        for n in 0..g.n {
            for o in 0..g.o {
                for oy in 0..g.oh {
                    for ox in 0..g.ow {
                        let mut acc = 0.0;
                        for c in 0..g.c {
                            for i in 0..g.kh {
                                for j in 0..g.kw {
                                    let (iy, ix) = ((oy * g.stride + i) as isize - g.pad as isize, (ox * g.stride + j) as isize - g.pad as isize);
                                    if iy >= 0 && ix >= 0 && (iy as usize) < g.h && (ix as usize) < g.w {
                                        acc += x[((n * g.c + c) * g.h + iy as usize) * g.w + ix as usize] * w[((o * g.c + c) * g.kh + i) * g.kw + j];
                                    }
                                }
                            }
                        }
                        y[((n * g.o + o) * g.oh + oy) * g.ow + ox] = acc;
                    }
                }
            }
        }
        y
    }

    fn values(len: usize, seed: f64) -> Vec<f64> {
        (0..len).map(|i| ((i as f64 + seed) * 0.7548).sin()).collect()
    }

    fn dot(a: &[f64], b: &[f64]) -> f64 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    /// Forward against the definition; both backwards by the adjoint identities
    /// <conv(x, w), g> = <x, dL/dx> = <w, dL/dw>, which hold for the exact gradients only.
    #[test]
    fn forward_and_both_backwards_match_the_definition_on_every_geometry() {
        for (x, o, k, stride, pad) in [
            ((2, 3, 17, 15), 4, 7, 2, 3),
            ((3, 4, 9, 9), 5, 3, 1, 1),
            ((3, 4, 10, 10), 6, 3, 2, 1),
            ((2, 6, 5, 7), 3, 1, 1, 0),
            ((2, 6, 7, 7), 8, 1, 2, 0),
            ((40, 2, 3, 3), 3, 3, 1, 1), // many images per chunk
            ((1, 2, 4, 5), 2, 3, 3, 2),
            ((230, 1, 3, 3), 2, 3, 1, 1), // several chunks of many images
        ] {
            let g = Geometry::new(x, (o, x.1, k, k), ConvParams { stride, padding: pad }).unwrap();
            let (xv, wv, gv) = (values(g.input_len(), 1.0), values(g.weight_len(), 2.0), values(g.output_len(), 3.0));
            let want = naive_forward(&xv, &wv, &g);
            let y = forward(&xv, &wv, &g).unwrap();
            assert!(y.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-12), "{g:?}: forward");
            let dx = backward_data(&gv, &wv, &g).unwrap();
            let dw = backward_filter(&xv, &gv, &g).unwrap();
            let reference = dot(&want, &gv);
            // Perturb x and w along random directions: the change of <y, g> is <dx, dir>.
            let (xdir, wdir) = (values(g.input_len(), 4.0), values(g.weight_len(), 5.0));
            let moved_x: Vec<f64> = xv.iter().zip(&xdir).map(|(a, d)| a + d).collect();
            let moved_w: Vec<f64> = wv.iter().zip(&wdir).map(|(a, d)| a + d).collect();
            let by_x = dot(&naive_forward(&moved_x, &wv, &g), &gv) - reference;
            let by_w = dot(&naive_forward(&xv, &moved_w, &g), &gv) - reference;
            assert!((by_x - dot(&dx, &xdir)).abs() < 1e-9 * by_x.abs().max(1.0), "{g:?}: backward data");
            assert!((by_w - dot(&dw, &wdir)).abs() < 1e-9 * by_w.abs().max(1.0), "{g:?}: backward filter");
        }
    }

    /// A batch of no images gives zeros, not a pooled buffer's leftovers (the im2col passes
    /// write into reused scratch without zeroing it first).
    #[test]
    fn an_empty_batch_gives_zero_gradients() {
        // Leave non-zero leftovers in this thread's pool first.
        let big = Geometry::new((4, 8, 6, 6), (8, 8, 3, 3), ConvParams { stride: 1, padding: 1 }).unwrap();
        let x = vec![1.5f32; big.input_len()];
        let dy = vec![2.5f32; big.output_len()];
        backward_filter_im2col(&x, &dy, &big).unwrap();
        let g = Geometry::new((0, 8, 6, 6), (8, 8, 3, 3), ConvParams { stride: 1, padding: 1 }).unwrap();
        let dw = backward_filter_im2col::<f32>(&[], &[], &g).unwrap();
        assert_eq!(dw.len(), g.weight_len());
        assert!(dw.iter().all(|&v| v == 0.0), "the weight gradient of an empty batch is zero");
        assert!(forward_im2col::<f32>(&[], &vec![1.0; g.weight_len()], &g).unwrap().is_empty());
    }

    #[test]
    fn chunks_cover_every_image_once() {
        for n in [1, 2, 7, 32, 129] {
            let g = Geometry::new((n, 16, 8, 8), (16, 16, 3, 3), ConvParams { stride: 1, padding: 1 }).unwrap();
            let covered: Vec<usize> = g.chunks().into_iter().flatten().collect();
            assert_eq!(covered, (0..n).collect::<Vec<_>>());
        }
    }

    /// The vector additions of col2im give the scalar loops' result bit for bit (float32), on
    /// every instruction set this CPU has: strides 1 and 2, rows shorter and longer than a vector.
    #[test]
    fn col2im_vector_additions_are_bit_identical_to_the_scalar_loops() {
        for (x, o, k, stride, pad) in [
            ((2, 3, 9, 9), 4, 3, 1, 1),
            ((2, 3, 10, 10), 4, 3, 2, 1),
            ((1, 2, 37, 70), 3, 3, 2, 1),
            ((2, 2, 7, 7), 2, 1, 2, 0),
            ((1, 2, 17, 15), 2, 7, 2, 3),
            ((1, 2, 5, 40), 2, 5, 1, 2),
        ] {
            let g = Geometry::new(x, (o, x.1, k, k), ConvParams { stride, padding: pad }).unwrap();
            let dcol: Vec<f32> = (0..g.ckk() * g.n * g.ohw()).map(|i| ((i * 7919 % 1000) as f32 - 500.0) * 1.37e-3).collect();
            let mut want = vec![0f32; g.input_len()];
            col2im_with(None, &dcol, &g, 0..g.n, &mut want, false);
            for isa in crate::ops::cpu::testing::isas() {
                let mut got = vec![f32::NAN; g.input_len()];
                col2im_with(Some(isa), &dcol, &g, 0..g.n, &mut got, true);
                assert!(got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()), "{isa:?} {g:?}");
            }
        }
    }
}

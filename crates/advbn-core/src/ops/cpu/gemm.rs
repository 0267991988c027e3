//! A bounds-checked matrix product over strided views, on the `gemm` crate (the kernels Candle's
//! CPU matmul uses; with its `x86-v4` feature it picks AVX-512 kernels at run time).
//!
//! Every element of an output is computed in the same order whatever the thread count (the crate
//! splits the output between threads, never the inner dimension), so results do not depend on it.

use candle_core::Result;

/// The float types our CPU kernels run on.
pub trait Float:
    super::scratch::Pooled + Copy + Send + Sync + PartialOrd + 'static + std::ops::Add<Output = Self> + std::ops::Mul<Output = Self> + std::ops::AddAssign
{
    const ZERO: Self;
    const ONE: Self;

    /// The slice as f32, when Self is f32 (kernels that exist for f32 only).
    fn as_f32(_: &[Self]) -> Option<&[f32]> {
        None
    }

    /// The vector as Self, when Self is f32.
    fn from_f32(_: Vec<f32>) -> Option<Vec<Self>> {
        None
    }

    /// The slice as f32 to write, when Self is f32.
    fn as_f32_mut(_: &mut [Self]) -> Option<&mut [f32]> {
        None
    }
}

impl Float for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;

    fn as_f32(s: &[Self]) -> Option<&[f32]> {
        Some(s)
    }

    fn from_f32(v: Vec<f32>) -> Option<Vec<Self>> {
        Some(v)
    }

    fn as_f32_mut(s: &mut [Self]) -> Option<&mut [f32]> {
        Some(s)
    }
}

impl Float for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
}

/// A `rows x cols` matrix inside `data`: element (r, c) is `data[r * row_stride + c * col_stride]`.
#[derive(Clone, Copy)]
pub struct Mat<'a, T> {
    pub data: &'a [T],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

/// The same for an output.
pub struct MatMut<'a, T> {
    pub data: &'a mut [T],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a, T> Mat<'a, T> {
    /// A row-major matrix.
    pub fn rows(data: &'a [T], rows: usize, cols: usize) -> Self {
        Self { data, rows, cols, row_stride: cols, col_stride: 1 }
    }

    /// The transpose (no copy).
    pub fn t(self) -> Self {
        Self { data: self.data, rows: self.cols, cols: self.rows, row_stride: self.col_stride, col_stride: self.row_stride }
    }
}

impl<'a, T> MatMut<'a, T> {
    pub fn rows(data: &'a mut [T], rows: usize, cols: usize) -> Self {
        Self { data, rows, cols, row_stride: cols, col_stride: 1 }
    }
}

/// Whether every element of a view lies inside its slice.
fn fits(len: usize, rows: usize, cols: usize, row_stride: usize, col_stride: usize) -> bool {
    if rows == 0 || cols == 0 {
        return true;
    }
    let last = (rows - 1).checked_mul(row_stride).zip((cols - 1).checked_mul(col_stride)).and_then(|(a, b)| a.checked_add(b));
    matches!(last, Some(last) if last < len) && isize::try_from(row_stride.max(col_stride)).is_ok()
}

/// Who computes one product.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threads {
    /// The calling thread alone (the caller runs several products side by side).
    One,
    /// All of rayon's current pool.
    All,
}

/// `dst = lhs x rhs`, or `dst += lhs x rhs` when `accumulate`.
pub fn matmul<T: Float>(dst: MatMut<'_, T>, lhs: Mat<'_, T>, rhs: Mat<'_, T>, accumulate: bool, threads: Threads) -> Result<()> {
    if lhs.rows != dst.rows || rhs.cols != dst.cols || lhs.cols != rhs.rows {
        candle_core::bail!("matmul: [{}, {}] x [{}, {}] into [{}, {}]", lhs.rows, lhs.cols, rhs.rows, rhs.cols, dst.rows, dst.cols);
    }
    for (what, len, rows, cols, rs, cs) in [
        ("output", dst.data.len(), dst.rows, dst.cols, dst.row_stride, dst.col_stride),
        ("left operand", lhs.data.len(), lhs.rows, lhs.cols, lhs.row_stride, lhs.col_stride),
        ("right operand", rhs.data.len(), rhs.rows, rhs.cols, rhs.row_stride, rhs.col_stride),
    ] {
        if !fits(len, rows, cols, rs, cs) {
            candle_core::bail!("matmul: the {what} view [{rows}, {cols}] with strides ({rs}, {cs}) does not fit its {len} elements");
        }
    }
    if dst.rows == 0 || dst.cols == 0 {
        return Ok(());
    }
    if lhs.cols == 0 {
        if !accumulate {
            for r in 0..dst.rows {
                for c in 0..dst.cols {
                    dst.data[r * dst.row_stride + c * dst.col_stride] = T::ZERO;
                }
            }
        }
        return Ok(());
    }
    let parallelism = match (threads, rayon::current_num_threads()) {
        (Threads::All, n) if n > 1 => gemm::Parallelism::Rayon(n),
        _ => gemm::Parallelism::None,
    };
    // SAFETY: `fits` checked that every element each view addresses lies inside its slice, and
    // that the strides fit an isize; `dst` is borrowed mutably, so it aliases neither operand.
    unsafe {
        gemm::gemm(
            dst.rows,
            dst.cols,
            lhs.cols,
            dst.data.as_mut_ptr(),
            dst.col_stride as isize,
            dst.row_stride as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.col_stride as isize,
            lhs.row_stride as isize,
            rhs.data.as_ptr(),
            rhs.col_stride as isize,
            rhs.row_stride as isize,
            T::ONE,
            T::ONE,
            false,
            false,
            false,
            parallelism,
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            }
        }
        c
    }

    #[test]
    fn products_of_strided_views_match_the_definition() {
        let (m, k, n) = (7, 5, 9);
        let a: Vec<f64> = (0..m * k).map(|i| (i as f64 * 0.37).sin()).collect();
        let b: Vec<f64> = (0..k * n).map(|i| (i as f64 * 0.91).cos()).collect();
        let want = naive(&a, &b, m, k, n);
        let mut c = vec![f64::NAN; m * n];
        matmul(MatMut::rows(&mut c, m, n), Mat::rows(&a, m, k), Mat::rows(&b, k, n), false, Threads::All).unwrap();
        assert!(c.iter().zip(&want).all(|(x, y)| (x - y).abs() < 1e-12));
        // Accumulating adds the product again; transposed views give the transposed product.
        matmul(MatMut::rows(&mut c, m, n), Mat::rows(&a, m, k), Mat::rows(&b, k, n), true, Threads::One).unwrap();
        assert!(c.iter().zip(&want).all(|(x, y)| (x - 2.0 * y).abs() < 1e-12));
        let mut ct = vec![f64::NAN; n * m];
        matmul(MatMut::rows(&mut ct, n, m), Mat::rows(&b, k, n).t(), Mat::rows(&a, m, k).t(), false, Threads::All).unwrap();
        assert!((0..m).all(|i| (0..n).all(|j| (ct[j * m + i] - want[i * n + j]).abs() < 1e-12)));
    }

    #[test]
    fn views_outside_their_slices_are_refused() {
        let a = vec![0f32; 6];
        let mut c = vec![0f32; 4];
        let err = matmul(MatMut::rows(&mut c, 2, 2), Mat::rows(&a, 2, 4), Mat::rows(&a, 4, 2), false, Threads::One).unwrap_err();
        assert!(err.to_string().contains("does not fit"), "{err}");
    }
}

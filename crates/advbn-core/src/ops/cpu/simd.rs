//! The few vector operations the direct convolution kernels use, for AVX-512 (16 f32 lanes) and
//! AVX2 + FMA (8 lanes), picked at run time. Kernels are generic over `Lanes` and instantiated
//! inside a `#[target_feature]` function per instruction set, so the generic code (all
//! `#[inline(always)]`) is compiled with that instruction set.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// A vector of f32 lanes.
/// One tap of an `R x V` register tile: `acc[r][v] += w[r] * b[v]` (the weight of output channel
/// r, splat, times the input vectors), as every direct-convolution kernel's inner step.
///
/// # Safety
/// The CPU supports `L`'s instruction set; `w` is valid for reading `R` f32s.
#[inline(always)]
pub unsafe fn rank1_update<L: Lanes, const R: usize, const V: usize>(acc: &mut [[L; V]; R], w: *const f32, b: &[L; V]) {
    for (r, row) in acc.iter_mut().enumerate() {
        let w = L::splat(*w.add(r));
        for (accv, bv) in row.iter_mut().zip(b) {
            *accv = accv.fma(w, *bv);
        }
    }
}

pub trait Lanes: Copy {
    const N: usize;
    /// # Safety
    /// The CPU supports the instruction set.
    unsafe fn zero() -> Self;
    /// # Safety
    /// `p` is valid for reading `N` f32s (no alignment needed).
    unsafe fn load(p: *const f32) -> Self;
    /// # Safety
    /// The CPU supports the instruction set.
    unsafe fn splat(v: f32) -> Self;
    /// `self + a * b`, fused.
    /// # Safety
    /// The CPU supports the instruction set.
    unsafe fn fma(self, a: Self, b: Self) -> Self;
    /// # Safety
    /// The CPU supports the instruction set.
    unsafe fn add(self, b: Self) -> Self;
    /// # Safety
    /// The CPU supports the instruction set.
    unsafe fn sub(self, b: Self) -> Self;
    /// # Safety
    /// The CPU supports the instruction set.
    unsafe fn mul(self, b: Self) -> Self;
    /// Lane-wise max (the second operand when either is NaN, as maxps does).
    /// # Safety
    /// The CPU supports the instruction set.
    unsafe fn max(self, b: Self) -> Self;
    /// # Safety
    /// `p` is valid for writing `N` f32s.
    unsafe fn store(self, p: *mut f32);

    /// Which lanes a masked load or store touches.
    type Mask: Copy;
    /// The mask of the lanes whose bit is set in `bits` (lane 0 = bit 0).
    /// # Safety
    /// The CPU supports the instruction set.
    unsafe fn mask(bits: u32) -> Self::Mask;
    /// The mask of lanes [0, count), count <= N.
    /// # Safety
    /// The CPU supports the instruction set.
    #[inline(always)]
    unsafe fn first(count: usize) -> Self::Mask {
        debug_assert!(count <= Self::N);
        Self::mask(((1u64 << count) - 1) as u32)
    }
    /// The lanes of `mask` from `p + lane`, zero in the others. Lanes outside the mask are not
    /// read (the instructions suppress their faults), so `p` may point before or past the data.
    /// # Safety
    /// `p + lane` is valid for reading for every lane in `mask`.
    unsafe fn load_masked(p: *const f32, mask: Self::Mask) -> Self;
    /// Writes the lanes of `mask` to `p + lane`, nothing else.
    /// # Safety
    /// `p + lane` is valid for writing for every lane in `mask`.
    unsafe fn store_masked(self, p: *mut f32, mask: Self::Mask);
    /// The even-numbered values of the 2N values `self` then `b`, in order.
    /// # Safety
    /// The CPU supports the instruction set.
    unsafe fn evens(self, b: Self) -> Self;
    /// The odd-numbered values of the 2N values `self` then `b`, in order.
    /// # Safety
    /// The CPU supports the instruction set.
    unsafe fn odds(self, b: Self) -> Self;
    /// `evens` and `odds` without moving values across 128-bit lanes (one shuffle each instead
    /// of two on AVX2): lane i holds the value `split_order(i, N)` of the ordered result.
    /// # Safety
    /// The CPU supports the instruction set.
    unsafe fn split(self, b: Self) -> (Self, Self);
    /// The inverse of `split`: from its evens (`self`) and odds (`b`), the 2N values in order as
    /// two vectors.
    /// # Safety
    /// The CPU supports the instruction set.
    unsafe fn merge(self, b: Self) -> (Self, Self);
    /// The inverse spread: lanes [0, N/2) into the even lanes of the first vector, [N/2, N) into
    /// those of the second, zeros in the odd lanes.
    /// # Safety
    /// The CPU supports the instruction set.
    unsafe fn spread_evens(self) -> (Self, Self);
}

/// Which value of the ordered `evens` (or `odds`) lane `lane` of `Lanes::split`'s result holds,
/// for N = `n` lanes: 128-bit lane k holds values 2k and 2k + 1 of each half of the input.
pub const fn split_order(lane: usize, n: usize) -> usize {
    lane / 4 * 2 + lane % 2 + if lane % 4 >= 2 { n / 2 } else { 0 }
}

/// The instruction sets the direct kernels have versions for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    Avx512,
    Avx2,
}

/// The best instruction set this CPU offers, or None (the kernels then are not used).
/// `ADVBN_CPU_ISA=avx2` caps it at AVX2 (to measure or test the AVX2 kernels on an AVX-512 CPU).
pub fn detect() -> Option<Isa> {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static ISA: OnceLock<Option<Isa>> = OnceLock::new();
        *ISA.get_or_init(|| {
            let cap = std::env::var("ADVBN_CPU_ISA").ok();
            let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
            let avx512 = is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("avx512dq")
                && is_x86_feature_detected!("avx512vl");
            if cap.as_deref() != Some("avx2") && avx2 && avx512 {
                Some(Isa::Avx512)
            } else if avx2 {
                Some(Isa::Avx2)
            } else {
                None
            }
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        None
    }
}

/// Defines one function per (name, target features, lanes type, (R, V) shape) that runs the
/// generic register-tile kernel `$kernel::<lanes, R, V>(args)` compiled for those features.
macro_rules! tile_fns {
    ($kernel:ident, $args:ty, [$(($name:ident, $features:literal, $lanes:ty, $shape:expr)),* $(,)?]) => {
        $(
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = $features)]
            unsafe fn $name(args: &$args) {
                $kernel::<$lanes, { $shape.0 }, { $shape.1 }>(args)
            }
        )*
    };
    // Kernels with other constant parameters: each listed in full, `[a, b, ...]`.
    ($kernel:ident, $args:ty, consts [$(($name:ident, $features:literal, $lanes:ty, [$($c:expr),+ $(,)?])),* $(,)?]) => {
        $(
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = $features)]
            unsafe fn $name(args: &$args) {
                $kernel::<$lanes, $({ $c }),+>(args)
            }
        )*
    };
}
pub(crate) use tile_fns;

/// Calls `body::<L>(args)` with `L` the lanes type of `isa`, from a function compiled for that
/// instruction set (so the `#[inline(always)]` body's loops and intrinsics get it):
/// `with_lanes!(isa, body(a: &[f32], n: usize))`. The body is an unsafe generic fn.
macro_rules! with_lanes {
    ($isa:expr, $body:ident($($arg:ident: $ty:ty),* $(,)?)) => {{
        #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl")]
        unsafe fn avx512($($arg: $ty),*) {
            $body::<$crate::ops::cpu::simd::Avx512>($($arg),*)
        }
        #[target_feature(enable = "avx2,fma")]
        unsafe fn avx2($($arg: $ty),*) {
            $body::<$crate::ops::cpu::simd::Avx2>($($arg),*)
        }
        match $isa {
            // SAFETY: an `Isa` is only made by `detect`, which found it on this CPU; the body's
            // own requirements are its caller's to meet.
            $crate::ops::cpu::simd::Isa::Avx512 => unsafe { avx512($($arg),*) },
            // SAFETY: as above.
            $crate::ops::cpu::simd::Isa::Avx2 => unsafe { avx2($($arg),*) },
        }
    }};
}
pub(crate) use with_lanes;

/// Whether a narrow tile (`narrow` positions) pays over a wide one (`wide` positions) for planes
/// of `positions` outputs: when the wide one's rounding would compute over 15% more positions.
pub fn narrow_pays(positions: usize, wide: usize, narrow: usize) -> bool {
    let computed = |tile: usize| positions.div_ceil(tile) * tile;
    100 * computed(wide) > 115 * computed(narrow)
}

/// Defines `fn $name<T: Bound>(args) -> Ret` whose body is compiled three times (AVX-512, AVX2 +
/// FMA, the baseline) and picks one per call by `detect()`: the body is an `#[inline(always)]`
/// function called from `#[target_feature]` wrappers, so its loops vectorise for each set
/// (closures handed to `vectorized` are not always inlined, and then stay SSE2).
macro_rules! multiversion {
    ($(#[$meta:meta])* $vis:vis fn $name:ident<$T:ident: $bound:path>($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty $body:block) => {
        $(#[$meta])*
        $vis fn $name<$T: $bound>($($arg: $ty),*) -> $ret {
            #[inline(always)]
            fn body<$T: $bound>($($arg: $ty),*) -> $ret $body
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl")]
            unsafe fn avx512<$T: $bound>($($arg: $ty),*) -> $ret {
                body::<$T>($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            unsafe fn avx2<$T: $bound>($($arg: $ty),*) -> $ret {
                body::<$T>($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            match $crate::ops::cpu::simd::detect() {
                // SAFETY: `detect` found the instruction set on this CPU.
                Some($crate::ops::cpu::simd::Isa::Avx512) => unsafe { avx512::<$T>($($arg),*) },
                // SAFETY: as above.
                Some($crate::ops::cpu::simd::Isa::Avx2) => unsafe { avx2::<$T>($($arg),*) },
                None => body::<$T>($($arg),*),
            }
            #[cfg(not(target_arch = "x86_64"))]
            body::<$T>($($arg),*)
        }
    };
}
pub(crate) use multiversion;

/// Keeps the compiler from moving loads across this point (an empty `asm!` that may touch
/// memory; registers are untouched and the CPU reorders as it likes). In a fully unrolled
/// register tile LLVM otherwise hoists the next taps' loads above the current FMAs, needs more
/// registers than AVX2's 16 and spills accumulators to the stack: each FMA then waits on a
/// store-to-load forward (ResNet-18's 6x6 layers ran at half speed on an AMD EPYC).
#[inline(always)]
pub fn load_barrier() {
    // SAFETY: an empty instruction sequence.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        std::arch::asm!("", options(nostack, preserves_flags));
    }
}

/// Runs `work` compiled for the best instruction set this CPU has: `work` (a closure called once)
/// is inlined into a function with that set enabled, so its loops vectorise to AVX-512 or AVX2
/// instead of the SSE2 baseline the crate is built for.
#[inline(always)]
pub fn vectorized<R>(work: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl")]
        unsafe fn avx512<R>(work: impl FnOnce() -> R) -> R {
            work()
        }
        #[target_feature(enable = "avx2,fma")]
        unsafe fn avx2<R>(work: impl FnOnce() -> R) -> R {
            work()
        }
        match detect() {
            // SAFETY: `detect` found the instruction set on this CPU.
            Some(Isa::Avx512) => unsafe { avx512(work) },
            // SAFETY: as above.
            Some(Isa::Avx2) => unsafe { avx2(work) },
            None => work(),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        work()
    }
}

#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub struct Avx512(__m512);

#[cfg(target_arch = "x86_64")]
impl Lanes for Avx512 {
    const N: usize = 16;
    #[inline(always)]
    unsafe fn zero() -> Self {
        Self(_mm512_setzero_ps())
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        Self(_mm512_loadu_ps(p))
    }
    #[inline(always)]
    unsafe fn splat(v: f32) -> Self {
        Self(_mm512_set1_ps(v))
    }
    #[inline(always)]
    unsafe fn fma(self, a: Self, b: Self) -> Self {
        Self(_mm512_fmadd_ps(a.0, b.0, self.0))
    }
    #[inline(always)]
    unsafe fn add(self, b: Self) -> Self {
        Self(_mm512_add_ps(self.0, b.0))
    }
    #[inline(always)]
    unsafe fn sub(self, b: Self) -> Self {
        Self(_mm512_sub_ps(self.0, b.0))
    }
    #[inline(always)]
    unsafe fn mul(self, b: Self) -> Self {
        Self(_mm512_mul_ps(self.0, b.0))
    }
    #[inline(always)]
    unsafe fn max(self, b: Self) -> Self {
        Self(_mm512_max_ps(self.0, b.0))
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        _mm512_storeu_ps(p, self.0)
    }
    type Mask = __mmask16;
    #[inline(always)]
    unsafe fn mask(bits: u32) -> __mmask16 {
        bits as __mmask16
    }
    #[inline(always)]
    unsafe fn load_masked(p: *const f32, mask: __mmask16) -> Self {
        Self(_mm512_maskz_loadu_ps(mask, p))
    }
    #[inline(always)]
    unsafe fn store_masked(self, p: *mut f32, mask: __mmask16) {
        _mm512_mask_storeu_ps(p, mask, self.0)
    }
    #[inline(always)]
    unsafe fn evens(self, b: Self) -> Self {
        let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        Self(_mm512_permutex2var_ps(self.0, even, b.0))
    }
    #[inline(always)]
    unsafe fn odds(self, b: Self) -> Self {
        let odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
        Self(_mm512_permutex2var_ps(self.0, odd, b.0))
    }
    #[inline(always)]
    unsafe fn split(self, b: Self) -> (Self, Self) {
        // Per 128-bit lane [a0 a2 b0 b2] and [a1 a3 b1 b3].
        (Self(_mm512_shuffle_ps::<0b10_00_10_00>(self.0, b.0)), Self(_mm512_shuffle_ps::<0b11_01_11_01>(self.0, b.0)))
    }
    #[inline(always)]
    unsafe fn merge(self, b: Self) -> (Self, Self) {
        (Self(_mm512_unpacklo_ps(self.0, b.0)), Self(_mm512_unpackhi_ps(self.0, b.0)))
    }
    #[inline(always)]
    unsafe fn spread_evens(self) -> (Self, Self) {
        // Index 16 picks lane 0 of the zero vector.
        let low = _mm512_setr_epi32(0, 16, 1, 16, 2, 16, 3, 16, 4, 16, 5, 16, 6, 16, 7, 16);
        let high = _mm512_setr_epi32(8, 16, 9, 16, 10, 16, 11, 16, 12, 16, 13, 16, 14, 16, 15, 16);
        let zero = _mm512_setzero_ps();
        (Self(_mm512_permutex2var_ps(self.0, low, zero)), Self(_mm512_permutex2var_ps(self.0, high, zero)))
    }
}

#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub struct Avx2(__m256);

#[cfg(target_arch = "x86_64")]
impl Avx2 {
    /// The 8 x 8 transpose: lane j of result i is lane i of `rows[j]`.
    /// # Safety
    /// The CPU supports AVX2.
    #[inline(always)]
    pub unsafe fn transpose8(rows: [Self; 8]) -> [Self; 8] {
        let r = rows.map(|v| v.0);
        // Pairs of rows interleaved, then pairs of pairs, then the 128-bit halves.
        let (t0, t1) = (_mm256_unpacklo_ps(r[0], r[1]), _mm256_unpackhi_ps(r[0], r[1]));
        let (t2, t3) = (_mm256_unpacklo_ps(r[2], r[3]), _mm256_unpackhi_ps(r[2], r[3]));
        let (t4, t5) = (_mm256_unpacklo_ps(r[4], r[5]), _mm256_unpackhi_ps(r[4], r[5]));
        let (t6, t7) = (_mm256_unpacklo_ps(r[6], r[7]), _mm256_unpackhi_ps(r[6], r[7]));
        let (u0, u1) = (_mm256_shuffle_ps::<0b01_00_01_00>(t0, t2), _mm256_shuffle_ps::<0b11_10_11_10>(t0, t2));
        let (u2, u3) = (_mm256_shuffle_ps::<0b01_00_01_00>(t1, t3), _mm256_shuffle_ps::<0b11_10_11_10>(t1, t3));
        let (u4, u5) = (_mm256_shuffle_ps::<0b01_00_01_00>(t4, t6), _mm256_shuffle_ps::<0b11_10_11_10>(t4, t6));
        let (u6, u7) = (_mm256_shuffle_ps::<0b01_00_01_00>(t5, t7), _mm256_shuffle_ps::<0b11_10_11_10>(t5, t7));
        [
            _mm256_permute2f128_ps::<0x20>(u0, u4),
            _mm256_permute2f128_ps::<0x20>(u1, u5),
            _mm256_permute2f128_ps::<0x20>(u2, u6),
            _mm256_permute2f128_ps::<0x20>(u3, u7),
            _mm256_permute2f128_ps::<0x31>(u0, u4),
            _mm256_permute2f128_ps::<0x31>(u1, u5),
            _mm256_permute2f128_ps::<0x31>(u2, u6),
            _mm256_permute2f128_ps::<0x31>(u3, u7),
        ]
        .map(Self)
    }
}

#[cfg(target_arch = "x86_64")]
impl Lanes for Avx2 {
    const N: usize = 8;
    #[inline(always)]
    unsafe fn zero() -> Self {
        Self(_mm256_setzero_ps())
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        Self(_mm256_loadu_ps(p))
    }
    #[inline(always)]
    unsafe fn splat(v: f32) -> Self {
        Self(_mm256_set1_ps(v))
    }
    #[inline(always)]
    unsafe fn fma(self, a: Self, b: Self) -> Self {
        Self(_mm256_fmadd_ps(a.0, b.0, self.0))
    }
    #[inline(always)]
    unsafe fn add(self, b: Self) -> Self {
        Self(_mm256_add_ps(self.0, b.0))
    }
    #[inline(always)]
    unsafe fn sub(self, b: Self) -> Self {
        Self(_mm256_sub_ps(self.0, b.0))
    }
    #[inline(always)]
    unsafe fn mul(self, b: Self) -> Self {
        Self(_mm256_mul_ps(self.0, b.0))
    }
    #[inline(always)]
    unsafe fn max(self, b: Self) -> Self {
        Self(_mm256_max_ps(self.0, b.0))
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        _mm256_storeu_ps(p, self.0)
    }
    type Mask = __m256i;
    #[inline(always)]
    unsafe fn mask(bits: u32) -> __m256i {
        let lane_bits = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
        let set = _mm256_and_si256(_mm256_set1_epi32(bits as i32), lane_bits);
        _mm256_cmpeq_epi32(set, lane_bits)
    }
    #[inline(always)]
    unsafe fn load_masked(p: *const f32, mask: __m256i) -> Self {
        Self(_mm256_maskload_ps(p, mask))
    }
    #[inline(always)]
    unsafe fn store_masked(self, p: *mut f32, mask: __m256i) {
        _mm256_maskstore_ps(p, mask, self.0)
    }
    #[inline(always)]
    unsafe fn evens(self, b: Self) -> Self {
        // Per 128-bit half [a0 a2 b0 b2 | a4 a6 b4 b6], then the 64-bit pairs into order.
        let halves = _mm256_shuffle_ps::<0b10_00_10_00>(self.0, b.0);
        Self(_mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(halves))))
    }
    #[inline(always)]
    unsafe fn odds(self, b: Self) -> Self {
        // As `evens`, with the odd lanes of each half.
        let halves = _mm256_shuffle_ps::<0b11_01_11_01>(self.0, b.0);
        Self(_mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(halves))))
    }
    #[inline(always)]
    unsafe fn split(self, b: Self) -> (Self, Self) {
        // `evens` and `odds` without their second shuffle.
        (Self(_mm256_shuffle_ps::<0b10_00_10_00>(self.0, b.0)), Self(_mm256_shuffle_ps::<0b11_01_11_01>(self.0, b.0)))
    }
    #[inline(always)]
    unsafe fn merge(self, b: Self) -> (Self, Self) {
        (Self(_mm256_unpacklo_ps(self.0, b.0)), Self(_mm256_unpackhi_ps(self.0, b.0)))
    }
    #[inline(always)]
    unsafe fn spread_evens(self) -> (Self, Self) {
        // Per 128-bit half [a0 0 a1 0 | a4 0 a5 0] and [a2 0 a3 0 | a6 0 a7 0], then the halves
        // into order.
        let zero = _mm256_setzero_ps();
        let (low, high) = (_mm256_unpacklo_ps(self.0, zero), _mm256_unpackhi_ps(self.0, zero));
        (Self(_mm256_permute2f128_ps::<0x20>(low, high)), Self(_mm256_permute2f128_ps::<0x31>(low, high)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::cpu::testing::isas;

    /// `split` is `evens` / `odds` in `split_order`, and `merge` undoes it.
    #[test]
    fn split_is_a_lane_order_of_evens_and_odds_and_merge_undoes_it() {
        unsafe fn check<L: Lanes>(seen: &mut Vec<usize>) {
            let n = L::N;
            let values: Vec<f32> = (0..2 * n).map(|i| i as f32).collect();
            let (a, b) = (L::load(values.as_ptr()), L::load(values.as_ptr().add(n)));
            let (mut e, mut o, mut ordered) = (vec![0f32; n], vec![0f32; n], vec![0f32; 2 * n]);
            let (se, so) = a.split(b);
            se.store(e.as_mut_ptr());
            so.store(o.as_mut_ptr());
            a.evens(b).store(ordered.as_mut_ptr());
            a.odds(b).store(ordered.as_mut_ptr().add(n));
            for lane in 0..n {
                assert_eq!((e[lane], o[lane]), (ordered[split_order(lane, n)], ordered[n + split_order(lane, n)]), "N = {n}, lane {lane}");
            }
            let (ma, mb) = se.merge(so);
            let mut back = vec![0f32; 2 * n];
            ma.store(back.as_mut_ptr());
            mb.store(back.as_mut_ptr().add(n));
            assert_eq!(back, values, "N = {n}");
            seen.push(n);
        }
        let mut seen = Vec::new();
        for isa in isas() {
            let seen = &mut seen;
            with_lanes!(isa, check(seen: &mut Vec<usize>));
        }
        assert!(seen.len() == isas().len());
    }
}

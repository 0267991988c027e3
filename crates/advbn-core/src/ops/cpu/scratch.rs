//! Scratch buffers reused from call to call (per thread): a training step asks for the same
//! large temporaries (padded inputs, column matrices) at every layer, and fresh allocations of
//! that size cost a page fault per 4 KB plus a zero fill each time.

use std::cell::RefCell;
use std::mem::MaybeUninit;
use std::thread::LocalKey;

/// Buffers one thread keeps, and the largest it keeps (in elements).
const KEPT: usize = 8;
const LARGEST_KEPT: usize = 1 << 26;

pub trait Pooled: Copy + Default + Send + 'static {
    fn pool() -> &'static LocalKey<RefCell<Vec<Vec<Self>>>>;
}

thread_local! {
    static F32: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
    static F64: RefCell<Vec<Vec<f64>>> = const { RefCell::new(Vec::new()) };
}

impl Pooled for f32 {
    fn pool() -> &'static LocalKey<RefCell<Vec<Vec<f32>>>> {
        &F32
    }
}

impl Pooled for f64 {
    fn pool() -> &'static LocalKey<RefCell<Vec<Vec<f64>>>> {
        &F64
    }
}

/// Bytes the slices handed out are aligned to: a cache line, so the kernels' whole-vector loads
/// and stores never straddle two lines (glibc gives large blocks 16 bytes past a page start,
/// which split every AVX-512 load and every other AVX2 one: bench/NOTES.md change 25).
pub const ALIGN: usize = 64;

/// A buffer of at least the asked length holding leftover values (never uninitialised memory:
/// callers write what they read), its slices starting on an [`ALIGN`] boundary. Goes back to
/// the dropping thread's pool.
pub struct Scratch<T: Pooled> {
    buffer: Vec<T>,
    /// Elements skipped at the buffer's start to reach the boundary.
    start: usize,
}

impl<T: Pooled> Scratch<T> {
    pub fn take(len: usize) -> Self {
        let slack = ALIGN / std::mem::size_of::<T>();
        let mut v = T::pool().with(|p| {
            let mut p = p.borrow_mut();
            // The smallest kept buffer that is large enough, else the largest (grown below).
            let pick = p.iter().enumerate().filter(|(_, v)| v.len() >= len + slack).min_by_key(|(_, v)| v.len()).map(|(i, _)| i);
            let pick = pick.or_else(|| p.iter().enumerate().max_by_key(|(_, v)| v.len()).map(|(i, _)| i));
            pick.map(|i| p.swap_remove(i)).unwrap_or_default()
        });
        if v.len() < len + slack {
            v.resize(len + slack, T::default());
        }
        // At most slack - 1 for any element alignment of at least 4 bytes (f32, f64).
        let start = v.as_ptr().align_offset(ALIGN).min(slack);
        Self { buffer: v, start }
    }

    /// Aligned elements the buffer holds (at least the length taken).
    pub fn capacity(&self) -> usize {
        self.buffer.len() - self.start
    }

    /// The buffer's first `len` (at most its capacity) aligned elements.
    pub fn as_mut_slice(&mut self, len: usize) -> &mut [T] {
        &mut self.buffer[self.start..][..len]
    }

    pub fn as_slice(&self, len: usize) -> &[T] {
        &self.buffer[self.start..][..len]
    }

    /// `len` elements of the buffer in `slot`, which is first (re)filled from the pool when it
    /// holds none or a shorter one: for a task that asks for buffers of varying sizes.
    pub fn in_slot(slot: &mut Option<Self>, len: usize) -> &mut [T] {
        if slot.as_ref().is_none_or(|s| s.capacity() < len) {
            // The short buffer goes back to the pool before a longer one is looked for.
            *slot = None;
            *slot = Some(Self::take(len));
        }
        slot.as_mut().expect("the slot was just filled").as_mut_slice(len)
    }
}

impl<T: Pooled> Drop for Scratch<T> {
    fn drop(&mut self) {
        let v = std::mem::take(&mut self.buffer);
        if v.len() > LARGEST_KEPT {
            return;
        }
        // A thread that is shutting down has no pool any more: the buffer is simply freed.
        let _ = T::pool().try_with(|p| {
            let mut p = p.borrow_mut();
            if p.len() < KEPT {
                p.push(v);
            } else if let Some(smallest) = p.iter_mut().min_by_key(|b| b.len()) {
                if smallest.len() < v.len() {
                    *smallest = v;
                }
            }
        });
    }
}

/// A vector of `len` values that `fill` writes, without zeroing it first.
///
/// # Safety
/// `fill` must write every element of the slice it is given.
pub unsafe fn filled<T>(len: usize, fill: impl FnOnce(&mut [MaybeUninit<T>])) -> Vec<T> {
    let mut v = Vec::with_capacity(len);
    fill(&mut v.spare_capacity_mut()[..len]);
    // SAFETY: the caller guarantees `fill` initialised all `len` elements.
    unsafe { v.set_len(len) };
    v
}

/// The output a `filled` closure is given, shared by parallel tasks that each write elements no
/// other task writes (the callers say which).
pub struct SharedOut(pub *mut MaybeUninit<f32>);
// SAFETY: the tasks write disjoint elements (each caller's own argument).
unsafe impl Send for SharedOut {}
// SAFETY: as above: no two tasks touch the same element.
unsafe impl Sync for SharedOut {}

impl SharedOut {
    /// Where output element `i` lies (a method, so closures capture the whole `SharedOut`).
    pub fn at(&self, i: usize) -> *mut MaybeUninit<f32> {
        self.0.wrapping_add(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_start_on_a_cache_line() {
        for len in [1, 15, 1000, 300_000] {
            let mut a = Scratch::<f32>::take(len);
            assert_eq!(a.as_mut_slice(len).as_ptr() as usize % ALIGN, 0, "f32 x {len}");
            let b = Scratch::<f64>::take(len);
            assert_eq!(b.as_slice(len).as_ptr() as usize % ALIGN, 0, "f64 x {len}");
        }
    }

    #[test]
    fn buffers_are_reused_and_long_enough() {
        let first = Scratch::<f32>::take(1000);
        let ptr = first.buffer.as_ptr();
        drop(first);
        let mut again = Scratch::<f32>::take(500);
        assert_eq!(again.buffer.as_ptr(), ptr, "the kept buffer is handed out again");
        assert_eq!(again.as_mut_slice(500).len(), 500);
        let bigger = Scratch::<f32>::take(5000);
        assert!(bigger.as_slice(5000).len() == 5000);
    }
}

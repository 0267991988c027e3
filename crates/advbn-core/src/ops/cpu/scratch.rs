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

/// A buffer of at least the asked length holding leftover values (never uninitialised memory:
/// callers write what they read). Goes back to the dropping thread's pool.
pub struct Scratch<T: Pooled>(Vec<T>);

impl<T: Pooled> Scratch<T> {
    pub fn take(len: usize) -> Self {
        let mut v = T::pool().with(|p| {
            let mut p = p.borrow_mut();
            // The smallest kept buffer that is large enough, else the largest (grown below).
            let pick = p.iter().enumerate().filter(|(_, v)| v.len() >= len).min_by_key(|(_, v)| v.len()).map(|(i, _)| i);
            let pick = pick.or_else(|| p.iter().enumerate().max_by_key(|(_, v)| v.len()).map(|(i, _)| i));
            pick.map(|i| p.swap_remove(i)).unwrap_or_default()
        });
        if v.len() < len {
            v.resize(len, T::default());
        }
        Self(v)
    }

    pub fn as_mut_slice(&mut self, len: usize) -> &mut [T] {
        &mut self.0[..len]
    }

    pub fn as_slice(&self, len: usize) -> &[T] {
        &self.0[..len]
    }
}

impl<T: Pooled> Drop for Scratch<T> {
    fn drop(&mut self) {
        let v = std::mem::take(&mut self.0);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_and_long_enough() {
        let first = Scratch::<f32>::take(1000);
        let ptr = first.0.as_ptr();
        drop(first);
        let mut again = Scratch::<f32>::take(500);
        assert_eq!(again.0.as_ptr(), ptr, "the kept buffer is handed out again");
        assert_eq!(again.as_mut_slice(500).len(), 500);
        let bigger = Scratch::<f32>::take(5000);
        assert!(bigger.0.len() >= 5000);
    }
}

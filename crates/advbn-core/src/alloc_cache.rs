//! A global allocator that keeps freed large blocks for the next allocation of the same size.
//!
//! A training step allocates the same tensors every step (activations, their gradients, the
//! weights' gradients) and frees them by the end of it. Through the system allocator each large
//! block is a fresh mapping: the first write to every page faults and the kernel zeroes it,
//! about a tenth of a ResNet-18 CPU training step (bench/NOTES.md). Here a freed block of at
//! least [`MIN_CACHED`] bytes is kept (up to [`BlockCache::limit`] bytes in all, [`SLOTS`] blocks; the
//! oldest kept blocks are released to make room, and blocks unused for [`STALE_AFTER`] later
//! ones) and handed to the next request of exactly its
//! size and alignment; zeroed requests get it cleared in user space. Smaller blocks go to the
//! system allocator.
//!
//! The cached blocks stay resident, so the process's memory stays near its peak between steps
//! instead of falling back after each; [`BlockCache::set_limit`] bounds that (0 turns the cache
//! off), and `ADVBN_ALLOC_CACHE_MB` sets it for [`CACHE`] when the compute pool starts. A final
//! artifact (the Node addon, a benchmark) installs it with
//! `#[global_allocator] static GLOBAL: advbn_core::alloc_cache::Allocator = Allocator;`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Blocks smaller than this go straight to the system allocator (glibc serves them from its
/// heap, where they are reused without faults).
pub const MIN_CACHED: usize = 1 << 20;
/// How many free blocks the cache holds at most.
pub const SLOTS: usize = 256;
/// A kept block not handed out again while this many later blocks were kept is released: after
/// a change of workload (training, then evaluation with other shapes) the old sizes do not stay
/// resident. A ResNet-18 training step frees about 200 large blocks.
pub const STALE_AFTER: u64 = 1024;
/// The default bound on the bytes the cache holds. A ResNet-18 training step at 96 px and batch 32
/// gains as much with 128 MiB as with 1 GiB (bench/NOTES.md, change 20).
pub const DEFAULT_LIMIT: usize = 256 << 20;
/// The environment variable that sets [`CACHE`]'s bound, in MiB (0 turns it off).
pub const LIMIT_VAR: &str = "ADVBN_ALLOC_CACHE_MB";

/// The process's cache, behind [`Allocator`].
pub static CACHE: BlockCache = BlockCache::new();

/// The global allocator of the final artifacts: [`CACHE`] in front of the system allocator.
pub struct Allocator;

/// Parses a bound in MiB as `ADVBN_ALLOC_CACHE_MB` gives it: a non-negative integer.
pub fn parse_limit_mb(value: &str) -> Option<usize> {
    value.trim().parse::<usize>().ok().and_then(|mb| mb.checked_mul(1 << 20))
}

/// Sets [`CACHE`]'s bound from `ADVBN_ALLOC_CACHE_MB` when it holds one (the TypeScript layer
/// rejects other values with an error naming the variable before the addon runs anything).
pub fn configure_from_env() {
    if let Some(bytes) = std::env::var(LIMIT_VAR).ok().as_deref().and_then(parse_limit_mb) {
        CACHE.set_limit(bytes);
    }
}

#[derive(Clone, Copy)]
struct Block {
    ptr: usize,
    size: usize,
    align: usize,
    /// When it was kept: the oldest goes first when room is needed.
    kept: u64,
}

struct Free {
    blocks: [Option<Block>; SLOTS],
    bytes: usize,
    kept: u64,
}

impl Free {
    /// Releases the oldest kept block to the system; false if there is none.
    fn release_oldest(&mut self) -> bool {
        let oldest = self.blocks.iter().enumerate().filter_map(|(i, b)| b.map(|b| (b.kept, i))).min();
        match oldest {
            Some((_, i)) => {
                self.release(i);
                true
            }
            None => false,
        }
    }

    /// Releases every block kept more than [`STALE_AFTER`] keeps ago.
    fn release_stale(&mut self) {
        for i in 0..SLOTS {
            if self.blocks[i].is_some_and(|b| b.kept + STALE_AFTER < self.kept) {
                self.release(i);
            }
        }
    }

    fn release(&mut self, slot: usize) {
        if let Some(block) = self.blocks[slot].take() {
            self.bytes -= block.size;
            // SAFETY: the block came from `System` with this size and alignment and left the cache.
            unsafe { System.dealloc(block.ptr as *mut u8, Layout::from_size_align_unchecked(block.size, block.align)) };
        }
    }
}

/// The allocator: the system allocator plus the cache of free large blocks.
pub struct BlockCache {
    free: Mutex<Free>,
    limit: AtomicUsize,
}

impl BlockCache {
    pub const fn new() -> Self {
        Self { free: Mutex::new(Free { blocks: [None; SLOTS], bytes: 0, kept: 0 }), limit: AtomicUsize::new(DEFAULT_LIMIT) }
    }

    /// Bounds the bytes of free blocks the cache keeps (0 turns it off), from the next block
    /// freed on (which releases older blocks until the cache is within the bound).
    pub fn set_limit(&self, bytes: usize) {
        self.limit.store(bytes, Ordering::Relaxed);
    }

    /// The current bound (see [`BlockCache::set_limit`]).
    pub fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    /// A cached block of exactly `layout`'s size and alignment, taken out of the cache.
    fn take(&self, layout: Layout) -> Option<*mut u8> {
        let mut free = self.free.lock().ok()?;
        let slot = free.blocks.iter().position(|b| b.is_some_and(|b| b.size == layout.size() && b.align == layout.align()))?;
        let block = free.blocks[slot].take()?;
        free.bytes -= block.size;
        Some(block.ptr as *mut u8)
    }

    /// Keeps a freed block, releasing the oldest kept ones to make room; false if the caller
    /// must release it (larger than the whole bound).
    fn keep(&self, ptr: *mut u8, layout: Layout) -> bool {
        let limit = self.limit();
        let Ok(mut free) = self.free.lock() else { return false };
        let fits = layout.size() <= limit;
        let incoming = if fits { layout.size() } else { 0 };
        while free.bytes + incoming > limit || (fits && free.blocks.iter().all(Option::is_some)) {
            if !free.release_oldest() {
                return false;
            }
        }
        let slot = free.blocks.iter().position(Option::is_none);
        let (true, Some(slot)) = (fits, slot) else { return false };
        free.kept += 1;
        let kept = free.kept;
        free.blocks[slot] = Some(Block { ptr: ptr as usize, size: layout.size(), align: layout.align(), kept });
        free.bytes += layout.size();
        free.release_stale();
        true
    }

    /// Bytes of free blocks held now.
    pub fn cached_bytes(&self) -> usize {
        self.free.lock().map(|f| f.bytes).unwrap_or(0)
    }
}

impl Drop for BlockCache {
    fn drop(&mut self) {
        if let Ok(free) = self.free.get_mut() {
            while free.release_oldest() {}
        }
    }
}

impl Default for BlockCache {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: every block handed out was allocated by `System` with the same size and alignment as
// the request, and is handed out once (it leaves the cache under the lock); blocks the cache
// does not keep go back to `System` with their own layout.
unsafe impl GlobalAlloc for BlockCache {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= MIN_CACHED {
            if let Some(ptr) = self.take(layout) {
                return ptr;
            }
        }
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= MIN_CACHED {
            if let Some(ptr) = self.take(layout) {
                std::ptr::write_bytes(ptr, 0, layout.size());
                return ptr;
            }
        }
        System.alloc_zeroed(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if layout.size() >= MIN_CACHED && self.keep(ptr, layout) {
            return;
        }
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if layout.size() < MIN_CACHED && new_size < MIN_CACHED {
            return System.realloc(ptr, layout, new_size);
        }
        // SAFETY (as `GlobalAlloc::realloc`'s default): the new layout is valid because the
        // caller guarantees `new_size` rounded up to `layout.align()` does not overflow.
        let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
        let new = self.alloc(new_layout);
        if !new.is_null() {
            std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
            self.dealloc(ptr, layout);
        }
        new
    }
}

// SAFETY: forwards to `CACHE` (see its impl).
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        CACHE.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        CACHE.alloc_zeroed(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        CACHE.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        CACHE.realloc(ptr, layout, new_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cache hands a freed block to the next request of its size (zeroed when asked), and
    /// never one of another size or alignment; a full cache releases.
    #[test]
    fn reuses_blocks_of_the_same_layout_only() {
        let cache = BlockCache::new();
        let layout = Layout::from_size_align(MIN_CACHED + 64, 64).unwrap();
        // SAFETY: every pointer passed back was allocated by this cache with the layout given.
        unsafe {
            let a = cache.alloc(layout);
            assert!(!a.is_null());
            std::ptr::write_bytes(a, 7, layout.size());
            cache.dealloc(a, layout);
            assert_eq!(cache.cached_bytes(), layout.size());

            let other = Layout::from_size_align(MIN_CACHED + 128, 64).unwrap();
            let b = cache.alloc(other);
            assert_ne!(a, b, "a block of another size");
            let c = cache.alloc(Layout::from_size_align(layout.size(), 128).unwrap());
            assert_ne!(a, c, "a block of another alignment");

            let z = cache.alloc_zeroed(layout);
            assert_eq!(z, a, "the freed block of the same layout");
            assert!(std::slice::from_raw_parts(z, layout.size()).iter().all(|&v| v == 0), "zeroed");
            assert_eq!(cache.cached_bytes(), 0);

            cache.dealloc(z, layout);
            cache.dealloc(b, other);
            cache.dealloc(c, Layout::from_size_align(layout.size(), 128).unwrap());
            assert_eq!(cache.cached_bytes(), 2 * layout.size() + other.size());
        }
    }

    #[test]
    fn parses_the_bound_in_mib() {
        assert_eq!(parse_limit_mb("512"), Some(512 << 20));
        assert_eq!(parse_limit_mb(" 0 "), Some(0));
        for bad in ["", "-1", "1.5", "lots", "99999999999999999999"] {
            assert_eq!(parse_limit_mb(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn small_blocks_and_a_full_cache_go_to_the_system() {
        let cache = BlockCache::new();
        // SAFETY: every pointer passed back was allocated by this cache with the layout given.
        unsafe {
            let small = Layout::from_size_align(1024, 8).unwrap();
            let p = cache.alloc(small);
            cache.dealloc(p, small);
            assert_eq!(cache.cached_bytes(), 0);

            // More blocks than slots: the oldest are released, the newest kept.
            let layout = Layout::from_size_align(MIN_CACHED, 8).unwrap();
            let blocks: Vec<*mut u8> = (0..SLOTS + 3).map(|_| cache.alloc(layout)).collect();
            for &b in &blocks {
                cache.dealloc(b, layout);
            }
            assert_eq!(cache.cached_bytes(), SLOTS * layout.size());
            let newest = cache.alloc(layout);
            assert!(blocks[3..].contains(&newest) && !blocks[..3].contains(&newest), "one of the blocks freed last");
            cache.dealloc(newest, layout);

            // Blocks of a size no longer asked for are released once STALE_AFTER others were kept.
            let other = Layout::from_size_align(MIN_CACHED + 8, 8).unwrap();
            for _ in 0..=STALE_AFTER {
                let p = cache.alloc(other);
                cache.dealloc(p, other);
            }
            assert_eq!(cache.cached_bytes(), other.size(), "only the block in use lately is kept");
            // Growing a cached-size block keeps its bytes.
            let g = cache.alloc(layout);
            std::ptr::write_bytes(g, 3, layout.size());
            let grown = cache.realloc(g, layout, 2 * MIN_CACHED);
            assert!(std::slice::from_raw_parts(grown, layout.size()).iter().all(|&v| v == 3));
            cache.dealloc(grown, Layout::from_size_align(2 * MIN_CACHED, 8).unwrap());

            // A lower bound releases the oldest blocks as the next one is freed; 0 keeps none.
            cache.set_limit(4 * MIN_CACHED);
            let p = cache.alloc(layout);
            cache.dealloc(p, layout);
            assert!(cache.cached_bytes() <= 4 * MIN_CACHED, "{} bytes cached", cache.cached_bytes());
            cache.set_limit(0);
            let p = cache.alloc(layout);
            cache.dealloc(p, layout);
            assert_eq!(cache.cached_bytes(), 0);
        }
    }
}

//! Lane executors for the extras: hand each lane to a closure as a contiguous slice of the
//! compute type (read in place when possible, else gathered into a per-thread buffer), rows in
//! parallel on the crate's threads when the call is large.

use crate::element::{is_native, narrow_strided, widen_into_scratch, Float};
use crate::error::Result;
use crate::layout::Lanes;
use crate::parallel::{is_parallel, map_init};
use crate::shared::SharedPtr;

/// Strided lanes of at most this many elements are gathered a block of lanes at a time: one
/// pass over each position of the block's lanes (neighbouring lanes are usually neighbours in
/// memory, so the pass reads whole cache lines) instead of a call per lane.
const GATHERED_LANE_MAX: usize = 64;

/// Elements per block of gathered lanes (16 KiB of `f32`: the block stays in L1 while its lanes
/// are computed). Ctrl-C is polled once per block.
const GATHER_BLOCK_ELEMS: usize = 4096;

/// Lanes per parallel task: whole lanes, at least ~8k elements' worth.
fn min_lanes(len: usize) -> usize {
    (8 * 1024 / len.max(1)).max(1)
}

/// A task's buffers: gathered lanes, one block's lane offsets, and the scratch handed to the
/// per-lane closure. Owned by the running task, never a thread-local: a task waiting on nested
/// parallel work may run another task's lanes on the same thread.
struct LaneBufs<C> {
    gather: Vec<C>,
    offsets: Vec<isize>,
    scratch: Vec<C>,
}

impl<C> Default for LaneBufs<C> {
    fn default() -> Self {
        LaneBufs {
            gather: Vec::new(),
            offsets: Vec::new(),
            scratch: Vec::new(),
        }
    }
}

/// `f(i, lane i as a contiguous compute-type slice)` for the lanes `range` of `src`, in order,
/// stopping at the first error. A lane is read in place when it is its own compute-type slice;
/// short strided lanes are gathered a block at a time ([`GATHERED_LANE_MAX`]); longer ones one
/// at a time. Polls for an interruption about every 16k elements.
///
/// # Safety
/// Every element of the lanes `range` of `src` is valid for reads and not written during the
/// call.
unsafe fn each_lane<T: Float>(
    src: *const T,
    lanes: &Lanes,
    range: std::ops::Range<usize>,
    gather: &mut Vec<T::Compute>,
    offsets: &mut Vec<isize>,
    mut f: impl FnMut(usize, &[T::Compute]) -> Result<()>,
) -> Result<()> {
    let (n, stride) = (lanes.len, lanes.stride);
    if n == 0 {
        // Not a pointer cast: a float16 pointer need not be aligned for the f32 it computes in.
        return range.into_iter().try_for_each(|i| f(i, &[]));
    }
    if reads_in_place::<T>(lanes) {
        for i in range {
            if crate::interrupt::poll_at(i, n) {
                return Err(crate::Error::Interrupted);
            }
            // SAFETY: T is its own compute type and lane i's n elements are adjacent, readable
            // and not written during the borrow (the caller's contract).
            let x = unsafe {
                std::slice::from_raw_parts(src.offset(lanes.offset(i)) as *const T::Compute, n)
            };
            f(i, x)?;
        }
        return Ok(());
    }
    if n > GATHERED_LANE_MAX {
        for i in range {
            if crate::interrupt::poll_at(i, n) {
                return Err(crate::Error::Interrupted);
            }
            // SAFETY: lane i's `n` elements, `stride` apart from its offset, are readable (the
            // caller's contract).
            unsafe {
                widen_into_scratch(
                    src.offset(lanes.offset(i)),
                    stride,
                    n,
                    gather,
                    "a lane's copy",
                )?
            };
            f(i, gather)?;
        }
        return Ok(());
    }
    // SAFETY: the caller's contract, with `1 <= n <= GATHERED_LANE_MAX` (checked above).
    unsafe {
        each_block(src, lanes, range, gather, offsets, |first, block| {
            for (l, x) in block.chunks_exact(n).enumerate() {
                f(first + l, x)?;
            }
            Ok(())
        })
    }
}

/// `f(first, block)` for consecutive blocks of the lanes `range` of `src`, in order, stopping
/// at the first error: `block` holds lanes `first..first + block.len() / n` back to back in the
/// compute type, gathered a block at a time ([`GATHER_BLOCK_ELEMS`] elements). Polls for an
/// interruption once per block.
///
/// # Safety
/// As [`each_lane`]; lanes of `1 <= n <= GATHERED_LANE_MAX` elements.
unsafe fn each_block<T: Float>(
    src: *const T,
    lanes: &Lanes,
    range: std::ops::Range<usize>,
    gather: &mut Vec<T::Compute>,
    offsets: &mut Vec<isize>,
    mut f: impl FnMut(usize, &[T::Compute]) -> Result<()>,
) -> Result<()> {
    let (n, stride) = (lanes.len, lanes.stride);
    debug_assert!((1..=GATHERED_LANE_MAX).contains(&n));
    let per_block = GATHER_BLOCK_ELEMS / n;
    let mut first = range.start;
    while first < range.end {
        if crate::interrupt::poll() {
            return Err(crate::Error::Interrupted);
        }
        let b = per_block.min(range.end - first);
        let lane_offsets = (first..first + b).map(|i| lanes.offset(i));
        crate::scratch::refill(offsets, b, lane_offsets, "a block's lane offsets")?;
        if gather.len() != b * n {
            // Sized once per task but for the last block: every element is written below.
            gather.clear();
            crate::scratch::resize(gather, b * n, T::Compute::default(), "a block of lanes")?;
        }
        // Position by position, lane by lane: the reads of one position walk neighbouring
        // lanes, usually adjacent in memory.
        for j in 0..n {
            let step = j as isize * stride;
            for (l, &off) in offsets.iter().enumerate() {
                // SAFETY: element j of lane first + l is readable (the caller's contract).
                gather[l * n + j] = unsafe { *src.offset(off + step) }.to_compute();
            }
        }
        f(first, gather)?;
        first += b;
    }
    Ok(())
}

/// `visit(i, lane_i, scratch)` for the lanes `range`, in tasks of whole lanes shared among the
/// threads when the call is large; the first error in lane order. `scratch` is a buffer owned
/// by the running task.
///
/// # Safety
/// Every element of the lanes `range` of `src` is valid for reads and nobody writes it during
/// the call.
unsafe fn visit_lanes<T: Float>(
    src: *const T,
    lanes: &Lanes,
    range: std::ops::Range<usize>,
    visit: impl Fn(usize, &[T::Compute], &mut Vec<T::Compute>) -> Result<()> + Sync,
) -> Result<()> {
    let s = SharedPtr(src as *mut T);
    in_tasks(lanes, range, |bufs: &mut LaneBufs<T::Compute>, range| {
        let LaneBufs {
            gather,
            offsets,
            scratch,
        } = bufs;
        // SAFETY: the caller's contract; the range's lanes are in bounds.
        unsafe {
            each_lane(
                s.get() as *const T,
                lanes,
                range,
                gather,
                offsets,
                |i, x| visit(i, x, scratch),
            )
        }
    })
}

/// `task(bufs, range)` for consecutive ranges of the lanes `all`, together all of them, shared
/// among the threads when the call is large (ranges of at least ~8k elements' worth); the first
/// error in lane order. `bufs` are owned by the running task.
fn in_tasks<C: Default + Send>(
    lanes: &Lanes,
    all: std::ops::Range<usize>,
    task: impl Fn(&mut LaneBufs<C>, std::ops::Range<usize>) -> Result<()> + Sync,
) -> Result<()> {
    let (first, count) = (all.start, all.len());
    let per_task = min_lanes(lanes.len);
    let work = lanes.len.saturating_mul(count).max(count);
    map_init(
        count.div_ceil(per_task),
        1,
        is_parallel(work),
        LaneBufs::default,
        |bufs, c| {
            task(
                bufs,
                first + c * per_task..first + ((c + 1) * per_task).min(count),
            )
        },
    )?
    .into_iter()
    .collect()
}

/// `f(first, block, results)` for consecutive blocks of short lanes (`1 <= n <=
/// GATHERED_LANE_MAX` elements): `block` holds lanes `first..first + results.len()` back to back
/// in the compute type, and `results` is their part of `out`; the first error in lane order
/// (`out` then partly written). Parallel over blocks when large. For computations that take
/// many lanes per call.
///
/// # Safety
/// Every element of every lane of `src` is valid for reads and nobody writes it during the call.
pub(crate) unsafe fn blocks_into<T: Float, R: Send>(
    src: *const T,
    lanes: &Lanes,
    out: &mut [R],
    f: impl Fn(usize, &[T::Compute], &mut [R]) -> Result<()> + Sync,
) -> Result<()> {
    let n = lanes.len;
    assert!(out.len() == lanes.count() && (1..=GATHERED_LANE_MAX).contains(&n));
    let base = out.as_mut_ptr() as usize;
    // SAFETY: the caller's contract. Entries `first..first + block.len() / n` of `out` (one
    // per lane, `out` outliving the call) belong to the block's lanes, visited by one task.
    unsafe {
        in_blocks(src, lanes, |_, first, block| {
            let results = (base as *mut R).add(first);
            f(
                first,
                block,
                std::slice::from_raw_parts_mut(results, block.len() / n),
            )
        })
    }
}

/// `f(scratch, first, block)` for the blocks of short lanes that [`each_block`] gathers, in
/// tasks shared among the threads when the call is large ([`in_tasks`]); `scratch` is a buffer
/// owned by the running task.
///
/// # Safety
/// As [`each_block`], for every lane of `src`.
unsafe fn in_blocks<T: Float>(
    src: *const T,
    lanes: &Lanes,
    f: impl Fn(&mut Vec<T::Compute>, usize, &[T::Compute]) -> Result<()> + Sync,
) -> Result<()> {
    let s = SharedPtr(src as *mut T);
    in_tasks(
        lanes,
        0..lanes.count(),
        |bufs: &mut LaneBufs<T::Compute>, range| {
            let LaneBufs {
                gather,
                offsets,
                scratch,
            } = bufs;
            // SAFETY: the caller's contract; the range's lanes are in bounds.
            unsafe {
                each_block(
                    s.get() as *const T,
                    lanes,
                    range,
                    gather,
                    offsets,
                    |first, block| f(scratch, first, block),
                )
            }
        },
    )
}

/// Whether [`blocks_into`] takes lanes of `n` elements.
pub(crate) fn takes_blocks(n: usize) -> bool {
    (1..=GATHERED_LANE_MAX).contains(&n)
}

/// `out[i] = f(i, lane_i, scratch)` for every lane, or the first lane's error (in lane order;
/// `out` then partly written). Parallel over lanes when large.
///
/// # Safety
/// Every element of every lane of `src` is valid for reads and nobody writes it during the call.
pub(crate) unsafe fn lanes_into<T: Float, R: Send>(
    src: *const T,
    lanes: &Lanes,
    out: &mut [R],
    f: impl Fn(usize, &[T::Compute], &mut Vec<T::Compute>) -> Result<R> + Sync,
) -> Result<()> {
    // SAFETY: the caller's contract.
    unsafe { lane_range_into(src, lanes, 0..lanes.count(), out, f) }
}

/// [`lanes_into`] for the lanes `range` only: `out[i - range.start] = f(i, lane_i, scratch)`.
/// For a caller that takes the results a range at a time, from a buffer that stays in the
/// caches, instead of one result per lane of a large call in memory.
///
/// # Safety
/// Every element of the lanes `range` of `src` is valid for reads and nobody writes it during
/// the call.
pub(crate) unsafe fn lane_range_into<T: Float, R: Send>(
    src: *const T,
    lanes: &Lanes,
    range: std::ops::Range<usize>,
    out: &mut [R],
    f: impl Fn(usize, &[T::Compute], &mut Vec<T::Compute>) -> Result<R> + Sync,
) -> Result<()> {
    assert!(
        out.len() == range.len() && range.end <= lanes.count(),
        "one result per lane of the range"
    );
    let (base, first) = (out.as_mut_ptr() as usize, range.start);
    // SAFETY: the caller's contract; entry i - first of `out` (one per lane of the range, and
    // `out` outlives the call) is written by the task visiting lane i alone.
    unsafe {
        visit_lanes(src, lanes, range, |i, x, scratch| {
            *(base as *mut R).add(i - first) = f(i, x, scratch)?;
            Ok(())
        })
    }
}

/// [`lanes_into`] into a new vector: the results in lane order.
///
/// # Safety
/// As [`lanes_into`].
pub(crate) unsafe fn collect_lanes<T: Float, R: Send + Clone + Default>(
    src: *const T,
    lanes: &Lanes,
    f: impl Fn(usize, &[T::Compute], &mut Vec<T::Compute>) -> Result<R> + Sync,
) -> Result<Vec<R>> {
    let mut out = crate::scratch::filled(lanes.count(), R::default(), "per-lane results")?;
    // SAFETY: the caller's contract.
    unsafe { lanes_into(src, lanes, &mut out, f) }?;
    Ok(out)
}

/// `f(x, out)` over the lanes of `src` into the matching lanes of `dst` (same lane length `n`),
/// or the first error: `x` and `out` hold one or more whole lanes back to back (`n` elements
/// each; short gathered lanes come a block at a time). Parallel over lanes when large.
///
/// # Safety
/// Every element of every lane of `src` is valid for reads, and of `dst` for writes; `dst`'s
/// lanes are pairwise disjoint and disjoint from `src`; nobody else touches them during the call.
pub(crate) unsafe fn map_lanes_with<T: Float>(
    src: *const T,
    src_lanes: &Lanes,
    dst: *mut T,
    dst_lanes: &Lanes,
    f: impl Fn(&[T::Compute], &mut [T::Compute]) -> Result<()> + Sync,
) -> Result<()> {
    debug_assert_eq!(src_lanes.len, dst_lanes.len);
    debug_assert_eq!(src_lanes.count(), dst_lanes.count());
    let n = src_lanes.len;
    if n == 0 || src_lanes.count() == 0 {
        return Ok(());
    }
    let d = SharedPtr(dst);
    let in_place = is_native::<T>() && dst_lanes.stride == 1;
    if takes_blocks(n) && !reads_in_place::<T>(src_lanes) {
        // SAFETY: the caller's contract.
        return unsafe { map_blocks(src, src_lanes, dst, dst_lanes, f) };
    }
    // SAFETY: the caller's contract: every lane of src is readable, and lane i of dst writable
    // and touched only by the task visiting lane i.
    unsafe {
        visit_lanes(src, src_lanes, 0..src_lanes.count(), |i, x, scratch| {
            let p = d.get().offset(dst_lanes.offset(i));
            if in_place {
                f(x, std::slice::from_raw_parts_mut(p as *mut T::Compute, n))
            } else {
                scratch.clear();
                crate::scratch::resize(scratch, n, x[0], "a lane's result")?;
                f(x, scratch)?;
                narrow_strided(scratch, p, dst_lanes.stride);
                Ok(())
            }
        })
    }
}

/// [`map_lanes_with`] for short lanes read by gathering: a block of lanes at a time, as
/// [`each_block`] reads them, in one call of `f` into one buffer, written back from there.
///
/// # Safety
/// As [`map_lanes_with`]; lanes of `1 <= n <= GATHERED_LANE_MAX` elements.
unsafe fn map_blocks<T: Float>(
    src: *const T,
    src_lanes: &Lanes,
    dst: *mut T,
    dst_lanes: &Lanes,
    f: impl Fn(&[T::Compute], &mut [T::Compute]) -> Result<()> + Sync,
) -> Result<()> {
    let (n, stride, d) = (src_lanes.len, dst_lanes.stride, SharedPtr(dst));
    // SAFETY: the caller's contract.
    unsafe {
        in_blocks(src, src_lanes, |scratch, first, block| {
            scratch.clear();
            crate::scratch::resize(scratch, block.len(), block[0], "a block's results")?;
            f(block, scratch)?;
            for (l, lane) in scratch.chunks_exact(n).enumerate() {
                let p = d.get().offset(dst_lanes.offset(first + l));
                for (j, &v) in lane.iter().enumerate() {
                    // SAFETY: element j of lane first + l of `dst` is writable and touched by
                    // this task alone (the caller's contract).
                    *p.offset(j as isize * stride) = T::from_compute(v);
                }
            }
            Ok(())
        })
    }
}

/// Whether [`each_lane`] reads the lanes in place: each is its own compute-type slice.
fn reads_in_place<T: Float>(lanes: &Lanes) -> bool {
    is_native::<T>() && (lanes.stride == 1 || lanes.len == 1)
}

/// Entry `label` of a lane in `f64`, or NaN when it is out of range: the labels were checked,
/// but another thread may write them during the call (contract R3), so no index panics.
#[inline]
pub(crate) fn label_value<C: crate::Real>(x: &[C], label: usize) -> f64 {
    x.get(label).map_or(f64::NAN, |v| v.to_f64())
}

/// The maximum of `x` ignoring NaN, and whether any entry is NaN. Eight independent
/// accumulators, so that the compiler vectorises it; exact, so the grouping does not matter.
#[inline]
pub(crate) fn max_nan<C: crate::Real>(x: &[C]) -> (C, bool) {
    if x.len() < 8 {
        // Short lanes (many of them in a call): one pass, no accumulators to set up and merge.
        let (mut m, mut nan) = (C::NEG_INFINITY, false);
        for &v in x {
            nan |= v.is_nan();
            if v > m {
                m = v;
            }
        }
        return (m, nan);
    }
    let mut acc = [C::NEG_INFINITY; 8];
    let mut nan = [false; 8];
    let chunks = x.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for j in 0..8 {
            let v = c[j];
            nan[j] |= v.is_nan();
            acc[j] = if v > acc[j] { v } else { acc[j] };
        }
    }
    let mut m = C::NEG_INFINITY;
    let mut any_nan = nan.iter().any(|&b| b);
    for &v in acc.iter().chain(rest) {
        any_nan |= v.is_nan();
        if v > m {
            m = v;
        }
    }
    (m, any_nan)
}

pub(crate) use crate::layout::rows_of;

/// Sequential compensated (Neumaier) sum, in order: the same bits whatever produced the terms.
pub(crate) fn neumaier_sum(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut acc = Neumaier::default();
    values.into_iter().for_each(|v| acc.add(v));
    acc.value()
}

/// A running [`neumaier_sum`]: terms added one at a time, in order.
#[derive(Clone, Copy, Default)]
pub(crate) struct Neumaier {
    sum: f64,
    comp: f64,
}

impl Neumaier {
    #[inline]
    pub(crate) fn add(&mut self, v: f64) {
        let t = self.sum + v;
        if self.sum.abs() >= v.abs() {
            self.comp += (self.sum - t) + v;
        } else {
            self.comp += (v - t) + self.sum;
        }
        self.sum = t;
    }

    pub(crate) fn value(self) -> f64 {
        // An infinite or NaN term makes the compensation NaN; the plain sum is then the answer.
        if self.sum.is_finite() {
            self.sum + self.comp
        } else {
            self.sum
        }
    }
}

//! Lane executors for the extras: hand each lane to a closure as a contiguous slice of the
//! compute type (read in place when possible, else gathered into a per-thread buffer), rows in
//! parallel on the crate's threads when the call is large.

use crate::element::{is_native, narrow_strided, widen_into_scratch, Float};
use crate::error::Result;
use crate::layout::Lanes;
use crate::parallel::{is_parallel, map_init};
use crate::shared::SharedPtr;

/// Reads lane `i` of `src` as a contiguous compute-type slice, gathering into `buf` if needed
/// (an error when `buf` cannot grow to the lane, contract R1).
///
/// # Safety
/// Every element of lane `i` is valid for reads and not written during the borrow.
#[inline]
pub(crate) unsafe fn read_lane<'a, T: Float>(
    src: *const T,
    lanes: &Lanes,
    i: usize,
    buf: &'a mut Vec<T::Compute>,
) -> Result<&'a [T::Compute]> {
    let n = lanes.len;
    // SAFETY: lane `i`'s first element is readable (the caller's contract), so its offset is
    // within the allocation.
    let p = unsafe { src.offset(lanes.offset(i)) };
    if is_native::<T>() && (lanes.stride == 1 || n <= 1) {
        // SAFETY: T is its own compute type and the lane's n elements are adjacent, readable
        // and not written during the borrow (the caller's contract).
        return Ok(unsafe { std::slice::from_raw_parts(p as *const T::Compute, n) });
    }
    // SAFETY: the lane's `n` elements, `stride` apart from `p`, are readable (the contract).
    unsafe { widen_into_scratch(p, lanes.stride, n, buf, "a lane's copy")? };
    Ok(buf)
}

/// Writes `vals` to lane `i` of `dst`.
///
/// # Safety
/// Every element of lane `i` of `dst` is valid for writes and accessed by nobody else.
#[inline]
pub(crate) unsafe fn write_lane<T: Float>(
    dst: *mut T,
    lanes: &Lanes,
    i: usize,
    vals: &[T::Compute],
) {
    // SAFETY: the elements of lane `i` of `dst` are valid for writes and accessed by nobody
    // else (the caller's contract).
    unsafe { narrow_strided(vals, dst.offset(lanes.offset(i)), lanes.stride) };
}

/// Lanes per parallel task: whole lanes, at least ~8k elements' worth.
fn min_lanes(len: usize) -> usize {
    (8 * 1024 / len.max(1)).max(1)
}

/// `f(i, lane_i, scratch)` for every lane, results in lane order, or the first lane's error
/// (in lane order). Parallel over lanes when large. `scratch` is a buffer owned by the running task (never a thread-local: a task waiting
/// on nested parallel work may run another lane on the same thread).
///
/// # Safety
/// Every element of every lane of `src` is valid for reads and nobody writes it during the call.
pub(crate) unsafe fn collect_lanes<T: Float, R: Send>(
    src: *const T,
    lanes: &Lanes,
    f: impl Fn(usize, &[T::Compute], &mut Vec<T::Compute>) -> Result<R> + Sync,
) -> Result<Vec<R>> {
    let count = lanes.count();
    let s = SharedPtr(src as *mut T);
    let one = |i: usize, bufs: &mut (Vec<T::Compute>, Vec<T::Compute>)| {
        if crate::interrupt::poll_at(i, lanes.len) {
            return Err(crate::Error::Interrupted);
        }
        let (gather, scratch) = bufs;
        // SAFETY: the caller's contract; lane i is in bounds.
        let x = unsafe { read_lane(s.get() as *const T, lanes, i, gather) }?;
        f(i, x, scratch)
    };
    let work = lanes.len.saturating_mul(count).max(count);
    map_init(
        count,
        min_lanes(lanes.len),
        is_parallel(work),
        || (Vec::new(), Vec::new()),
        |bufs, i| one(i, bufs),
    )?
    .into_iter()
    .collect()
}

/// `f(x_lane, out_lane)` for every lane of `src` into the matching lane of `dst` (same lane
/// length), or the first lane's error. Parallel over lanes when large.
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
    let count = src_lanes.count();
    let n = src_lanes.len;
    if n == 0 || count == 0 {
        return Ok(());
    }
    let (s, d) = (SharedPtr(src as *mut T), SharedPtr(dst));
    let one = |i: usize, bufs: &mut (Vec<T::Compute>, Vec<T::Compute>)| {
        if crate::interrupt::poll_at(i, n) {
            return Err(crate::Error::Interrupted);
        }
        let (inb, outb) = bufs;
        // SAFETY: the caller's contract: lane i of src is readable, lane i of dst writable and
        // touched by this task only.
        unsafe {
            let x = read_lane(s.get() as *const T, src_lanes, i, inb)?;
            if is_native::<T>() && dst_lanes.stride == 1 {
                let o = std::slice::from_raw_parts_mut(
                    d.get().offset(dst_lanes.offset(i)) as *mut T::Compute,
                    n,
                );
                f(x, o)
            } else {
                outb.clear();
                crate::scratch::resize(outb, n, x[0], "a lane's result")?;
                f(x, outb)?;
                write_lane(d.get(), dst_lanes, i, outb);
                Ok(())
            }
        }
    };
    map_init(
        count,
        min_lanes(n),
        is_parallel(n.saturating_mul(count)),
        || (Vec::new(), Vec::new()),
        |bufs, i| one(i, bufs),
    )?
    .into_iter()
    .collect()
}

/// The maximum of `x` ignoring NaN, and whether any entry is NaN. Eight independent
/// accumulators, so that the compiler vectorises it; exact, so the grouping does not matter.
#[inline]
pub(crate) fn max_nan<C: crate::Real>(x: &[C]) -> (C, bool) {
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

/// Σ x as f64 with eight accumulators (vectorisable; a fixed order, so deterministic).
#[inline]
pub(crate) fn sum_f64<C: crate::Real>(x: &[C]) -> f64 {
    let mut acc = [0.0f64; 8];
    let chunks = x.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for j in 0..8 {
            acc[j] += c[j].to_f64();
        }
    }
    let mut s = acc.iter().sum::<f64>();
    for &v in rest {
        s += v.to_f64();
    }
    s
}

pub(crate) use crate::layout::rows_of;

/// Sequential compensated (Neumaier) sum, in order: the same bits whatever produced the terms.
pub(crate) fn neumaier_sum(values: impl IntoIterator<Item = f64>) -> f64 {
    let (mut sum, mut comp) = (0.0f64, 0.0f64);
    for v in values {
        let t = sum + v;
        if sum.abs() >= v.abs() {
            comp += (sum - t) + v;
        } else {
            comp += (v - t) + sum;
        }
        sum = t;
    }
    // An infinite or NaN term makes the compensation NaN; the plain sum is then the answer.
    if sum.is_finite() {
        sum + comp
    } else {
        sum
    }
}

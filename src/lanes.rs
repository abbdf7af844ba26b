//! Strided lanes: the vectors a function works along inside an n-dimensional strided array.
//!
//! This is the layer the NumPy bindings call: any axis and any strides, without copying the
//! array. A lane whose elements are adjacent is computed where it lies; any other lane is
//! gathered into a per-thread buffer, computed there and scattered back, one lane at a time.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::cache;
use crate::element::{is_native, Float, Real};
use crate::error::{Error, Result};
use crate::kernels::{kernels, HasKernels, Store, BLOCK};
use crate::parallel::{get_num_threads, is_parallel, map_init, map_ranges, run_shared};
use crate::row::{logsumexp_row, map_row, map_row_with, map_rows_streamed, Op};
use crate::simd::SimdLevel;
use crate::temperature::Temperature;

/// Where the lanes of a strided array lie. Strides count elements, not bytes, and may be
/// negative or zero.
///
/// ```
/// use logitkit::Lanes;
/// // A C-contiguous 2 x 3 x 4 array, lanes along axis 1.
/// let lanes = Lanes::from_strided(&[2, 3, 4], &[12, 4, 1], 1);
/// assert_eq!((lanes.len, lanes.stride), (3, 4));
/// assert_eq!(lanes.count(), 8);
/// assert_eq!(lanes.offset(5), 12 + 1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lanes {
    /// Elements per lane.
    pub len: usize,
    /// Distance between consecutive elements of a lane.
    pub stride: isize,
    /// The other dimensions, outermost first: (extent, stride). Lanes are numbered in C order
    /// over these.
    pub outer: Vec<(usize, isize)>,
}

impl Lanes {
    /// `rows` contiguous rows of `row_len` elements each, one after the other.
    pub fn rows(rows: usize, row_len: usize) -> Lanes {
        Lanes {
            len: row_len,
            stride: 1,
            outer: vec![(rows, row_len as isize)],
        }
    }

    /// The lanes along `axis` of an array of `shape` and element `strides`.
    ///
    /// # Panics
    /// If `axis >= shape.len()` or the lengths of `shape` and `strides` differ.
    pub fn from_strided(shape: &[usize], strides: &[isize], axis: usize) -> Lanes {
        assert_eq!(
            shape.len(),
            strides.len(),
            "shape and strides differ in length"
        );
        assert!(axis < shape.len(), "axis out of range");
        let outer = (0..shape.len())
            .filter(|&d| d != axis)
            .map(|d| (shape[d], strides[d]))
            .collect();
        Lanes {
            len: shape[axis],
            stride: strides[axis],
            outer,
        }
    }

    /// Number of lanes.
    pub fn count(&self) -> usize {
        self.outer.iter().map(|&(e, _)| e).product()
    }

    /// Offset, in elements, of the first element of lane `lane` (C order over `outer`).
    #[inline]
    pub fn offset(&self, mut lane: usize) -> isize {
        let mut off = 0isize;
        for &(extent, stride) in self.outer.iter().rev() {
            off += (lane % extent) as isize * stride;
            lane /= extent;
        }
        off
    }

    fn outer_extents(&self) -> impl Iterator<Item = usize> + '_ {
        self.outer.iter().map(|&(e, _)| e)
    }
}

/// Merges outer dimensions that are one in both layouts (same lane numbering), so that lane
/// offsets cost one multiply in the common case.
pub fn coalesce(a: &mut Lanes, b: &mut Lanes) {
    debug_assert!(a.outer_extents().eq(b.outer_extents()));
    let mut ao: Vec<(usize, isize)> = Vec::with_capacity(a.outer.len());
    let mut bo: Vec<(usize, isize)> = Vec::with_capacity(b.outer.len());
    for (&(e, sa), &(_, sb)) in a.outer.iter().zip(&b.outer) {
        if e == 1 {
            continue;
        }
        match (ao.last_mut(), bo.last_mut()) {
            (Some(la), Some(lb)) if la.1 == sa * e as isize && lb.1 == sb * e as isize => {
                la.0 *= e;
                la.1 = sa;
                lb.0 *= e;
                lb.1 = sb;
            }
            _ => {
                ao.push((e, sa));
                bo.push((e, sb));
            }
        }
    }
    if ao.is_empty() && a.count() == 1 {
        ao.push((1, 0));
        bo.push((1, 0));
    }
    if a.count() == 0 {
        ao = vec![(0, 0)];
        bo = vec![(0, 0)];
    }
    a.outer = ao;
    b.outer = bo;
}

#[derive(Clone, Copy)]
struct SendPtr<T>(*mut T);
// SAFETY: lanes handed to different threads are disjoint (the callers' contract).
unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}

impl<T> SendPtr<T> {
    // A method, so closures capture the whole (Send) wrapper, not its raw field.
    #[inline(always)]
    fn get(self) -> *mut T {
        self.0
    }
}

/// Computes one lane. Adjacent elements in both source and destination: computed in place;
/// otherwise through `buf`.
///
/// # Safety
/// See [`map_lanes`].
#[allow(clippy::too_many_arguments)]
unsafe fn map_lane<T: Float>(
    op: Op,
    src: *const T,
    src_stride: isize,
    dst: *mut T,
    dst_stride: isize,
    n: usize,
    t: f64,
    buf: &mut Vec<T::Compute>,
    parallel_row: bool,
    stream: bool,
) {
    if is_native::<T>() && src_stride == 1 && dst_stride == 1 {
        let k = kernels::<T::Compute>();
        map_row_with(k, op, src.cast(), dst.cast(), n, t, parallel_row, stream);
        return;
    }
    buf.clear();
    buf.extend((0..n).map(|i| (*src.offset(i as isize * src_stride)).to_compute()));
    let p = buf.as_mut_ptr();
    map_row::<T::Compute>(op, p, p, n, t, parallel_row);
    for (i, &v) in buf.iter().enumerate() {
        *dst.offset(i as isize * dst_stride) = T::from_compute(v);
    }
}

/// Lanes where `x - max` may overflow although `(x - max) / t` is moderate: a temperature above
/// [`Real::OVERFLOW_SAFE_TEMPERATURE`] (below it, an overflowed difference means a probability
/// that underflows to 0, which the kernels give) and a maximum beyond
/// [`Real::SUBTRACTION_SAFE_MAX`]. `None` when there is none (the usual case; nothing is read
/// unless some temperature is that high).
///
/// # Safety
/// Every element of every lane of `src` is valid for reads.
unsafe fn overflow_risk_lanes<T: Float>(
    src: *const T,
    lanes: &Lanes,
    temperature: Temperature<'_>,
) -> Option<Vec<bool>> {
    let hot = <T::Compute as Real>::OVERFLOW_SAFE_TEMPERATURE;
    let any_hot = match temperature {
        Temperature::Scalar(t) => t > hot,
        Temperature::PerRow(ts) => ts.iter().any(|&t| t > hot),
    };
    if !any_hot {
        return None;
    }
    let limit = <T::Compute as Real>::SUBTRACTION_SAFE_MAX;
    let risky: Vec<bool> = (0..lanes.count())
        .map(|i| {
            temperature.get(i) > hot && {
                let p = src.offset(lanes.offset(i));
                (0..lanes.len).any(|j| (*p.offset(j as isize * lanes.stride)).to_f64() > limit)
            }
        })
        .collect();
    risky.iter().any(|&r| r).then_some(risky)
}

/// [`map_lanes`] one lane at a time, the lanes marked in `exact` through the scalar kernels
/// (which compute such rows exactly), the others exactly as [`map_lanes`] would (contract S9:
/// a lane's result does not depend on its neighbours).
///
/// # Safety
/// As [`map_lanes`].
unsafe fn map_lanes_with_exact<T: Float>(
    op: Op,
    src: *const T,
    src_lanes: &Lanes,
    dst: *mut T,
    dst_lanes: &Lanes,
    temperature: Temperature<'_>,
    exact: &[bool],
) {
    let n = src_lanes.len;
    let mut buf: Vec<T::Compute> = Vec::new();
    for (i, &slow) in exact.iter().enumerate() {
        let (s, d, t) = (
            src.offset(src_lanes.offset(i)),
            dst.offset(dst_lanes.offset(i)),
            temperature.get(i),
        );
        if !slow {
            map_lane(
                op,
                s,
                src_lanes.stride,
                d,
                dst_lanes.stride,
                n,
                t,
                &mut buf,
                false,
                false,
            );
            continue;
        }
        buf.clear();
        buf.extend((0..n).map(|j| (*s.offset(j as isize * src_lanes.stride)).to_compute()));
        let p = buf.as_mut_ptr();
        map_row_with(
            <T::Compute as HasKernels>::kernels_for(SimdLevel::Scalar),
            op,
            p,
            p,
            n,
            t,
            false,
            false,
        );
        for (j, &v) in buf.iter().enumerate() {
            *d.offset(j as isize * dst_lanes.stride) = T::from_compute(v);
        }
    }
}

/// Source and destination lay out the same lanes (else a length error naming `out`).
pub(crate) fn check_same_lanes(src: &Lanes, dst: &Lanes) -> Result<()> {
    if src.len != dst.len || !src.outer_extents().eq(dst.outer_extents()) {
        return Err(Error::LengthMismatch {
            name: "out",
            got: dst.len * dst.count(),
            expected: src.len * src.count(),
        });
    }
    Ok(())
}

/// Rows one after another at fixed non-negative steps, elements adjacent: the layout the
/// many-rows kernel takes.
#[derive(Clone, Copy)]
struct RowRun {
    count: usize,
    src_step: usize,
    dst_step: usize,
}

impl RowRun {
    fn new(src: &Lanes, dst: &Lanes) -> Option<RowRun> {
        if src.stride != 1 || dst.stride != 1 {
            return None;
        }
        let (count, src_step, dst_step) = match (src.outer.as_slice(), dst.outer.as_slice()) {
            ([], []) => (1, 0, 0),
            ([(c, ss)], [(_, ds)]) => (*c, *ss, *ds),
            _ => return None,
        };
        if src_step < 0 || dst_step < 0 {
            return None;
        }
        Some(RowRun {
            count,
            src_step: src_step as usize,
            dst_step: dst_step as usize,
        })
    }
}

/// Rows of at most [`BLOCK`] elements through the level's many-rows kernel: one call per chunk
/// of rows ([`ROWS_CHUNK`] to [`ROWS_CHUNK_MAX`] elements), chunks shared among the threads. Each row is computed
/// by the same code whatever the chunking, so the thread count does not change a bit (S9).
///
/// # Safety
/// As [`map_lanes`], with the layout `rows`.
unsafe fn map_row_runs<C: Real>(
    op: Op,
    src: *const C,
    dst: *mut C,
    n: usize,
    rows: RowRun,
    temperature: Temperature<'_>,
) {
    let k = kernels::<C>();
    let (temps, temp_step) = match temperature {
        Temperature::Scalar(ref t) => (t as *const f64, 0),
        Temperature::PerRow(ts) => (ts.as_ptr(), 1),
    };
    let (s, d, tp) = (
        SendPtr(src as *mut C),
        SendPtr(dst),
        SendPtr(temps as *mut f64),
    );
    let total = n.saturating_mul(rows.count);
    // Long runs of consecutive rows per task (up to ROWS_CHUNK_MAX elements, while leaving at
    // least 8 tasks per thread for balance): each thread then streams through long stretches of
    // memory, which the hardware prefetchers follow far better than short chunks alternating
    // between threads.
    let chunk_elems = (total / (8 * get_num_threads())).clamp(ROWS_CHUNK, ROWS_CHUNK_MAX);
    let chunk = (chunk_elems / n).max(1);
    let store = if streams::<C>(n, rows.count, std::ptr::eq(src, dst)) {
        Store::Stream
    } else {
        Store::Cached
    };
    let run = |first: usize| {
        let count = chunk.min(rows.count - first);
        // SAFETY: rows first..first + count are in the caller's layout, and so are their
        // temperatures; chunks are disjoint.
        unsafe {
            (k.rows)(
                op,
                s.get().add(first * rows.src_step),
                rows.src_step,
                d.get().add(first * rows.dst_step),
                rows.dst_step,
                n,
                count,
                tp.get().add(first * temp_step),
                temp_step,
                store,
            )
        }
    };
    let work = n.saturating_mul(rows.count);
    if !is_parallel(work) || rows.count == 1 {
        let mut first = 0;
        while first < rows.count {
            run(first);
            first += chunk;
        }
    } else {
        let chunks = rows.count.div_ceil(chunk);
        let next = AtomicUsize::new(0);
        let work = || loop {
            let c = next.fetch_add(1, Ordering::Relaxed);
            if c >= chunks {
                break;
            }
            run(c * chunk);
        };
        run_shared(get_num_threads().min(chunks) - 1, &work);
    }
}

/// Fewest elements per task of the many-rows path.
const ROWS_CHUNK: usize = 8 * 1024;

/// Most elements per task of the many-rows path. Measured against a same-size memcpy on
/// 32768x1024 float32 (cold caches, 2 threads): 1.16x with 8k-element tasks, 0.98x with 64k,
/// 0.94-1.04x with 512k; 4096x1000: 1.52x, 1.40x, 1.27-1.39x.
const ROWS_CHUNK_MAX: usize = 256 * 1024;

/// Most consecutive long lanes per task of the streamed path: enough that few rows end a run
/// (whose output is then written alone), few enough to balance the threads.
const STREAMED_RUN_MAX: usize = 16;

/// Shortest lane, in bytes, whose output is streamed. Each lane's first and last cache lines
/// are shared with its neighbours and written with normal stores; on short lanes those lines
/// are a large share, and streaming was far slower than normal stores. Measured with 2 threads
/// (`bw_probe`, caches larger than 32 MiB, alternating): 1048576x100 softmax took 61-65 ms
/// streamed against 31 ms, 262144x512 37 ms against 24; at 1000 elements (4000 bytes)
/// streaming was ahead (4096x1000: 602-741 µs against 723-1370).
const STREAM_MIN_LANE_BYTES: usize = 3 << 10;

/// Whether `count` lanes of `n` elements are written with non-temporal stores
/// ([`cache::streams`], for lanes of at least [`STREAM_MIN_LANE_BYTES`]). The choice never
/// changes a bit of the result.
fn streams<C>(n: usize, count: usize, in_place: bool) -> bool {
    let size = std::mem::size_of::<C>();
    if n.saturating_mul(size) < STREAM_MIN_LANE_BYTES {
        return false;
    }
    let out = n.saturating_mul(count).saturating_mul(size);
    cache::streams(if in_place { out } else { out.saturating_mul(2) })
}

/// Computes `op` (softmax or log-softmax) along every lane of `src` into the matching lane of
/// `dst`, lane `i` at temperature `temperature.get(i)`.
///
/// # Safety
/// - every element of every lane of `src` is valid for reads, and of `dst` for writes;
/// - distinct lanes of `dst` do not overlap, and no lane of `dst` overlaps a lane of `src`
///   other than the one at the same index; when they overlap, `dst == src` with identical
///   layouts (in place);
/// - nothing else reads or writes `dst`, or writes `src`, during the call.
pub unsafe fn map_lanes<T: Float>(
    op: Op,
    src: *const T,
    src_lanes: &Lanes,
    dst: *mut T,
    dst_lanes: &Lanes,
    temperature: Temperature<'_>,
) -> Result<()> {
    check_same_lanes(src_lanes, dst_lanes)?;
    let count = src_lanes.count();
    temperature.check_softmax(count)?;
    let n = src_lanes.len;
    if n == 0 || count == 0 {
        return Ok(());
    }
    if let Some(risky) = overflow_risk_lanes(src, src_lanes, temperature) {
        // SAFETY: the caller's contract.
        unsafe { map_lanes_with_exact(op, src, src_lanes, dst, dst_lanes, temperature, &risky) };
        return Ok(());
    }
    if is_native::<T>() && n <= BLOCK {
        if let Some(rows) = RowRun::new(src_lanes, dst_lanes) {
            // SAFETY: the caller's contract; `RowRun` checked the layout is plain rows.
            unsafe { map_row_runs::<T::Compute>(op, src.cast(), dst.cast(), n, rows, temperature) };
            return Ok(());
        }
    }
    let stream = streams::<T>(n, count, std::ptr::eq(src, dst));
    let (s, d) = (SendPtr(src as *mut T), SendPtr(dst));
    let work = n.saturating_mul(count);
    let parallel = is_parallel(work);
    if stream
        && n > BLOCK
        && is_native::<T>()
        && src_lanes.stride == 1
        && dst_lanes.stride == 1
        && (!parallel || count >= get_num_threads())
    {
        // Long rows streamed in runs of consecutive lanes, each row's output written during
        // the next row's first pass.
        let k = kernels::<T::Compute>();
        let lanes = |first: usize, len: usize| {
            let row = |i: usize| {
                let lane = first + i;
                (
                    s.get().offset(src_lanes.offset(lane)) as *const T::Compute,
                    d.get().offset(dst_lanes.offset(lane)) as *mut T::Compute,
                    temperature.get(lane),
                )
            };
            // SAFETY: the caller's contract; the lanes are distinct.
            unsafe { map_rows_streamed(k, op, n, len, row) };
        };
        if parallel {
            let run = (count / (8 * get_num_threads())).clamp(1, STREAMED_RUN_MAX);
            map_ranges(count, run, &mut Vec::<()>::new(), true, |_, r| {
                lanes(r.start, r.len())
            });
        } else {
            lanes(0, count);
        }
        return Ok(());
    }
    let lane = |i: usize, buf: &mut Vec<T::Compute>, parallel_row: bool| {
        // SAFETY: the caller's contract; lane i of each layout is in bounds.
        unsafe {
            map_lane(
                op,
                s.get().offset(src_lanes.offset(i)),
                src_lanes.stride,
                d.get().offset(dst_lanes.offset(i)),
                dst_lanes.stride,
                n,
                temperature.get(i),
                buf,
                parallel_row,
                stream,
            )
        }
    };
    if !parallel {
        let mut buf = Vec::new();
        (0..count).for_each(|i| lane(i, &mut buf, false));
    } else if count >= get_num_threads() {
        // Enough lanes to share: each task takes whole lanes, at least ~8k elements' worth.
        map_init(count, 8 * 1024 / n, true, Vec::new, |buf, i| {
            lane(i, buf, false)
        });
    } else {
        // Few long lanes: share each lane's blocks instead (the calling thread takes part).
        let mut buf = Vec::new();
        (0..count).for_each(|i| lane(i, &mut buf, true));
    }
    Ok(())
}

/// log-sum-exp along every lane of `src`; lane `i`'s result goes to `out[i]`.
///
/// # Safety
/// Every element of every lane of `src` is valid for reads, and nothing writes it during the
/// call.
pub unsafe fn logsumexp_lanes<T: Float>(
    src: *const T,
    src_lanes: &Lanes,
    out: &mut [T],
) -> Result<()> {
    let count = src_lanes.count();
    if out.len() != count {
        return Err(Error::LengthMismatch {
            name: "out",
            got: out.len(),
            expected: count,
        });
    }
    let n = src_lanes.len;
    let s = SendPtr(src as *mut T);
    let one = |i: usize, buf: &mut Vec<T::Compute>, parallel_row: bool| -> T {
        // SAFETY: the caller's contract; lane i is in bounds.
        unsafe {
            let p = s.get().offset(src_lanes.offset(i));
            if is_native::<T>() && src_lanes.stride == 1 {
                let x = std::slice::from_raw_parts(p as *const T::Compute, n);
                return T::from_compute(logsumexp_row(x, parallel_row));
            }
            buf.clear();
            buf.extend((0..n).map(|j| (*p.offset(j as isize * src_lanes.stride)).to_compute()));
            T::from_compute(logsumexp_row(buf, parallel_row))
        }
    };
    let work = n.saturating_mul(count).max(count);
    if !is_parallel(work) {
        let mut buf = Vec::new();
        out.iter_mut()
            .enumerate()
            .for_each(|(i, o)| *o = one(i, &mut buf, false));
    } else if count >= get_num_threads() {
        let vals = map_init(count, 8 * 1024 / n.max(1), true, Vec::new, |buf, i| {
            one(i, buf, false)
        });
        out.copy_from_slice(&vals);
    } else {
        let mut buf = Vec::new();
        out.iter_mut()
            .enumerate()
            .for_each(|(i, o)| *o = one(i, &mut buf, true));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_counts_input_and_output_once_each() {
        // Rows whose output alone is half the threshold: their input and output together reach
        // it, so a call into another buffer streams; in place, the same bytes are both, so not.
        let threshold = cache::last_level_bytes() / 4 * 3;
        let n = 1000;
        let rows = (threshold / 2).div_ceil(n * 4);
        assert!(streams::<f32>(n, rows, false));
        assert!(!streams::<f32>(n, rows, true));
        assert!(streams::<f32>(n, 2 * rows, true));
        assert!(!streams::<f32>(n, rows / 2, false));
        assert!(streams::<f64>(n, rows / 2 + 1, false));
    }

    #[test]
    fn short_lanes_never_stream() {
        let huge = cache::last_level_bytes() * 4;
        let f32_min = STREAM_MIN_LANE_BYTES / 4;
        assert!(streams::<f32>(f32_min, huge / f32_min, false));
        assert!(!streams::<f32>(f32_min - 1, huge / f32_min, false));
        assert!(!streams::<f32>(100, huge / 100, false));
        assert!(!streams::<f64>(
            STREAM_MIN_LANE_BYTES / 8 - 1,
            huge / 100,
            true
        ));
        assert!(streams::<f64>(STREAM_MIN_LANE_BYTES / 8, huge / 100, true));
    }
}

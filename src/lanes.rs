//! Strided lanes: the vectors a function works along inside an n-dimensional strided array.
//!
//! This is the layer the NumPy bindings call: any axis and any strides, without copying the
//! array. A lane whose elements are adjacent is computed where it lies. Other lanes are computed
//! a tile at a time (`Tiles`): a few lanes lying next to each other are gathered together
//! into a per-thread buffer, computed there by the same row code as contiguous lanes (so the
//! same bits, contract S9), and scattered back together. Gathering one strided lane at a time
//! instead used one element of every cache line it fetched, and with a power-of-two row length
//! the lines of one lane all fell into the same cache sets and were evicted before the
//! neighbouring lanes came for the rest (R8: 2048x32768 float32 along axis 0 took 1.3 s,
//! against 0.28 s for NumPy's `exp(x - max) / sum`).

use std::any::TypeId;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::cache;
use crate::element::{is_native, narrow_strided, widen_into_scratch, widen_strided, Float, Real};
use crate::error::{Error, Result};
use crate::interrupt;
use crate::kernels::{kernels, prefetch, HalfKernels, HalfRows, RowBatch, Store, BLOCK};
use crate::op::Op;
use crate::parallel::{get_num_threads, is_parallel, map_init, map_ranges, run_shared};
use crate::row::{
    keeps_exps, logsumexp_row, logsumexp_rows_with, map_row, map_row_half, map_row_with,
    map_rows_streamed,
};
use crate::shared::SharedPtr;
use crate::simd::{simd_level, SimdLevel};
use crate::temperature::Temperature;
use crate::view::{check_matching, StridedView, StridedViewMut};

pub use crate::layout::Lanes;

/// Merges outer dimensions that are one in both layouts (same lane numbering), so that lane
/// offsets cost one multiply in the common case. Layouts whose outer extents differ (another
/// lane numbering) are left as they are.
///
/// ```
/// use logitkit::lanes::coalesce;
/// use logitkit::Lanes;
/// // Rows of a C-contiguous 2 x 3 x 4 array, read and written in the same layout: the two
/// // outer dimensions merge into one of 6 lanes, 4 apart.
/// let mut src = Lanes::from_strided(&[2, 3, 4], &[12, 4, 1], 2);
/// let mut dst = src.clone();
/// let before: Vec<isize> = (0..6).map(|i| src.offset(i)).collect();
/// coalesce(&mut src, &mut dst);
/// assert_eq!(src.outer, vec![(6, 4)]);
/// assert_eq!(dst.outer, vec![(6, 4)]);
/// assert_eq!((0..6).map(|i| src.offset(i)).collect::<Vec<_>>(), before);
/// // Different lane numberings: unchanged.
/// let (mut a, mut b) = (Lanes::rows(3, 2), Lanes::rows(4, 2));
/// coalesce(&mut a, &mut b);
/// assert_eq!((a, b), (Lanes::rows(3, 2), Lanes::rows(4, 2)));
/// ```
pub fn coalesce(a: &mut Lanes, b: &mut Lanes) {
    if !a.outer_extents().eq(b.outer_extents()) {
        // Not the same lane numbering: nothing can be merged in both.
        return;
    }
    let mut ao: Vec<(usize, isize)> = Vec::with_capacity(a.outer.len());
    let mut bo: Vec<(usize, isize)> = Vec::with_capacity(b.outer.len());
    for (&(e, sa), &(_, sb)) in a.outer.iter().zip(&b.outer) {
        if e == 1 {
            continue;
        }
        match (ao.last_mut(), bo.last_mut()) {
            (Some(la), Some(lb))
                if Some(la.1) == sa.checked_mul(e as isize)
                    && Some(lb.1) == sb.checked_mul(e as isize) =>
            {
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

/// Computes one lane. Adjacent elements in both source and destination: computed in place;
/// otherwise through `buf`.
///
/// # Safety
/// See [`map_lanes_raw`].
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
) -> Result<()> {
    if src_stride == 1 && dst_stride == 1 && n > BLOCK {
        if let Some(h) = HalfTable::of::<T>().filter(|h| h.takes(t)) {
            // SAFETY: the table is `T`'s and takes `t`; the lane's `n` adjacent elements are
            // readable at `src` and writable at `dst`, the same or disjoint (`map_lanes_raw`).
            unsafe { h.map_row(op, src, dst, n, t, parallel_row, stream) };
            return Ok(());
        }
    }
    if is_native::<T>() && src_stride == 1 && dst_stride == 1 {
        let k = kernels::<T::Compute>();
        // SAFETY: `T` is its own compute type, and the lane's `n` adjacent elements are
        // readable at `src` and writable at `dst`, the same or disjoint (`map_lanes_raw`).
        unsafe { map_row_with(k, op, src.cast(), dst.cast(), n, t, parallel_row, stream) };
        return Ok(());
    }
    // SAFETY: the lane's `n` elements, `src_stride` apart, are readable (`map_lanes_raw`).
    unsafe { widen_into_scratch(src, src_stride, n, buf, "a lane's copy")? };
    let p = buf.as_mut_ptr();
    // SAFETY: `buf` holds the `n` elements, computed in place.
    unsafe { map_row::<T::Compute>(op, p, p, n, t, parallel_row) };
    // SAFETY: the lane's `n` elements, `dst_stride` apart, are writable by this call only
    // (`map_lanes_raw`).
    unsafe { narrow_strided(buf, dst, dst_stride) };
    Ok(())
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
                // SAFETY: every element of lane `i` is readable (this function's contract).
                unsafe {
                    let p = src.offset(lanes.offset(i));
                    (0..lanes.len).any(|j| (*p.offset(j as isize * lanes.stride)).to_f64() > limit)
                }
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
/// As [`map_lanes_raw`].
unsafe fn map_lanes_with_exact<T: Float>(
    op: Op,
    src: *const T,
    src_lanes: &Lanes,
    dst: *mut T,
    dst_lanes: &Lanes,
    temperature: Temperature<'_>,
    exact: &[bool],
) -> Result<()> {
    let n = src_lanes.len;
    let mut buf: Vec<T::Compute> = Vec::new();
    for (i, &slow) in exact.iter().enumerate() {
        if interrupt::poll_at(i, n) {
            return Ok(());
        }
        // SAFETY: lane `i` of both layouts is in bounds (`map_lanes_raw`'s contract).
        let (s, d, t) = unsafe {
            (
                src.offset(src_lanes.offset(i)),
                dst.offset(dst_lanes.offset(i)),
                temperature.get(i),
            )
        };
        if !slow {
            // SAFETY: lane `i`'s elements are readable at `s` and writable at `d`, the same
            // lane or disjoint (`map_lanes_raw`), which is what `map_lane` asks.
            unsafe {
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
                )
            }?;
            continue;
        }
        // SAFETY: lane `i`'s `n` elements are readable at `s`, `src_lanes.stride` apart.
        unsafe { widen_into_scratch(s, src_lanes.stride, n, &mut buf, "a lane's copy")? };
        let p = buf.as_mut_ptr();
        // SAFETY: `buf` holds the lane's `n` elements, computed in place.
        unsafe {
            map_row_with(
                crate::kernels::kernels_for::<T::Compute>(SimdLevel::Scalar),
                op,
                p,
                p,
                n,
                t,
                false,
                false,
            )
        };
        // SAFETY: lane `i`'s `n` elements are writable at `d`, `dst_lanes.stride` apart, by
        // this call only (`map_lanes_raw`).
        unsafe { narrow_strided(&buf, d, dst_lanes.stride) };
    }
    Ok(())
}

/// The 16-bit kernels of the process's level for `T`, when `T` is bfloat16 or float16 and the
/// level has them.
#[derive(Clone, Copy)]
enum HalfTable {
    Bf16(&'static HalfKernels<half::bf16>),
    F16(&'static HalfKernels<half::f16>),
}

impl HalfTable {
    fn of<T: Float>() -> Option<HalfTable> {
        let (id, level) = (TypeId::of::<T>(), simd_level());
        if id == TypeId::of::<half::bf16>() {
            half::bf16::kernels_for(level).map(HalfTable::Bf16)
        } else if id == TypeId::of::<half::f16>() {
            half::f16::kernels_for(level).map(HalfTable::F16)
        } else {
            None
        }
    }

    fn takes(self, t: f64) -> bool {
        match self {
            HalfTable::Bf16(k) => (k.takes)(t),
            HalfTable::F16(k) => (k.takes)(t),
        }
    }

    /// [`map_row_half`] of the lane.
    ///
    /// # Safety
    /// `self` is `HalfTable::of::<T>()` and takes `t`; the `n > BLOCK` adjacent elements at
    /// `src` are readable and at `dst` writable, the same or disjoint.
    #[allow(clippy::too_many_arguments)]
    unsafe fn map_row<T>(
        self,
        op: Op,
        src: *const T,
        dst: *mut T,
        n: usize,
        t: f64,
        parallel: bool,
        stream: bool,
    ) {
        // SAFETY: `T` is the table's type (# Safety), so the casts keep the elements.
        unsafe {
            match self {
                HalfTable::Bf16(k) => {
                    map_row_half(k, op, src.cast(), dst.cast(), n, t, parallel, stream)
                }
                HalfTable::F16(k) => {
                    map_row_half(k, op, src.cast(), dst.cast(), n, t, parallel, stream)
                }
            }
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

/// Most bytes of a thread's tile buffer: lanes so long that a cache line's worth of them would
/// not fit are tiled fewer at a time (a full line's worth of lanes no longer pays off there:
/// the neighbouring lanes' share of a line is evicted before their tile comes anyway).
const TILE_BUF_BYTES: usize = 16 << 20;

/// Bytes of a tile's buffer, when lanes are short enough that more than a cache line's worth
/// of them fit: wide tiles read long stretches of each source row (runs of lines within a
/// page, instead of one line per page per tile), while the buffer stays in the core's L2
/// cache for the compute and the scatter. 1 MiB is near the best measured and fits the
/// smaller L2 caches of other CPUs (`benches/results/tuning.md`, "TILE_BYTES").
const TILE_BYTES: usize = 1 << 20;

/// Most bytes of each source row a tile reads at a time (so most lanes per tile): past this,
/// wider tiles gain nothing and only take more buffer.
const TILE_MAX_BYTES_PER_ROW: usize = 1024;

/// The lanes of a call in tiles: blocks of lanes lying next to each other along one or two
/// outer dimensions (the tile dimensions), the rest of their coordinates equal. Along `along`,
/// the dimension where the strided side is densest, the lanes of a tile are one element apart
/// (in the usual layouts), so every cache line a tile's gather or scatter touches at one
/// position along the lanes is used whole. When both sides are strided and the destination is
/// densest along another dimension (an F-order input along its middle axis into a C-order
/// output), tiles span that dimension too (`across`): the gather then uses whole lines of the
/// source and the scatter whole lines of the destination.
#[derive(Debug)]
struct Tiles {
    /// The outer dimensions: (extent, source stride, destination stride, lanes between
    /// neighbours along it in the C-order lane numbering).
    dims: Vec<(usize, isize, isize, usize)>,
    /// The first tile dimension (an index into `dims`), with lanes per tile along it (the
    /// last tile may hold fewer) and tiles along it.
    along: Block,
    /// The second tile dimension, if any.
    across: Option<Block>,
    /// Tiles in all.
    count: usize,
}

/// A tile dimension: which one, lanes per tile along it, tiles along it.
#[derive(Debug, Clone, Copy)]
struct Block {
    dim: usize,
    width: usize,
    blocks: usize,
}

impl Block {
    fn new(dim: usize, width: usize, extent: usize) -> Block {
        let width = width.clamp(1, extent.max(1));
        Block {
            dim,
            width,
            blocks: extent.div_ceil(width),
        }
    }
}

/// One tile: its first lane's number and offsets, and how many lanes it holds along each
/// tile dimension.
struct Tile {
    lane: usize,
    src: isize,
    dst: isize,
    shape: TileShape,
}

/// A tile's lanes: `along` lanes by `across` lanes, steps between neighbours given apart.
/// The lane at `(a, b)` is the buffer's row `a * across + b`.
#[derive(Clone, Copy)]
struct TileShape {
    along: usize,
    across: usize,
}

impl TileShape {
    fn lanes(self) -> usize {
        self.along * self.across
    }
}

/// Between neighbouring lanes along a tile dimension: lane numbers, source offsets,
/// destination offsets.
#[derive(Clone, Copy, Default)]
struct Steps {
    lane: usize,
    src: isize,
    dst: isize,
}

impl Tiles {
    /// Tiles for lanes of `n` elements laid out as `src` (read) and `dst` (written;
    /// `dst_strides[k]` the destination stride of outer dimension `k`). The tile dimension is
    /// the one along which the strided side is densest: the source when its lanes are not
    /// contiguous (reading a strided lane costs a cache line per element), else the
    /// destination; and the destination's densest too when both are strided and it differs.
    /// `elem_size`: bytes per stored element; `compute_size`: bytes per element of the buffer.
    fn new(
        src: &Lanes,
        dst_strides: &[isize],
        dst_lane_stride: isize,
        elem_size: usize,
        compute_size: usize,
    ) -> Tiles {
        let n = src.len.max(1);
        let line = (64 / elem_size).max(1);
        let mut dims = Vec::with_capacity(src.outer.len());
        let mut after = 1usize;
        for (k, &(e, ss)) in src.outer.iter().enumerate().rev() {
            dims.push((e, ss, dst_strides[k], after));
            after = after.saturating_mul(e);
        }
        dims.reverse();
        let densest = |by_src: bool| {
            (0..dims.len())
                .rev()
                .filter(|&k| dims[k].0 > 1)
                .min_by_key(|&k| {
                    let (_, ss, ds, _) = dims[k];
                    if by_src {
                        ss.unsigned_abs()
                    } else {
                        ds.unsigned_abs()
                    }
                })
        };
        let by_src = src.stride != 1 || dst_lane_stride == 1;
        let along = densest(by_src).unwrap_or(0);
        let across = if src.stride != 1 && dst_lane_stride != 1 {
            densest(false)
                .filter(|&k| k != along && dims[k].2.unsigned_abs() < dims[along].2.unsigned_abs())
        } else {
            None
        };
        let extent = |k: usize| dims.get(k).map_or(1, |d| d.0).max(1);
        let lane_bytes = n.saturating_mul(compute_size);
        let most = (TILE_MAX_BYTES_PER_ROW / elem_size).max(line);
        let (width, width_across) = match across {
            // Adjacent elements on both sides: neighbouring lanes share no cache lines, so a
            // tile holds only as many lanes as fit its bytes (one long lane each, converted and
            // computed in the thread's cache, and spread over the threads).
            None if src.stride == 1 && dst_lane_stride == 1 => {
                ((TILE_BYTES / lane_bytes.max(1)).clamp(1, most), 1)
            }
            None => {
                let width = if lane_bytes.saturating_mul(line) > TILE_BUF_BYTES {
                    (TILE_BUF_BYTES / lane_bytes).max(1)
                } else {
                    (TILE_BYTES / lane_bytes / line * line).clamp(line, most)
                };
                (width, 1)
            }
            Some(k) => {
                // A line's worth along each side where the buffer allows, then whatever more
                // the tile's bytes allow along the destination's side, then the source's.
                let budget = if lane_bytes.saturating_mul(line * line) > TILE_BUF_BYTES {
                    (TILE_BUF_BYTES / lane_bytes).max(1)
                } else {
                    (TILE_BYTES / lane_bytes).max(line * line)
                };
                let a = line.min(extent(along)).min(budget);
                let b = (budget / a).clamp(1, most).min(extent(k));
                let a = (budget / b).clamp(a, most.max(a)).min(extent(along));
                (a, b)
            }
        };
        let along = Block::new(along, width, extent(along));
        let across = across.map(|k| Block::new(k, width_across, extent(k)));
        let count = if dims.is_empty() {
            1
        } else {
            dims.iter()
                .enumerate()
                .map(|(k, d)| match across {
                    _ if k == along.dim => along.blocks,
                    Some(b) if k == b.dim => b.blocks,
                    _ => d.0,
                })
                .product()
        };
        Tiles {
            dims,
            along,
            across,
            count,
        }
    }

    /// Lanes per tile at most.
    fn most_lanes(&self) -> usize {
        self.along.width * self.across.map_or(1, |b| b.width)
    }

    /// Tile `t` (tiles numbered in C order, each tile dimension counted in its blocks).
    fn tile(&self, mut t: usize) -> Tile {
        let mut tile = Tile {
            lane: 0,
            src: 0,
            dst: 0,
            shape: TileShape {
                along: 1,
                across: 1,
            },
        };
        for (k, &(e, ss, ds, after)) in self.dims.iter().enumerate().rev() {
            let block = match self.across {
                _ if k == self.along.dim => Some((self.along, &mut tile.shape.along)),
                Some(b) if k == b.dim => Some((b, &mut tile.shape.across)),
                _ => None,
            };
            let i = match block {
                Some((b, lanes)) => {
                    let first = t % b.blocks * b.width;
                    t /= b.blocks;
                    *lanes = b.width.min(e - first);
                    first
                }
                None => {
                    let i = t % e;
                    t /= e;
                    i
                }
            };
            tile.lane += i * after;
            tile.src += i as isize * ss;
            tile.dst += i as isize * ds;
        }
        tile
    }

    /// Between neighbouring lanes of a tile, along each tile dimension.
    fn steps(&self) -> (Steps, Steps) {
        let steps = |k: usize| {
            self.dims
                .get(k)
                .map_or(Steps::default(), |&(_, ss, ds, after)| Steps {
                    lane: after,
                    src: ss,
                    dst: ds,
                })
        };
        (
            steps(self.along.dim),
            self.across.map_or(Steps::default(), |b| steps(b.dim)),
        )
    }
}

/// The lane number of row `r` of a tile's buffer.
fn tile_lane(tile: &Tile, (along, across): (Steps, Steps), r: usize) -> usize {
    let (a, b) = (r / tile.shape.across, r % tile.shape.across);
    tile.lane + a * along.lane + b * across.lane
}

/// Row pitch of a tile's buffer for lanes of `n` elements (`contiguous`: adjacent elements on
/// both sides). A strided gather or scatter fills or drains the rows side by side; rows an
/// even number of lines apart would share cache sets (all of them, at a multiple of 4 KiB, as
/// 1000 floats rounded to 1024 were), and evict each other's lines before they are complete:
/// such rows are rounded up to an odd number of 64-byte lines. Lanes of at most a line share
/// lines instead, and contiguous lanes are copied a lane at a time: both take no padding, and
/// rows back to back take the many-rows kernel's packed path when they are short.
fn pitch<C>(n: usize, contiguous: bool) -> usize {
    let line = (64 / std::mem::size_of::<C>()).max(1);
    if contiguous || n <= line {
        return n;
    }
    // Saturates: a lane that long is refused when its buffer is allocated.
    (n.div_ceil(line) | 1).saturating_mul(line)
}

/// How [`gather`] and [`scatter`] take a tile's lanes of `n` elements `stride` apart (`step_a`
/// apart along the tile's first dimension) to or from buffer rows `pitch` apart: as one run of
/// `lanes n` elements when the lanes lie back to back both in memory and in the buffer, else a
/// lane at a time. Returns the number of runs and their length.
fn runs(stride: isize, step_a: isize, n: usize, shape: TileShape, pitch: usize) -> (usize, usize) {
    let lanes = shape.lanes();
    if stride == 1 && shape.across == 1 && step_a == n as isize && pitch == n {
        (1, lanes * n)
    } else {
        (lanes, n)
    }
}

/// Copies a tile's lanes of `n` elements (elements `stride` apart; `shape` lanes, `steps`
/// apart along each tile dimension) from `src` into the rows of `buf` (`pitch` apart),
/// converted to the compute type. Polls for an interruption as it goes, and stops early (the
/// rest unset) when told to.
///
/// # Safety
/// Every element of the lanes is valid for reads; `buf` holds `shape.lanes()` rows of `pitch`.
unsafe fn gather<T: Float>(
    src: *const T,
    stride: isize,
    (step_a, step_b): (isize, isize),
    n: usize,
    shape: TileShape,
    buf: &mut [T::Compute],
    pitch: usize,
) {
    let lanes = shape.lanes();
    debug_assert!(buf.len() >= (lanes - 1) * pitch + n);
    if stride == 1 || lanes == 1 {
        let (runs, len) = runs(stride, step_a, n, shape, pitch);
        for r in 0..runs {
            let (a, b) = (r / shape.across, r % shape.across);
            let p = src.wrapping_offset(a as isize * step_a + b as isize * step_b);
            let row = &mut buf[r * pitch..r * pitch + len];
            for (c, part) in row.chunks_mut(POLL_POSITIONS * 256).enumerate() {
                if lane_poll(r, c, len) {
                    return;
                }
                // SAFETY: `part` is the piece of lane `r` (of the run of lanes from lane 0)
                // from position `c * POLL_POSITIONS * 256`, whose elements are readable (this
                // function's contract).
                unsafe {
                    widen_strided(
                        p.offset((c * POLL_POSITIONS * 256) as isize * stride),
                        stride,
                        part,
                    )
                };
            }
        }
    } else {
        // Position by position: the lanes' elements at one position share cache lines, first
        // along `step_a` (the source's densest dimension).
        let buf = buf.as_mut_ptr();
        let span = shape.along * std::mem::size_of::<T>();
        for j in 0..n {
            if j.is_multiple_of(POLL_POSITIONS) && interrupt::poll() {
                return;
            }
            for b in 0..shape.across {
                let p = src.wrapping_offset(j as isize * stride + b as isize * step_b);
                let rows = buf.wrapping_add(b * pitch + j);
                let row_step = shape.across * pitch;
                // SAFETY: position `j < n` of the tile's lanes `(a, b)` is readable (this
                // function's contract); `buf` row `a * across + b` has `pitch > j` elements.
                unsafe {
                    if step_a == 1 {
                        // The positions are far apart (a row of the array each, usually): the
                        // hardware prefetchers do not follow, so ask for the ones a few
                        // positions ahead.
                        prefetch(p.wrapping_offset(GATHER_AHEAD * stride) as *const u8, span);
                        for a in 0..shape.along {
                            *rows.add(a * row_step) = (*p.add(a)).to_compute();
                        }
                    } else {
                        for a in 0..shape.along {
                            *rows.add(a * row_step) = (*p.offset(a as isize * step_a)).to_compute();
                        }
                    }
                }
            }
        }
    }
}

/// The inverse of [`gather`]: the rows of `buf` into the lanes at `dst`, at each position
/// first along `step_b` (the destination's densest dimension, when the tile spans two); polls
/// and stops early as [`gather`] does.
///
/// # Safety
/// Every element of the lanes is valid for writes; `buf` holds `shape.lanes()` rows of `pitch`.
unsafe fn scatter<T: Float>(
    buf: &[T::Compute],
    pitch: usize,
    dst: *mut T,
    stride: isize,
    (step_a, step_b): (isize, isize),
    n: usize,
    shape: TileShape,
) {
    let lanes = shape.lanes();
    debug_assert!(buf.len() >= (lanes - 1) * pitch + n);
    if stride == 1 || lanes == 1 {
        let (runs, len) = runs(stride, step_a, n, shape, pitch);
        for r in 0..runs {
            let (a, b) = (r / shape.across, r % shape.across);
            let p = dst.wrapping_offset(a as isize * step_a + b as isize * step_b);
            let row = &buf[r * pitch..r * pitch + len];
            for (c, part) in row.chunks(POLL_POSITIONS * 256).enumerate() {
                if lane_poll(r, c, len) {
                    return;
                }
                // SAFETY: `part` is the piece of lane `r` (of the run of lanes from lane 0)
                // from position `c * POLL_POSITIONS * 256`, whose elements are writable (this
                // function's contract).
                unsafe {
                    narrow_strided(
                        part,
                        p.offset((c * POLL_POSITIONS * 256) as isize * stride),
                        stride,
                    )
                };
            }
        }
    } else {
        let buf = buf.as_ptr();
        // Without a second tile dimension, the lanes along the first are the dense ones.
        let (outer, inner, step_outer, step_inner, row_outer, row_inner) = if shape.across > 1 {
            (shape.along, shape.across, step_a, step_b, shape.across, 1)
        } else {
            (1, shape.along, 0, step_a, 0, 1)
        };
        let span = inner * std::mem::size_of::<T>();
        for j in 0..n {
            if j.is_multiple_of(POLL_POSITIONS) && interrupt::poll() {
                return;
            }
            for o in 0..outer {
                let p = dst.wrapping_offset(j as isize * stride + o as isize * step_outer);
                let rows = buf.wrapping_add(o * row_outer * pitch + j);
                // SAFETY: position `j < n` of the tile's lanes is writable (this function's
                // contract); each `buf` row read has `pitch > j` elements.
                unsafe {
                    if step_inner == 1 {
                        prefetch(p.wrapping_offset(GATHER_AHEAD * stride) as *const u8, span);
                        for i in 0..inner {
                            *p.add(i) = T::from_compute(*rows.add(i * row_inner * pitch));
                        }
                    } else {
                        for i in 0..inner {
                            *p.offset(i as isize * step_inner) =
                                T::from_compute(*rows.add(i * row_inner * pitch));
                        }
                    }
                }
            }
        }
    }
}

/// Positions ahead that [`gather`] and [`scatter`] ask the caches for.
const GATHER_AHEAD: isize = 8;

/// [`gather`] and [`scatter`] poll for an interruption every this many positions (contract
/// R8). One tile's scatter into a fresh output touches a page of it at every position, and
/// the first touch of a page costs the kernel's zeroing of it: on a VM whose host had
/// reclaimed the memory, the first tile of a 1 GiB float16 softmax along axis 0 took 2 s,
/// which a poll per tile let through.
const POLL_POSITIONS: usize = 256;

/// Whether to stop before piece `c` (of `POLL_POSITIONS * 256` elements) of lane `r` of a
/// tile's contiguous lanes of `n` elements: polls each piece after a lane's first, and a lane's
/// first piece about every 16k elements of lanes (as [`interrupt::poll_at`]), so that short lanes
/// do not read the clock for each.
#[inline]
fn lane_poll(r: usize, c: usize, n: usize) -> bool {
    if c == 0 {
        interrupt::poll_at(r, n)
    } else {
        interrupt::poll()
    }
}

/// A thread's buffers for tiles: the lanes, and their temperatures.
type TileScratch<C> = (Vec<C>, Vec<f64>);

/// Computes `op` on every lane a tile at a time ([`Tiles`]), tiles shared among the threads.
/// Each lane is computed in the buffer by the code that computes a contiguous lane of its
/// length (the many-rows kernel up to [`BLOCK`] elements, [`map_row_with`] beyond), so its
/// result is the same bits whatever its layout and whatever the tiling (contract S9).
///
/// # Safety
/// As [`map_lanes_raw`].
unsafe fn map_tiles<T: Float>(
    op: Op,
    src: *const T,
    src_lanes: &Lanes,
    dst: *mut T,
    dst_lanes: &Lanes,
    temperature: Temperature<'_>,
) -> Result<()> {
    let n = src_lanes.len;
    let count = src_lanes.count();
    let dst_strides: Vec<isize> = dst_lanes.outer.iter().map(|&(_, s)| s).collect();
    let tiles = Tiles::new(
        src_lanes,
        &dst_strides,
        dst_lanes.stride,
        std::mem::size_of::<T>(),
        std::mem::size_of::<T::Compute>(),
    );
    let steps = tiles.steps();
    let (along, across) = steps;
    let p = pitch::<T::Compute>(n, src_lanes.stride == 1 && dst_lanes.stride == 1);
    let k = kernels::<T::Compute>();
    let parallel = is_parallel(n.saturating_mul(count));
    // Fewer tiles than threads: share each long lane's blocks instead.
    let parallel_row = parallel && tiles.count < get_num_threads() && n > BLOCK;
    let (s, d) = (SharedPtr(src as *mut T), SharedPtr(dst));
    let failed = crate::scratch::FirstError::default();
    let one = |t: usize, (buf, temps): &mut TileScratch<T::Compute>| {
        if interrupt::poll() || failed.is_set() {
            return;
        }
        let tile = tiles.tile(t);
        let w = tile.shape.lanes();
        let len = tiles.most_lanes().max(w) * p;
        if let Err(e) = crate::scratch::resize(buf, len, Default::default(), "a tile of lanes") {
            failed.set(e);
            return;
        }
        // SAFETY: the caller's contract: the tile's lanes are in bounds of both layouts, and
        // no other tile's lanes overlap them.
        unsafe {
            gather(
                s.get().offset(tile.src),
                src_lanes.stride,
                (along.src, across.src),
                n,
                tile.shape,
                buf,
                p,
            );
            if interrupt::stopped() {
                return;
            }
            let b = buf.as_mut_ptr();
            if n <= BLOCK {
                let (tp, tstep) = match temperature {
                    Temperature::Scalar(ref t) => (t as *const f64, 0),
                    Temperature::PerRow(_) => {
                        let ts = (0..w).map(|r| temperature.get(tile_lane(&tile, steps, r)));
                        if let Err(e) =
                            crate::scratch::refill(temps, w, ts, "a tile's temperatures")
                        {
                            failed.set(e);
                            return;
                        }
                        (temps.as_ptr(), 1)
                    }
                };
                let batch = RowBatch {
                    src: b,
                    src_step: p,
                    dst: b,
                    dst_step: p,
                    n,
                    count: w,
                    temps: tp,
                    temp_step: tstep,
                };
                (k.rows)(op, batch, Store::Cached);
            } else {
                for r in 0..w {
                    let t = temperature.get(tile_lane(&tile, steps, r));
                    map_row_with(k, op, b.add(r * p), b.add(r * p), n, t, parallel_row, false);
                }
            }
            scatter(
                buf,
                p,
                d.get().offset(tile.dst),
                dst_lanes.stride,
                (along.dst, across.dst),
                n,
                tile.shape,
            );
        }
    };
    if parallel && !parallel_row && tiles.count > 1 {
        map_init(tiles.count, 1, true, TileScratch::default, |sc, t| {
            one(t, sc)
        })?;
    } else {
        let mut sc = TileScratch::default();
        (0..tiles.count).for_each(|t| one(t, &mut sc));
    }
    failed.into_result()
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
/// As [`map_lanes_raw`], with the layout `rows`.
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
        SharedPtr(src as *mut C),
        SharedPtr(dst),
        SharedPtr(temps as *mut f64),
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
        if interrupt::poll() {
            return;
        }
        let count = chunk.min(rows.count - first);
        // SAFETY: rows first..first + count are in the caller's layout, and so are their
        // temperatures; chunks are disjoint.
        unsafe {
            let batch = RowBatch {
                src: s.get().add(first * rows.src_step),
                src_step: rows.src_step,
                dst: d.get().add(first * rows.dst_step),
                dst_step: rows.dst_step,
                n,
                count,
                temps: tp.get().add(first * temp_step),
                temp_step,
            };
            (k.rows)(op, batch, store)
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

/// Most elements per task of the many-rows path: larger tasks measured closer to a memcpy,
/// with diminishing returns past this (`benches/results/tuning.md`, "ROWS_CHUNK_MAX").
const ROWS_CHUNK_MAX: usize = 256 * 1024;

/// Most consecutive long lanes per task of the streamed path: enough that few rows end a run
/// (whose output is then written alone), few enough to balance the threads.
const STREAMED_RUN_MAX: usize = 16;

/// Shortest lane, in bytes, whose output is streamed. Each lane's first and last cache lines
/// are shared with its neighbours and written with normal stores; on short lanes those lines
/// are a large share, and streaming measured far slower than normal stores below about this
/// length (`benches/results/tuning.md`, "STREAM_MIN_LANE_BYTES").
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
/// `dst`, lane `i` at temperature `temperature.get(i)`. The two views must lay out the same
/// lanes (the same lane length and outer extents; their strides may differ). In place:
/// [`map_lanes_in_place`].
///
/// # Errors
/// [`Error::InvalidParameter`] naming `dst` when the layouts do not match, or `temperature`
/// when a temperature is not positive and finite; a length error when a per-lane temperature
/// does not have one value per lane; [`Error::OutOfMemory`] and [`Error::Interrupted`] as for
/// every call.
///
/// ```
/// use logitkit::lanes::map_lanes;
/// use logitkit::{Lanes, Op, StridedView, StridedViewMut};
/// // Log-softmax along axis 0 of a C-contiguous 2 x 2 array, one temperature per lane
/// // (column), into the transposed layout (its rows).
/// let x = [0.0f32, 0.0, 0.0, 2.0];
/// let src = StridedView::new(&x, 0, Lanes::from_strided(&[2, 2], &[2, 1], 0)).unwrap();
/// let mut out = [0.0f32; 4];
/// let mut dst = StridedViewMut::rows(&mut out, 2).unwrap();
/// let temps = [1.0, 2.0];
/// map_lanes(Op::LogSoftmax, &src, &mut dst, (&temps[..]).into()).unwrap();
/// let ln2 = std::f32::consts::LN_2;
/// assert!((out[0] + ln2).abs() < 1e-6 && (out[1] + ln2).abs() < 1e-6); // column 0: (0, 0)
/// // Column 1 at T = 2 is (0, 1): log-softmax is (-ln(1 + e), 1 - ln(1 + e)).
/// let l = 1f32.exp().ln_1p();
/// assert!((out[2] + l).abs() < 1e-6 && (out[3] - (1.0 - l)).abs() < 1e-6);
/// ```
pub fn map_lanes<T: Float>(
    op: Op,
    src: &StridedView<'_, T>,
    dst: &mut StridedViewMut<'_, T>,
    temperature: Temperature<'_>,
) -> Result<()> {
    check_matching(src.lanes(), dst.lanes())?;
    let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
    // SAFETY: both views were checked at construction: every element of every lane lies in its
    // slice, and `dst`'s elements are pairwise distinct. `src` borrows its slice shared and
    // `dst` its own mutably, so they are disjoint and nothing else writes either during the
    // call.
    unsafe { map_lanes_raw(op, s, src.lanes(), d, dst.lanes(), temperature) }
}

/// [`map_lanes`] in place: every lane of `x` replaced by `op` of itself.
///
/// # Errors
/// As [`map_lanes`].
///
/// ```
/// use logitkit::lanes::map_lanes_in_place;
/// use logitkit::{Lanes, Op, StridedViewMut};
/// // Softmax along axis 0 of a C-contiguous 2 x 2 array, in place.
/// let mut x = [0.0f64, 1.0, 0.0, 1.0];
/// let mut v = StridedViewMut::new(&mut x, 0, Lanes::from_strided(&[2, 2], &[2, 1], 0)).unwrap();
/// map_lanes_in_place(Op::Softmax, &mut v, 1.0.into()).unwrap();
/// assert_eq!(x, [0.5; 4]);
/// ```
pub fn map_lanes_in_place<T: Float>(
    op: Op,
    x: &mut StridedViewMut<'_, T>,
    temperature: Temperature<'_>,
) -> Result<()> {
    let p = x.as_mut_ptr();
    // SAFETY: the view was checked at construction: every element of every lane lies in its
    // slice, elements pairwise distinct; in place with identical layouts, which `map_lanes_raw`
    // allows; the slice is borrowed mutably, so nothing else touches it during the call.
    unsafe { map_lanes_raw(op, p, x.lanes(), p, x.lanes(), temperature) }
}

/// The raw form of [`map_lanes`] (the NumPy bindings hold raw pointers): computes `op`
/// (softmax or log-softmax) along every lane of `src` into the matching lane of `dst`, lane `i`
/// at temperature `temperature.get(i)`.
///
/// # Safety
/// - every element of every lane of `src` is valid for reads, and of `dst` for writes;
/// - distinct lanes of `dst` do not overlap, and no lane of `dst` overlaps a lane of `src`
///   other than the one at the same index; when they overlap, `dst == src` with identical
///   layouts (in place);
/// - nothing else reads or writes `dst`, or writes `src`, during the call.
pub(crate) unsafe fn map_lanes_raw<T: Float>(
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
    // SAFETY: every lane of `src` is readable (the caller's contract).
    if let Some(risky) = unsafe { overflow_risk_lanes(src, src_lanes, temperature) } {
        // SAFETY: the caller's contract.
        unsafe { map_lanes_with_exact(op, src, src_lanes, dst, dst_lanes, temperature, &risky) }?;
        return interrupt::status();
    }
    let adjacent = src_lanes.stride == 1 && dst_lanes.stride == 1;
    // Long adjacent 16-bit lanes go lane by lane to their kernels (`map_lane`).
    let half_rows = adjacent && n > BLOCK && HalfTable::of::<T>().is_some();
    if !((is_native::<T>() && adjacent) || half_rows) {
        // SAFETY: the caller's contract.
        unsafe { map_tiles(op, src, src_lanes, dst, dst_lanes, temperature) }?;
        return interrupt::status();
    }
    if n <= BLOCK {
        if let Some(rows) = RowRun::new(src_lanes, dst_lanes) {
            // SAFETY: the caller's contract; `RowRun` checked the layout is plain rows.
            unsafe { map_row_runs::<T::Compute>(op, src.cast(), dst.cast(), n, rows, temperature) };
            return interrupt::status();
        }
    }
    let stream = streams::<T>(n, count, std::ptr::eq(src, dst));
    let (s, d) = (SharedPtr(src as *mut T), SharedPtr(dst));
    let work = n.saturating_mul(count);
    let parallel = is_parallel(work);
    if stream && !half_rows && n > BLOCK && (!parallel || count >= get_num_threads()) {
        // Long rows streamed in runs of consecutive lanes, each row's output written during
        // the next row's first pass.
        let k = kernels::<T::Compute>();
        let lanes = |first: usize, len: usize| {
            let row = |i: usize| {
                let lane = first + i;
                // SAFETY: `lane < count`, so its offsets are within both layouts (the
                // caller's contract).
                unsafe {
                    (
                        s.get().offset(src_lanes.offset(lane)) as *const T::Compute,
                        d.get().offset(dst_lanes.offset(lane)) as *mut T::Compute,
                        temperature.get(lane),
                    )
                }
            };
            // SAFETY: the caller's contract; the lanes are distinct.
            unsafe { map_rows_streamed(k, op, n, len, row, keeps_exps(k)) };
        };
        if parallel {
            let run = (count / (8 * get_num_threads())).clamp(1, STREAMED_RUN_MAX);
            map_ranges(count, run, &mut Vec::<()>::new(), true, |_, r| {
                if !interrupt::poll() {
                    lanes(r.start, r.len())
                }
            });
        } else {
            lanes(0, count);
        }
        return interrupt::status();
    }
    let failed = crate::scratch::FirstError::default();
    let lane = |i: usize, buf: &mut Vec<T::Compute>, parallel_row: bool| {
        if interrupt::poll_at(i, n) || failed.is_set() {
            return;
        }
        // SAFETY: the caller's contract; lane i of each layout is in bounds.
        let done = unsafe {
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
        };
        if let Err(e) = done {
            failed.set(e);
        }
    };
    if !parallel {
        let mut buf = Vec::new();
        (0..count).for_each(|i| lane(i, &mut buf, false));
    } else if count >= get_num_threads() {
        // Enough lanes to share: each task takes whole lanes, at least ~8k elements' worth.
        map_init(count, 8 * 1024 / n, true, Vec::new, |buf, i| {
            lane(i, buf, false)
        })?;
    } else {
        // Few long lanes: share each lane's blocks instead (the calling thread takes part).
        let mut buf = Vec::new();
        (0..count).for_each(|i| lane(i, &mut buf, true));
    }
    failed.into_result()?;
    interrupt::status()
}

/// log-sum-exp along every lane of `src`; lane `i`'s result goes to `out[i]`.
///
/// # Errors
/// A length error naming `out` unless it has one element per lane; [`Error::OutOfMemory`] and
/// [`Error::Interrupted`] as for every call.
///
/// ```
/// use logitkit::lanes::logsumexp_lanes;
/// use logitkit::{Lanes, StridedView};
/// // log-sum-exp down each column of a C-contiguous 2 x 3 array.
/// let x = [0.0f64, 1000.0, f64::NEG_INFINITY, 0.0, 1000.0, 5.0];
/// let cols = StridedView::new(&x, 0, Lanes::from_strided(&[2, 3], &[3, 1], 0)).unwrap();
/// let mut out = [0.0f64; 3];
/// logsumexp_lanes(&cols, &mut out).unwrap();
/// let ln2 = std::f64::consts::LN_2;
/// assert!((out[0] - ln2).abs() < 1e-15);
/// assert!((out[1] - (1000.0 + ln2)).abs() < 1e-12); // no overflow
/// assert_eq!(out[2], 5.0); // exp(-inf) adds nothing
/// ```
pub fn logsumexp_lanes<T: Float>(src: &StridedView<'_, T>, out: &mut [T]) -> Result<()> {
    // SAFETY: the view was checked at construction: every element of every lane lies in its
    // slice, which is borrowed shared, so nothing writes it during the call.
    unsafe { logsumexp_lanes_raw(src.as_ptr(), src.lanes(), out) }
}

/// The raw form of [`logsumexp_lanes`] (the NumPy bindings hold raw pointers).
///
/// # Safety
/// Every element of every lane of `src` is valid for reads, and nothing writes it during the
/// call.
pub(crate) unsafe fn logsumexp_lanes_raw<T: Float>(
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
    if n > 0 && count > 0 && !(is_native::<T>() && src_lanes.stride == 1) {
        // SAFETY: the caller's contract.
        unsafe { logsumexp_tiles(src, src_lanes, out) }?;
        return interrupt::status();
    }
    let s = SharedPtr(src as *mut T);
    let failed = crate::scratch::FirstError::default();
    let one = |i: usize, buf: &mut Vec<T::Compute>, parallel_row: bool| -> T {
        if interrupt::poll_at(i, n) || failed.is_set() {
            return T::from_compute(<T::Compute as Real>::NAN);
        }
        // SAFETY: the caller's contract; lane i is in bounds.
        unsafe {
            let p = s.get().offset(src_lanes.offset(i));
            if is_native::<T>() && src_lanes.stride == 1 {
                let x = std::slice::from_raw_parts(p as *const T::Compute, n);
                return T::from_compute(logsumexp_row(x, parallel_row));
            }
            if let Err(e) = widen_into_scratch(p, src_lanes.stride, n, buf, "a lane's copy") {
                failed.set(e);
                return T::from_compute(<T::Compute as Real>::NAN);
            }
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
        let o = SharedPtr(out.as_mut_ptr());
        map_init(count, 8 * 1024 / n.max(1), true, Vec::new, |buf, i| {
            // SAFETY: `i < count == out.len()`, and each index is handed to one task only.
            unsafe { *o.get().add(i) = one(i, buf, false) }
        })?;
    } else {
        let mut buf = Vec::new();
        out.iter_mut()
            .enumerate()
            .for_each(|(i, o)| *o = one(i, &mut buf, true));
    }
    failed.into_result()?;
    interrupt::status()
}

/// Lanes up to this long take [`logsumexp_rows_with`]: its grouped kernels take rows of up to
/// four vectors of the widest level.
const GROUPED_LANE_MAX: usize = 64;

/// [`logsumexp_lanes_raw`] a tile at a time ([`Tiles`]; `out` is laid out as the lane numbering).
/// Each lane goes through [`logsumexp_row`] as a contiguous lane does: the same bits.
///
/// # Safety
/// As [`logsumexp_lanes_raw`], with `out.len() == src_lanes.count()`.
unsafe fn logsumexp_tiles<T: Float>(src: *const T, src_lanes: &Lanes, out: &mut [T]) -> Result<()> {
    let n = src_lanes.len;
    let count = src_lanes.count();
    let mut out_strides = vec![0isize; src_lanes.outer.len()];
    let mut after = 1isize;
    for (k, &(e, _)) in src_lanes.outer.iter().enumerate().rev() {
        out_strides[k] = after;
        after = after.saturating_mul(e as isize);
    }
    let tiles = Tiles::new(
        src_lanes,
        &out_strides,
        1,
        std::mem::size_of::<T>(),
        std::mem::size_of::<T::Compute>(),
    );
    let steps = tiles.steps();
    let (along, across) = steps;
    // Short lanes back to back in the buffer, for `logsumexp_rows_with`'s grouped kernels.
    let grouped = n <= GROUPED_LANE_MAX;
    let p = pitch::<T::Compute>(n, src_lanes.stride == 1 || grouped);
    let parallel = is_parallel(n.saturating_mul(count));
    let parallel_row = parallel && tiles.count < get_num_threads() && n > BLOCK;
    let (s, o) = (SharedPtr(src as *mut T), SharedPtr(out.as_mut_ptr()));
    let failed = crate::scratch::FirstError::default();
    let one = |t: usize, buf: &mut Vec<T::Compute>| {
        if interrupt::poll() || failed.is_set() {
            return;
        }
        let tile = tiles.tile(t);
        let len = tiles.most_lanes() * p;
        if let Err(e) = crate::scratch::resize(buf, len, Default::default(), "a tile of lanes") {
            failed.set(e);
            return;
        }
        // SAFETY: the caller's contract: the tile's lanes are in bounds; the tile alone writes
        // its lanes' results, which lie in `out`.
        unsafe {
            gather(
                s.get().offset(tile.src),
                src_lanes.stride,
                (along.src, across.src),
                n,
                tile.shape,
                buf,
                p,
            );
            if interrupt::stopped() {
                return;
            }
            let lanes = tile.shape.lanes();
            if grouped {
                let mut results = [<T::Compute as Default>::default(); 256];
                for first in (0..lanes).step_by(results.len()) {
                    let c = results.len().min(lanes - first);
                    let rows = &buf[first * n..(first + c) * n];
                    logsumexp_rows_with(kernels(), rows, n, &mut results[..c]);
                    for (r, &v) in results[..c].iter().enumerate() {
                        *o.get().add(tile_lane(&tile, steps, first + r)) = T::from_compute(v);
                    }
                }
                return;
            }
            for r in 0..lanes {
                let v = logsumexp_row(&buf[r * p..r * p + n], parallel_row);
                *o.get().add(tile_lane(&tile, steps, r)) = T::from_compute(v);
            }
        }
    };
    if parallel && !parallel_row && tiles.count > 1 {
        map_init(tiles.count, 1, true, Vec::new, |buf, t| one(t, buf))?;
    } else {
        let mut buf = Vec::new();
        (0..tiles.count).for_each(|t| one(t, &mut buf));
    }
    failed.into_result()
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

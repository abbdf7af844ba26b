//! One row (one contiguous vector) of the softmax family, built from block kernels.
//!
//! A row of at most [`BLOCK`] elements is one call of the level's `rows` kernel. A longer row is
//! cut into blocks of [`BLOCK`] elements at fixed offsets and computed in two passes:
//!
//! 1. per block (in parallel when asked): the block's maximum `m_b`, NaN / `+inf` flags, and
//!    `s_b = Σ exp((x - m_b) / t)` (softmax also stores those exps in the output);
//! 2. in block order, on one thread: `M = max m_b`, `w_b = exp((m_b - M) / t)` (double-word
//!    argument) and `total = Σ s_b w_b` (compensated); then per block (in parallel when asked):
//!    softmax scales the block by `w_b / total`, log-softmax writes `(x - M) / t - ln(total)`.
//!
//! Every block's work depends only on the block, and blocks are combined in block order, so the
//! result is the same bits on one thread or many (contract S9). The data of a block is read
//! twice in pass 1 while it is in cache, and once more in pass 2.
//!
//! Batches of long rows whose output is streamed (larger than the caches) go through
//! [`map_rows_streamed`], which computes each row with the same kernels, in the same order of
//! operations, but writes a row's output (its pass 2) during the next row's pass 1.

use crate::element::Real;
use crate::interrupt;
use crate::kernels::{
    exp_sum_overlapped, kernels, row_sums, BlockWrite, HalfKernels, HalfRows, Kernels, RowBatch,
    Scratch, Store, SumAcc, BLOCK,
};
use crate::ln::ln_in_place;
use crate::parallel::each_shared;
use crate::shared::SharedPtr;

pub use crate::op::Op;

fn n_blocks(n: usize) -> usize {
    n.div_ceil(BLOCK)
}

fn block(n: usize, b: usize) -> (usize, usize) {
    let start = b * BLOCK;
    (start, (start + BLOCK).min(n) - start)
}

/// What pass 1 learns about one block.
#[derive(Clone, Copy)]
struct BlockStat<C> {
    /// The block's maximum ignoring NaN.
    m: C,
    /// Σ exp((x - m) / t) over the block; 0 when `m` is `-inf`.
    sum: f64,
    /// Weight of the block against the row maximum, set in pass 2's serial step.
    w: f64,
    nan: bool,
    pos_inf: bool,
}

impl<C: Real> Default for BlockStat<C> {
    fn default() -> Self {
        BlockStat {
            m: C::NEG_INFINITY,
            sum: 0.0,
            w: 0.0,
            nan: false,
            pos_inf: false,
        }
    }
}

/// Runs `f` on `nb` default block stats: on the stack for rows up to 64 blocks (1M elements).
fn with_stats<C: Real, R>(nb: usize, f: impl FnOnce(&mut [BlockStat<C>]) -> R) -> R {
    const STACK: usize = 64;
    if nb <= STACK {
        let mut a = [BlockStat::<C>::default(); STACK];
        f(&mut a[..nb])
    } else {
        let mut v = vec![BlockStat::<C>::default(); nb];
        f(&mut v)
    }
}

/// When `keep`, this thread's scratch buffer for `n` exps of `C` (`None` for a row too long for
/// one) and a pointer to it for the blocks' tasks; else null. The pointer is valid while the
/// buffer is held (moving it does not move its memory).
fn exps_buffer<C>(keep: bool, n: usize) -> (Option<Scratch>, SharedPtr<C>) {
    let mut scratch = if keep {
        Scratch::take(n * std::mem::size_of::<C>())
    } else {
        None
    };
    let e = scratch
        .as_mut()
        .map_or(std::ptr::null_mut(), |sc| sc.ptr::<C>());
    (scratch, SharedPtr(e))
}

impl<C: Real> BlockStat<C> {
    /// Records the block's maximum and NaN flag; whether the block has a finite maximum (and
    /// so an exp sum to compute).
    fn set_max(&mut self, (m, nan): (C, bool)) -> bool {
        self.m = m;
        self.nan = nan;
        self.pos_inf = m == C::INFINITY;
        !(nan || self.pos_inf || m == C::NEG_INFINITY)
    }
}

/// exp((mb - mm) / t) for `mb <= mm`, with the argument carried as a double word so that its
/// rounding does not show in `f64` results.
fn exp_shift(mb: f64, mm: f64, t: f64) -> f64 {
    let d = mb - mm;
    if d == 0.0 {
        return 1.0;
    }
    if !d.is_finite() {
        // mb - mm overflowed (f64 data): the shift is still mb/t - mm/t, moderate when t > 1
        // (contract S4: softmax(x / t)).
        return (mb / t - mm / t).exp();
    }
    // TwoSum: d + lo == mb - mm exactly.
    let bb = d - mb;
    let lo = (mb - (d - bb)) + (-mm - bb);
    // TwoSum's intermediates overflow near the overflow threshold: then use d alone.
    let lo = if lo.is_finite() { lo } else { 0.0 };
    let (hi, lo) = if t == 1.0 {
        (d, lo)
    } else {
        let hi = d / t;
        if !hi.is_finite() {
            return 0.0;
        }
        let rem = (-hi).mul_add(t, d);
        (hi, (rem + lo) / t)
    };
    let e = hi.exp();
    e + e * lo
}

/// Pass 2's serial step: the row maximum, and the blocks' weights and total; `None` when the
/// row holds NaN or `+inf`, or no entry above `-inf` (contract S6).
fn combine<C: Real>(stats: &mut [BlockStat<C>], t: f64) -> Result<(C, f64), (bool, bool)> {
    let mut mm = C::NEG_INFINITY;
    let (mut nan, mut pos_inf) = (false, false);
    for st in stats.iter() {
        nan |= st.nan;
        pos_inf |= st.pos_inf;
        if st.m > mm {
            mm = st.m;
        }
    }
    if nan || pos_inf || mm == C::NEG_INFINITY {
        return Err((nan, pos_inf));
    }
    let mut acc = SumAcc::default();
    for st in stats.iter_mut() {
        if st.sum > 0.0 {
            st.w = exp_shift(st.m.to_f64(), mm.to_f64(), t);
            acc.add(st.sum * st.w);
        }
    }
    Ok((mm, acc.total()))
}

/// Computes `op` of the row at `src` into `dst`, temperature `t` (positive, finite).
///
/// `parallel`: share the row's blocks with the crate's helper threads.
///
/// # Safety
/// `src` is valid for reads and `dst` for writes of `n` elements; they are the same pointer or
/// do not overlap; nothing else accesses them during the call.
pub(crate) unsafe fn map_row<C: Real>(
    op: Op,
    src: *const C,
    dst: *mut C,
    n: usize,
    t: f64,
    parallel: bool,
) {
    // SAFETY: this function's contract is `map_row_with`'s.
    unsafe { map_row_with(kernels::<C>(), op, src, dst, n, t, parallel, false) }
}

/// [`map_row`] with the kernels of a given table. `stream`: write the output with non-temporal
/// stores (for outputs larger than the caches; softmax then computes the exps twice instead of
/// storing and re-reading them). The result is the same bits either way.
///
/// # Safety
/// As [`map_row`].
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn map_row_with<C: Real>(
    k: &'static Kernels<C>,
    op: Op,
    src: *const C,
    dst: *mut C,
    n: usize,
    t: f64,
    parallel: bool,
    stream: bool,
) {
    if n == 0 {
        return;
    }
    if n <= BLOCK {
        let store = if stream { Store::Stream } else { Store::Cached };
        // SAFETY: one row of `n` elements, readable at `src` and writable at `dst`, the same
        // or disjoint (this function's contract); one temperature at `&t`.
        unsafe { (k.rows)(op, RowBatch::adjacent(src, dst, n, 1, &t), store) };
        return;
    }
    let nb = n_blocks(n);
    let parallel = parallel && nb > 1;
    let (s, d) = (SharedPtr(src as *mut C), SharedPtr(dst));
    // Streaming softmax keeps the exps in this thread's scratch buffer (every block's helper
    // writes its own part of it) and streams `exp * factor` out in pass 2; without a buffer
    // (a very long row) it computes the exps again in pass 2.
    let (_scratch, e) = exps_buffer::<C>(stream && op == Op::Softmax, n);
    with_stats::<C, ()>(nb, |stats| {
        each_shared(stats, parallel, |b, st| {
            // A row can be long enough to take seconds: polled per block (contract R8).
            if interrupt::poll() {
                return;
            }
            let (start, len) = block(n, b);
            // SAFETY: block [start, start + len) lies in the row; blocks are disjoint, and this
            // shared view ends before the block's output is written.
            let x = unsafe { std::slice::from_raw_parts(s.get().add(start), len) };
            if !st.set_max((k.max)(x)) {
                if op == Op::Softmax && st.m == C::NEG_INFINITY && !st.nan {
                    for i in 0..len {
                        // SAFETY: in the block, which this task alone writes.
                        unsafe { *d.get().add(start + i) = C::default() };
                    }
                }
                return;
            }
            // The exps go to the output, to the scratch buffer (streamed softmax), or nowhere.
            let exps = match op {
                Op::Softmax if !stream => d.get(),
                Op::Softmax => e.get(),
                Op::LogSoftmax => std::ptr::null_mut(),
            };
            // On one thread, the next block is this thread's next: ask for it meanwhile.
            let (ahead, ahead_n) = if !parallel && b + 1 < nb {
                // SAFETY: block `b + 1` starts at `start + len < n`, within the row.
                (
                    unsafe { s.get().add(start + len) } as *const C,
                    block(n, b + 1).1,
                )
            } else {
                (std::ptr::null(), 0)
            };
            // SAFETY: as above; `exps` (the output or the scratch buffer of n elements) is
            // null, the same block as the source, or disjoint from it.
            st.sum = unsafe {
                exp_sum_overlapped(
                    k,
                    s.get().add(start),
                    if exps.is_null() {
                        exps
                    } else {
                        exps.add(start)
                    },
                    len,
                    st.m,
                    t,
                    None,
                    ahead,
                    ahead_n,
                )
            };
        });
        if interrupt::stopped() {
            // Skipped blocks left their stats unset: the output is not worth writing.
            return;
        }
        match combine(stats, t) {
            Err(_) => {
                for i in 0..n {
                    // SAFETY: dst is valid for writes of n.
                    unsafe { *d.get().add(i) = C::NAN };
                }
            }
            Ok((mm, total)) => {
                let log_sum = total.ln();
                each_shared(stats, parallel, |b, st| {
                    let (start, len) = block(n, b);
                    // SAFETY: as in pass 1.
                    unsafe {
                        match op {
                            Op::Softmax if st.sum > 0.0 && stream && !e.get().is_null() => (k
                                .scale_to)(
                                e.get().add(start),
                                d.get().add(start),
                                len,
                                st.w / total,
                                true,
                            ),
                            Op::Softmax if st.sum > 0.0 && stream => (k.exp_scale)(
                                s.get().add(start),
                                d.get().add(start),
                                len,
                                st.m,
                                t,
                                st.w / total,
                                true,
                            ),
                            Op::Softmax if st.sum > 0.0 => {
                                (k.scale)(d.get().add(start), len, st.w / total)
                            }
                            Op::Softmax => {}
                            Op::LogSoftmax => (k.write_log_softmax)(
                                s.get().add(start),
                                d.get().add(start),
                                len,
                                mm,
                                t,
                                log_sum,
                                stream,
                            ),
                        }
                    }
                });
            }
        }
    });
}

/// [`map_row_with`] of a 16-bit (`H`: bfloat16, float16) row longer than a block, through a
/// level's kernels for `H`, `k` (`k.takes(t)` holds): the same blocks, passes and order of
/// operations on the `f32` values, each result rounded once to `H` as it is stored, so the bits
/// are those of
/// `map_row_with` on the widened row, rounded, without a conversion buffer; `stream` as there.
/// Softmax keeps its `f32` exps in a scratch buffer rather than in the 16-bit output (or, for
/// a row too long for one, computes them again in pass 2: `exp_scale` gives the bits of the
/// kept exps scaled).
///
/// # Safety
/// As [`map_row`], for `n > BLOCK` elements.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn map_row_half<H: HalfRows>(
    k: &'static HalfKernels<H>,
    op: Op,
    src: *const H,
    dst: *mut H,
    n: usize,
    t: f64,
    parallel: bool,
    stream: bool,
) {
    debug_assert!(n > BLOCK && (k.takes)(t));
    let nb = n_blocks(n);
    let parallel = parallel && nb > 1;
    let (s, d) = (SharedPtr(src as *mut H), SharedPtr(dst));
    // Softmax keeps the `f32` exps in this thread's scratch buffer (every block's helper writes
    // its own part of it) for pass 2 to scale; without one (a very long row) pass 2 computes
    // them again.
    let (_scratch, e) = exps_buffer::<f32>(op == Op::Softmax, n);
    with_stats::<f32, ()>(nb, |stats| {
        each_shared(stats, parallel, |b, st| {
            // Polled per block, as `map_row_with` (contract R8).
            if interrupt::poll() {
                return;
            }
            let (start, len) = block(n, b);
            // SAFETY: block [start, start + len) lies in the row; this shared view ends before
            // any of the row's output is written (pass 2, or the NaN fill after this pass).
            let x = unsafe { std::slice::from_raw_parts(s.get().add(start), len) };
            if !st.set_max((k.max)(x)) {
                return;
            }
            let m = st.m;
            let exps = if e.get().is_null() {
                e.get()
            } else {
                // SAFETY: the buffer holds `n` `f32`s; this block's part.
                unsafe { e.get().add(start) }
            };
            // On one thread, the next block is this thread's next: ask for it meanwhile.
            let (ahead, ahead_bytes) = if !parallel && b + 1 < nb {
                // SAFETY: block `b + 1` starts at `start + len < n`, within the row.
                let p = unsafe { s.get().add(start + len) };
                (p as *const u8, 2 * block(n, b + 1).1)
            } else {
                (std::ptr::null(), 0)
            };
            // SAFETY: the block's `len` elements are readable; `exps`, unless null, is this
            // block's part of the buffer, disjoint from the others' and from the row; `ahead`
            // is only prefetched.
            st.sum = unsafe { (k.exp_sum)(x.as_ptr(), exps, len, m, t, ahead, ahead_bytes) };
        });
        if interrupt::stopped() {
            return;
        }
        let Ok((mm, total)) = combine(stats, t) else {
            for i in 0..n {
                // SAFETY: dst is valid for writes of n.
                unsafe { *d.get().add(i) = H::NAN };
            }
            return;
        };
        let log_sum = total.ln();
        each_shared(stats, parallel, |b, st| {
            let (start, len) = block(n, b);
            // SAFETY: block [start, start + len) of both rows, which this task alone writes;
            // the source block is the same as the output block or disjoint from it.
            unsafe {
                let (x, y) = (s.get().add(start), d.get().add(start));
                match op {
                    Op::Softmax if st.sum > 0.0 && !e.get().is_null() => {
                        (k.scale_to)(e.get().add(start), y, len, st.w / total, stream)
                    }
                    Op::Softmax if st.sum > 0.0 => {
                        (k.exp_scale)(x, y, len, st.m, t, st.w / total, stream)
                    }
                    Op::Softmax => std::ptr::write_bytes(y, 0, len),
                    Op::LogSoftmax => (k.write_log_softmax)(x, y, len, mm, t, log_sum, stream),
                }
            }
        });
    });
}

/// Most blocks of a row [`map_rows_streamed`] pipelines (1M elements); longer rows go through
/// [`map_row_with`] one at a time.
const PIPELINED_BLOCKS: usize = 64;

/// A streamed row whose maximum and sum are known and whose output is not written yet.
struct Deferred<C> {
    src: *const C,
    dst: *mut C,
    exps: *mut C,
    mm: C,
    t: f64,
    total: f64,
    log_sum: f64,
}

impl<C: Real> Deferred<C> {
    /// Pass 2's write of block `b` (of a row of `n`); `None` when there is nothing to write
    /// (a softmax block of zeros, already written in pass 1).
    ///
    /// # Safety
    /// `b` is a block of the row.
    unsafe fn block_write(
        &self,
        op: Op,
        n: usize,
        st: &BlockStat<C>,
        b: usize,
    ) -> Option<BlockWrite<C>> {
        let (start, len) = block(n, b);
        // SAFETY: block `b` of the row starts at `start < n`, within the row's source, output
        // and (when not null) exps buffer, each of `n` elements.
        let (src, dst, exps) = unsafe {
            (
                self.src.add(start),
                self.dst.add(start),
                if self.exps.is_null() {
                    self.exps
                } else {
                    self.exps.add(start)
                },
            )
        };
        match op {
            Op::Softmax if st.sum > 0.0 && !self.exps.is_null() => Some(BlockWrite::Scale {
                src: exps,
                dst,
                n: len,
                factor: st.w / self.total,
            }),
            Op::Softmax if st.sum > 0.0 => Some(BlockWrite::ExpScale {
                src,
                dst,
                n: len,
                m: st.m,
                t: self.t,
                factor: st.w / self.total,
            }),
            Op::Softmax => None,
            Op::LogSoftmax => Some(BlockWrite::Log {
                src,
                dst,
                n: len,
                m: self.mm,
                t: self.t,
                log_sum: self.log_sum,
            }),
        }
    }
}

/// Whether streamed softmax with the kernels `k` keeps its exps for the write
/// ([`map_rows_streamed`]). Always without a fused write kernel (computing them again measured
/// far slower). With one, it depends on the CPU: on Intel's AVX-512 cores the write computes
/// them again, hidden under the memory traffic, with one row fewer in the caches (256x152064:
/// 6.8 ms against 7.4 keeping them); on AMD's Zen 4, whose 512-bit arithmetic takes two passes,
/// keeping them measured faster (32x128256 and 256x152064: 0.78x the time), so AMD keeps them
/// (`benches/results/tuning.md`, "row: keeping the exps").
pub(crate) fn keeps_exps<C>(k: &Kernels<C>) -> bool {
    k.exp_sum_overlapped.is_none() || crate::simd::cpu_is_amd()
}

/// [`map_row_with`] with `stream` on `count` rows of `n` elements (`n` > [`BLOCK`]) on this
/// thread, row `i` from `row(i) = (src, dst, t)`: the same bits for every row, but pass 2 of
/// each row (its output, written with non-temporal stores) is done during pass 1 of the next,
/// block `b` during block `b`'s exp pass, which also prefetches the block after it. Reading,
/// writing and arithmetic then overlap instead of taking turns.
///
/// `keep_exps` (softmax only): keep the exps of two rows (the one being read, the one being
/// written) in a scratch buffer for the write to scale, rather than computing them again in
/// the write (only possible where the level fuses the write into the exp loop); the same bits
/// either way. [`keeps_exps`] chooses.
///
/// # Safety
/// Every row is as [`map_row`] requires, and no row's `dst` overlaps another row's `src` or
/// `dst`.
pub(crate) unsafe fn map_rows_streamed<C: Real>(
    k: &'static Kernels<C>,
    op: Op,
    n: usize,
    count: usize,
    row: impl Fn(usize) -> (*const C, *mut C, f64),
    keep_exps: bool,
) {
    let nb = n_blocks(n);
    let softmax = op == Op::Softmax;
    let keep_exps = softmax && (keep_exps || k.exp_sum_overlapped.is_none());
    let mut scratch = if keep_exps {
        Scratch::take(2 * n * std::mem::size_of::<C>())
    } else {
        None
    };
    if n <= BLOCK || nb > PIPELINED_BLOCKS {
        for i in 0..count {
            if interrupt::poll() {
                return;
            }
            let (s, d, t) = row(i);
            // SAFETY: row `i` is as `map_row` requires (this function's contract).
            unsafe { map_row_with(k, op, s, d, n, t, false, true) };
        }
        return;
    }
    let bufs = scratch.as_mut().map_or([std::ptr::null_mut(); 2], |sc| {
        let p = sc.ptr::<C>();
        // SAFETY: the scratch buffer holds `2 * n` elements: two rows' exps.
        [p, unsafe { p.add(n) }]
    });
    let mut stats = [[BlockStat::<C>::default(); PIPELINED_BLOCKS]; 2];
    let mut deferred: Option<Deferred<C>> = None;
    for i in 0..count {
        if interrupt::poll() {
            // The deferred row's output is left unwritten: the call's output is unspecified.
            return;
        }
        let (s, d, t) = row(i);
        let exps = bufs[i % 2];
        let (cur, prev) = {
            let (a, b) = stats.split_at_mut(1);
            if i % 2 == 0 {
                (&mut a[0], &b[0])
            } else {
                (&mut b[0], &a[0])
            }
        };
        let next_row = if i + 1 < count {
            row(i + 1).0
        } else {
            std::ptr::null()
        };
        // SAFETY: the blocks' pointer work below: every row is valid as `map_row` requires and
        // no row's output overlaps another row (this function's contract); block `b` lies in
        // its row (`start + len <= n`), and `exps`, when not null, is one of the two `n`-element
        // halves of the scratch buffer, the other row's half being the deferred write's.
        unsafe {
            for b in 0..nb {
                let (start, len) = block(n, b);
                let write = deferred
                    .as_ref()
                    .and_then(|p| p.block_write(op, n, &prev[b], b));
                let (ahead, ahead_n) = if b + 1 < nb {
                    (s.add(start + len), block(n, b + 1).1)
                } else if next_row.is_null() {
                    (std::ptr::null(), 0)
                } else {
                    (next_row, block(n, 0).1)
                };
                let x = std::slice::from_raw_parts(s.add(start), len);
                let (m, nan) = (k.max)(x);
                let st = &mut cur[b];
                *st = BlockStat {
                    m,
                    nan,
                    pos_inf: m == C::INFINITY,
                    ..BlockStat::default()
                };
                if nan || st.pos_inf || m == C::NEG_INFINITY {
                    if softmax && m == C::NEG_INFINITY && !nan {
                        for j in 0..len {
                            *d.add(start + j) = C::default();
                        }
                    }
                    if let Some(w) = write {
                        w.run(k);
                    }
                    continue;
                }
                let e = if exps.is_null() {
                    exps
                } else {
                    exps.add(start)
                };
                st.sum = exp_sum_overlapped(
                    k,
                    s.add(start),
                    e,
                    len,
                    m,
                    t,
                    write.as_ref(),
                    ahead,
                    ahead_n,
                );
            }
        }
        deferred = match combine(&mut cur[..nb], t) {
            Err(_) => {
                for j in 0..n {
                    // SAFETY: `j < n`: row `i`'s output, which this call alone writes.
                    unsafe { *d.add(j) = C::NAN };
                }
                None
            }
            Ok((mm, total)) => Some(Deferred {
                src: s,
                dst: d,
                exps,
                mm,
                t,
                total,
                log_sum: total.ln(),
            }),
        };
    }
    if let Some(p) = deferred {
        let last = &stats[(count - 1) % 2];
        for (b, st) in last[..nb].iter().enumerate() {
            // SAFETY: `b < nb` is a block of the last row, whose source, output and exps are
            // valid as above.
            if let Some(w) = unsafe { p.block_write(op, n, st, b) } {
                // SAFETY: as above.
                unsafe { w.run(k) };
            }
        }
    }
}

/// log(Σ exp(x)) of one row (contract S6 for non-finite entries; `-inf` for an empty row).
pub(crate) fn logsumexp_row<C: Real>(x: &[C], parallel: bool) -> C {
    logsumexp_row_with(kernels::<C>(), x, parallel)
}

/// [`logsumexp_row_with`] of each row of `n` elements (`1 <= n <= BLOCK`) stored one after the
/// other in `x`, row `r`'s into `out[r]`: the same bits, with the rows' sums taken many rows
/// per kernel call ([`row_sums`]), where one row's call would cost more than its elements.
///
/// # Panics
/// Unless `x` holds `out.len()` rows.
pub(crate) fn logsumexp_rows_with<C: Real>(
    k: &'static Kernels<C>,
    x: &[C],
    n: usize,
    out: &mut [C],
) {
    const CHUNK: usize = 256;
    assert_eq!(x.len(), n * out.len(), "one result per row");
    let mut maxima = [C::default(); CHUNK];
    let mut totals = [0.0f64; CHUNK];
    for (xs, outs) in x.chunks(CHUNK * n).zip(out.chunks_mut(CHUNK)) {
        let count = outs.len();
        row_sums(k, xs, n, 1.0, &mut maxima[..count], &mut totals[..count]);
        let log_sums = &mut totals[..count];
        ln_in_place(log_sums);
        for (r, o) in outs.iter_mut().enumerate() {
            *o = if log_sums[r].is_nan() {
                // Contract S6's rows: their maximum decides.
                logsumexp_row_with(k, &xs[r * n..(r + 1) * n], false)
            } else {
                C::from_f64(maxima[r].to_f64() + log_sums[r])
            };
        }
    }
}

/// [`logsumexp_row`] with the kernels of a given table.
pub(crate) fn logsumexp_row_with<C: Real>(k: &'static Kernels<C>, x: &[C], parallel: bool) -> C {
    match max_and_sum_exp(k, x, 1.0, parallel) {
        Ok((m, total)) => C::from_f64(m.to_f64() + total.ln()),
        Err((true, _)) => C::NAN,
        Err((false, true)) => C::INFINITY,
        Err((false, false)) => C::NEG_INFINITY,
    }
}

/// A row's maximum `m` and Σ exp((x - m) / t) over it (`t` positive and finite), through the
/// kernels of `k`, a block at a time beyond [`BLOCK`] elements (`parallel`: the blocks shared
/// with the crate's threads); for contract S6's rows, `Err((nan, pos_inf))`: a NaN, else a
/// +inf, else no entry above -inf (an empty row included). Rows of up to a block get the bits
/// of [`row_sums`].
pub(crate) fn max_and_sum_exp<C: Real>(
    k: &'static Kernels<C>,
    x: &[C],
    t: f64,
    parallel: bool,
) -> Result<(C, f64), (bool, bool)> {
    let n = x.len();
    if n <= BLOCK {
        let (m, nan) = (k.max)(x);
        if nan || m == C::INFINITY || m == C::NEG_INFINITY {
            return Err((nan, m == C::INFINITY));
        }
        return Ok((m, (k.sum_exp)(x, m, t)));
    }
    let nb = n_blocks(n);
    let parallel = parallel && nb > 1;
    with_stats::<C, _>(nb, |stats| {
        each_shared(stats, parallel, |b, st| {
            if interrupt::poll() {
                return;
            }
            let (start, len) = block(n, b);
            let xb = &x[start..start + len];
            let (m, nan) = (k.max)(xb);
            st.m = m;
            st.nan = nan;
            st.pos_inf = m == C::INFINITY;
            if !nan && m != C::INFINITY && m != C::NEG_INFINITY {
                st.sum = (k.sum_exp)(xb, m, t);
            }
        });
        if interrupt::stopped() {
            return Err((true, false));
        }
        combine(stats, t)
    })
}

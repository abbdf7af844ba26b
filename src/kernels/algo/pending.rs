//! The streamed `f32` schedules' overlap: one row's (or block's) output written a turn at a
//! time, with non-temporal stores where the level has them, during the next one's exp pass
//! (so that writing to memory overlaps arithmetic instead of coming in one burst per row), and
//! a later block prefetched meanwhile. Elementwise writes with the block kernels' operations,
//! so the bits are theirs however the writes are cut.

use super::f32::{exp_sum, vector_temperature, Ahead, ArgF32, Turn};
use crate::kernels::isa::Simd;
use crate::kernels::{exp_sum_unfused, BlockWrite, Kernels};

/// A row's output still to write: `x * factor`, or with `exp` `exp(arg(x)) * factor`, or with
/// `log` `arg(x) - log_sum`, `arg` as `c` (`unit`: at temperature one).
///
/// Made by [`Pending::start`], whose contract on `src`, `dst` and `n` holds for as long as the
/// value is used.
pub(crate) struct Pending<S: Simd> {
    s: S,
    log: bool,
    /// `exp(arg(x)) * f` (softmax without kept exps) instead of `x * f`.
    exp: bool,
    unit: bool,
    src: *const f32,
    dst: *mut f32,
    n: usize,
    done: usize,
    f: S::F32,
    c: ArgF32<S>,
    ls: S::F32,
    ls64: S::F64,
}

impl<S: Simd> Pending<S> {
    /// A write of `n` elements from `src` to `dst` (see the type); writes the elements up to
    /// the first `STREAM_ALIGN`-byte boundary of `dst` at once.
    ///
    /// # Safety
    /// `src` (an aligned `f32` pointer) valid for reads and `dst` (an aligned `f32` pointer)
    /// for writes of `n` elements, the same or disjoint, for as long as the result is used;
    /// `src` not written and `dst` not otherwise accessed until [`Pending::finish`] has run
    /// and the owner has then called `stream_fence` (the non-temporal stores require it).
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    pub(crate) unsafe fn start(
        s: S,
        log: bool,
        exp: bool,
        unit: bool,
        src: *const f32,
        dst: *mut f32,
        n: usize,
        factor: f64,
        c: ArgF32<S>,
        log_sum: f64,
    ) -> Pending<S> {
        let mut p = Pending {
            s,
            log,
            exp,
            unit,
            src,
            dst,
            n,
            done: 0,
            f: s.splat_f32(factor as f32),
            c,
            ls: s.splat_f32(log_sum as f32),
            ls64: s.splat_f64(log_sum),
        };
        // SAFETY: `p` holds this function's `src`, `dst` and `n`, whose contract is `begin`'s.
        unsafe { p.begin() };
        p
    }

    /// `w` as a started [`Pending`]; `None` for a temperature the level's vector kernels do
    /// not take (which only the plain kernels handle).
    ///
    /// # Safety
    /// `w`'s `src` and `dst` as [`Pending::start`] requires of them.
    #[inline(always)]
    pub(crate) unsafe fn of_block(s: S, w: &BlockWrite<f32>) -> Option<Pending<S>> {
        use BlockWrite::*;
        let (log, exp, src, dst, n, m, t, factor, log_sum) = match *w {
            Scale {
                src,
                dst,
                n,
                factor,
            } => (false, false, src, dst, n, 0.0, 1.0, factor, 0.0),
            ExpScale {
                src,
                dst,
                n,
                m,
                t,
                factor,
            } => (false, true, src, dst, n, m, t, factor, 0.0),
            Log {
                src,
                dst,
                n,
                m,
                t,
                log_sum,
            } => (true, false, src, dst, n, m, t, 0.0, log_sum),
        };
        if !vector_temperature::<S>(t) {
            return None;
        }
        let c = ArgF32::new(s, m, if t == 1.0 { 1.0 } else { 1.0 / t });
        // SAFETY: `w`'s `src`, `dst` and `n` are as `start` requires (this function's
        // contract).
        Some(unsafe { Pending::start(s, log, exp, t == 1.0, src, dst, n, factor, c, log_sum) })
    }

    #[inline(always)]
    fn value(&self, x: S::F32) -> S::F32 {
        let s = self.s;
        if self.exp {
            if self.unit {
                s.mul_f32(self.c.exp::<true>(s, x), self.f)
            } else {
                s.mul_f32(self.c.exp::<false>(s, x), self.f)
            }
        } else if !self.log {
            s.mul_f32(x, self.f)
        } else if self.unit {
            self.c.log::<true>(s, self.ls, self.ls64, x)
        } else {
            self.c.log::<false>(s, self.ls, self.ls64, x)
        }
    }

    /// Stores `v` at `dst + i`, non-temporally where the level can.
    ///
    /// # Safety
    /// `i + F32_LANES <= n`; `dst + i` is `STREAM_ALIGN`-aligned when that is not 0.
    #[inline(always)]
    unsafe fn put(&self, i: usize, v: S::F32) {
        // SAFETY: the vector at `dst + i` is among the `n` writable elements (`start`'s
        // contract and # Safety), aligned as a non-temporal store requires (# Safety); the
        // owner fences after `finish` (`start`'s contract).
        unsafe {
            if S::STREAM_ALIGN > 0 {
                self.s.stream_f32(self.dst.add(i), v)
            } else {
                self.s.store_f32(self.dst.add(i), v)
            }
        }
    }

    /// Up to the first `STREAM_ALIGN`-byte boundary of `dst`, with normal stores.
    ///
    /// # Safety
    /// `self` as [`Pending::start`] made it, its contract still holding.
    #[inline(always)]
    unsafe fn begin(&mut self) {
        let a = S::STREAM_ALIGN;
        let head = if a == 0 {
            0
        } else {
            (((a - (self.dst as usize & (a - 1))) & (a - 1)) / 4).min(self.n)
        };
        if head > 0 {
            // SAFETY: `head <= n` and `head < a / 4 = F32_LANES`: the first `head` elements of
            // `src` are readable and of `dst` writable (`start`'s contract).
            unsafe {
                let x = self.s.load_f32_part(self.src, head, 0.0);
                self.s.store_f32_part(self.dst, head, self.value(x));
            }
        }
        self.done = head;
    }

    /// One turn: four vectors, if that many are left.
    ///
    /// # Safety
    /// As [`Pending::begin`], which has run.
    #[inline(always)]
    unsafe fn step(&mut self) {
        let (i, l) = (self.done, S::F32_LANES);
        if i + 4 * l <= self.n {
            for q in 0..4 {
                // SAFETY: `i + (q + 1) l <= i + 4 l <= n`: the vector at `src + i + q l` is
                // readable (`start`'s contract); `done` is `begin`'s `head` (which makes
                // `dst + head` aligned) plus whole vectors, so `dst + i + q l` is aligned as
                // `put` requires.
                unsafe {
                    let x = self.s.load_f32(self.src.add(i + q * l));
                    self.put(i + q * l, self.value(x));
                }
            }
            self.done = i + 4 * l;
        }
    }

    /// The rest of the write.
    ///
    /// # Safety
    /// As [`Pending::begin`], which has run.
    #[inline(always)]
    pub(crate) unsafe fn finish(&mut self) {
        let l = S::F32_LANES;
        while self.done + 4 * l <= self.n {
            // SAFETY: this function's contract is `step`'s.
            unsafe { self.step() };
        }
        let mut i = self.done;
        while i + l <= self.n {
            // SAFETY: `i + l <= n`: the vector at `src + i` is readable (`start`'s contract);
            // `i` is `begin`'s `head` plus whole vectors, aligned as `put` requires.
            unsafe { self.put(i, self.value(self.s.load_f32(self.src.add(i)))) };
            i += l;
        }
        if i < self.n {
            // SAFETY: `i < n < i + l`: the last `n - i` elements of `src` are readable and of
            // `dst` writable (`start`'s contract).
            unsafe {
                let x = self.s.load_f32_part(self.src.add(i), self.n - i, 0.0);
                self.s
                    .store_f32_part(self.dst.add(i), self.n - i, self.value(x));
            }
        }
        self.done = self.n;
    }
}

/// The exp sum's extra work per turn: a prefetch of the block at `ahead` (its first `ahead_n`
/// elements, a turn's worth at a time) and a step of `pend`.
pub(crate) struct Overlap<'a, S: Simd> {
    pend: Option<&'a mut Pending<S>>,
    ahead: Ahead<S>,
}

impl<S: Simd> Turn for Overlap<'_, S> {
    #[inline(always)]
    fn before(&mut self, i: usize) {
        self.ahead.before(i);
    }

    #[inline(always)]
    fn after(&mut self) {
        if let Some(p) = self.pend.as_mut() {
            // SAFETY: `p` was started (`Pending::start`) under a contract that holds while it
            // is used (`exp_sum_pending`'s).
            unsafe { p.step() };
        }
    }
}

/// [`exp_sum`] that also steps `pend` once per turn and prefetches `ahead` (a turn's worth per
/// turn, up to `ahead_n` elements).
///
/// # Safety
/// As [`exp_sum`]; `pend`, if any, started and still under [`Pending::start`]'s contract, its
/// `src` and `dst` disjoint from `src` and `dst`; `ahead` any pointer (it is only
/// prefetched).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn exp_sum_pending<S: Simd, const UNIT: bool, const STORE: bool>(
    s: S,
    src: *const f32,
    dst: *mut f32,
    n: usize,
    c: ArgF32<S>,
    pend: Option<&mut Pending<S>>,
    ahead: *const f32,
    ahead_n: usize,
) -> f64 {
    let mut turn = Overlap {
        pend,
        ahead: Ahead { s, ahead, ahead_n },
    };
    // SAFETY: this function's contract is `exp_sum`'s.
    unsafe { exp_sum::<S, UNIT, STORE, _, _, _>(s, src, dst, n, c, &mut turn) }
}

/// [`Kernels::exp_sum_overlapped`] for `f32` on a level with table `k`: the exp sum of a block,
/// which also writes `write` a turn at a time ([`Pending`]) and prefetches `ahead`; the
/// unfused kernels one after the other for a temperature the vector kernels do not take.
///
/// # Safety
/// As [`crate::kernels::exp_sum_overlapped`]; `k` is the level's table.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn exp_sum_overlapped<S: Simd>(
    s: S,
    k: &Kernels<f32>,
    src: *const f32,
    exps: *mut f32,
    n: usize,
    m: f32,
    t: f64,
    write: Option<&BlockWrite<f32>>,
    ahead: *const f32,
    ahead_n: usize,
) -> f64 {
    // Decided before `of_block` starts writing (a write in place must happen once).
    let mut pend = None;
    if vector_temperature::<S>(t) {
        // SAFETY: `write` is valid as `BlockWrite::run` requires and disjoint from `src` and
        // `exps` (this function's contract), so nothing else touches its memory here; the
        // pending write is finished and fenced below (the early return only happens without
        // one).
        pend = write.and_then(|w| unsafe { Pending::of_block(s, w) });
    }
    if !vector_temperature::<S>(t) || (write.is_some() && pend.is_none()) {
        // SAFETY: this function's contract is `exp_sum_unfused`'s.
        return unsafe { exp_sum_unfused(k, src, exps, n, m, t, write, ahead, ahead_n) };
    }
    let c = ArgF32::new(s, m, if t == 1.0 { 1.0 } else { 1.0 / t });
    let p = pend.as_mut();
    let store = !exps.is_null();
    // SAFETY: `src` is valid for reads of `n` and, when `store`, `exps` for writes of `n`, the
    // same or disjoint (this function's contract); `p` was started by `of_block` on `write`,
    // disjoint from both; `ahead` is only prefetched.
    let sum = unsafe {
        match (t == 1.0, store) {
            (true, true) => exp_sum_pending::<S, true, true>(s, src, exps, n, c, p, ahead, ahead_n),
            (false, true) => {
                exp_sum_pending::<S, false, true>(s, src, exps, n, c, p, ahead, ahead_n)
            }
            (true, false) => {
                exp_sum_pending::<S, true, false>(s, src, exps, n, c, p, ahead, ahead_n)
            }
            (false, false) => {
                exp_sum_pending::<S, false, false>(s, src, exps, n, c, p, ahead, ahead_n)
            }
        }
    };
    if let Some(p) = pend.as_mut() {
        // SAFETY: `p` was started by `of_block` on `write`, whose memory is still as `start`
        // required; the fence its non-temporal stores need follows.
        unsafe { p.finish() };
        s.stream_fence();
    }
    sum
}

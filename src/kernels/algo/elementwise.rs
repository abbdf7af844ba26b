//! Elementwise maps over a row, for `f32` and `f64`.

use crate::kernels::isa::{Lane, Simd};

/// The operation of an elementwise map, on one vector. Its `apply` is `#[inline(always)]`, so
/// the operation is compiled into the level's `#[target_feature]` function with the loop; a
/// closure written in a generic algorithm would be compiled without the level's features (and
/// each intrinsic in it called out of line). A closure written inside a `#[target_feature]`
/// function inherits them and may be passed as it is.
pub(crate) trait LaneMap<V> {
    /// The result for `x`.
    fn apply(&self, x: V) -> V;
}

impl<V, F: Fn(V) -> V> LaneMap<V> for F {
    #[inline(always)]
    fn apply(&self, x: V) -> V {
        self(x)
    }
}

/// `x * factor`.
#[derive(Clone, Copy)]
struct MulBy<S: Simd, E: Lane<S>> {
    s: S,
    factor: E::V,
}

impl<S: Simd, E: Lane<S>> LaneMap<E::V> for MulBy<S, E> {
    #[inline(always)]
    fn apply(&self, x: E::V) -> E::V {
        E::mul(self.s, x, self.factor)
    }
}

/// `dst[i] = f(src[i])`, a vector at a time, `src` of element type `A` and `dst` of `B` (the
/// same vectors: `f32` and bfloat16 storage of `f32` lanes may mix). With `stream` (on a level
/// and output type that have non-temporal stores) the aligned middle is written with them,
/// then fenced, so that a large output is not first read into the cache. Elementwise, so the
/// bits do not depend on the alignment or on `stream`.
///
/// # Safety
/// `src` valid for reads and `dst` for writes of `n` elements, the same (then `A` is `B`) or
/// disjoint.
#[inline(always)]
pub(crate) unsafe fn map<S: Simd, A: Lane<S>, B: Lane<S, V = A::V>>(
    s: S,
    src: *const A,
    dst: *mut B,
    n: usize,
    stream: bool,
    op: impl LaneMap<A::V>,
) {
    let (l, size) = (A::LANES, std::mem::size_of::<B>());
    let mut i = 0;
    if stream && B::STREAMS && S::STREAM_ALIGN > 0 {
        // A vector of `B` in bytes: `STREAM_ALIGN` for `f32` and `f64`, half that for
        // bfloat16.
        let a = l * size;
        let head = (((a - (dst as usize & (a - 1))) & (a - 1)) / size).min(n);
        if head > 0 {
            // SAFETY: `head <= n` and `head < a / size = l`: the first `head` elements of
            // `src` are readable and of `dst` writable.
            unsafe {
                let y = op.apply(A::load_part(s, src, head, A::ZERO));
                B::store_part(s, dst, head, y);
            }
        }
        i = head;
        while i + l <= n {
            // SAFETY: `i + l <= n`: the vector at `src.add(i)` is readable and at `dst.add(i)`
            // writable. The loop runs only when `head` was not cut to `n`, so `dst.add(head)`
            // is the first `a`-byte boundary at or after `dst` (`dst` is aligned for `E`) and
            // `i - head` a multiple of `l`: `dst.add(i)` is `a`-byte aligned, as `stream`
            // requires; the fence below orders the stores before later accesses.
            unsafe {
                let y = op.apply(A::load(s, src.add(i)));
                B::stream(s, dst.add(i), y);
            }
            i += l;
        }
        s.stream_fence();
    } else {
        while i + 4 * l <= n {
            // SAFETY: `i + 4 l <= n`: the four vectors from `src.add(i)` are readable and from
            // `dst.add(i)` writable.
            unsafe {
                let y0 = op.apply(A::load(s, src.add(i)));
                let y1 = op.apply(A::load(s, src.add(i + l)));
                let y2 = op.apply(A::load(s, src.add(i + 2 * l)));
                let y3 = op.apply(A::load(s, src.add(i + 3 * l)));
                B::store(s, dst.add(i), y0);
                B::store(s, dst.add(i + l), y1);
                B::store(s, dst.add(i + 2 * l), y2);
                B::store(s, dst.add(i + 3 * l), y3);
            }
            i += 4 * l;
        }
        while i + l <= n {
            // SAFETY: `i + l <= n`: the vector at `src.add(i)` is readable, at `dst.add(i)`
            // writable.
            unsafe {
                let y = op.apply(A::load(s, src.add(i)));
                B::store(s, dst.add(i), y);
            }
            i += l;
        }
    }
    if i < n {
        // SAFETY: `i < n < i + l` (a loop above stopped, or `head` was cut to `n` and this
        // does not run): the last `n - i < l` elements of `src` are readable, of `dst`
        // writable.
        unsafe {
            let y = op.apply(A::load_part(s, src.add(i), n - i, A::ZERO));
            B::store_part(s, dst.add(i), n - i, y);
        }
    }
}

/// `dst = src * factor` (`factor` rounded to `A` first; each product rounded to `B`).
///
/// # Safety
/// `src` valid for reads and `dst` for writes of `n`, the same (then `A` is `B`) or disjoint.
#[inline(always)]
pub(crate) unsafe fn scale_to<S: Simd, A: Lane<S>, B: Lane<S, V = A::V>>(
    s: S,
    src: *const A,
    dst: *mut B,
    n: usize,
    factor: f64,
    stream: bool,
) {
    let op = MulBy::<S, A> {
        s,
        factor: A::splat(s, A::of_f64(factor)),
    };
    // SAFETY: this function's contract is `map`'s.
    unsafe { map(s, src, dst, n, stream, op) }
}

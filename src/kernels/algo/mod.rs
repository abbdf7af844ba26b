//! The kernels' algorithms, written once over the primitive layer ([`super::isa::Simd`]) and
//! instantiated per level inside `#[target_feature]` functions, whose tables `kernels_for`
//! hands out only on a CPU that has the level.

pub(crate) mod elementwise;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) mod f32;
pub(crate) mod f64;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) mod grouped;
pub(crate) mod max;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) mod pending;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) mod rows;

/// `block(start, len)` for the consecutive chunks of `chunk` elements of `0..n` (the last one
/// shorter), each result stored at `sums` in order: a kernel over chunks in one call, the
/// setup of `block`'s kernel (inlined into the caller) shared by the chunks.
///
/// # Safety
/// `sums` is valid for writes of `n.div_ceil(chunk)` values; `chunk > 0`.
#[inline(always)]
pub(crate) unsafe fn per_chunk(
    n: usize,
    chunk: usize,
    sums: *mut f64,
    mut block: impl FnMut(usize, usize) -> f64,
) {
    let mut start = 0;
    let mut k = 0;
    while start < n {
        let len = chunk.min(n - start);
        // SAFETY: chunk `k` starts below `n`, so `k < n.div_ceil(chunk)` (this function's
        // contract).
        unsafe { *sums.add(k) = block(start, len) };
        start += len;
        k += 1;
    }
}

/// `max(chunk)` of each consecutive chunk of `chunk` elements of `x` (the last one shorter)
/// into `out`, one per chunk; whether any chunk holds NaN. One call for a row's chunks: on
/// chunks of a few vectors, a kernel call per chunk costs about as much as the chunk's loads.
///
/// # Panics
/// If `out.len()` is not `x.len().div_ceil(chunk)`, or `chunk` is 0.
#[inline(always)]
pub(crate) fn chunk_maxima<E, O>(
    x: &[E],
    chunk: usize,
    out: &mut [O],
    mut max: impl FnMut(&[E]) -> (O, bool),
) -> bool {
    assert_eq!(out.len(), x.len().div_ceil(chunk), "one maximum per chunk");
    let mut nan = false;
    for (o, c) in out.iter_mut().zip(x.chunks(chunk)) {
        let (m, n) = max(c);
        *o = m;
        nan |= n;
    }
    nan
}

/// A level's `#[target_feature]` entry points, in the invoking module (which holds the level's
/// token constructor `isa()`): each `fn name(params) -> ret => body;` becomes a
/// `pub(crate) unsafe fn` compiled with the level's features `$feat` whose body (a call of an
/// algorithm with `isa()`) runs in an `unsafe` block, so that the algorithm inlines into it
/// with the level's instructions. Each entry's contract: the callee's, and the CPU has the
/// level's features.
macro_rules! entry_points {
    ($feat:literal; $(
        fn $name:ident $(<$(const $g:ident: $gt:ty),*>)? ($($a:ident: $t:ty),* $(,)?)
            $(-> $r:ty)? => $body:expr;
    )*) => {
        $(
            /// # Safety
            /// As the algorithm it calls; the CPU has the level's features.
            #[target_feature(enable = $feat)]
            #[allow(clippy::too_many_arguments)]
            pub(crate) unsafe fn $name $(<$(const $g: $gt),*>)? ($($a: $t),*) $(-> $r)? {
                // SAFETY: this function's contract is the callee's, and `isa()`'s holds: this
                // function is compiled with the level's features, which the CPU has (also
                // this function's contract).
                unsafe { $body }
            }
        )*
    };
}
pub(crate) use entry_points;

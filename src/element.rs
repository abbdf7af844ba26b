//! Element types the crate computes on: `f32`, `f64`, and `half::f16` and `half::bf16`
//! (computed in `f32`), with the conversions between a storage type and its compute type.

use std::fmt::Debug;

use crate::convert::{bf16_to_f32, f32_to_bf16};

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
    impl Sealed for half::f16 {}
    impl Sealed for half::bf16 {}
}

/// A floating-point element type accepted by the public functions: `f32`, `f64`,
/// [`half::f16`] or [`half::bf16`]. The 16-bit types are widened to `f32` as they are read,
/// computed there and rounded once (to nearest even) on output.
///
/// ```
/// use half::bf16;
/// use logitkit::Float;
/// assert_eq!(<half::f16 as Float>::NAME, "float16");
/// assert_eq!(<bf16 as Float>::NAME, "bfloat16");
/// // Slices convert in one call (vectorised for the 16-bit types).
/// let x = [bf16::from_f32(1.5), bf16::NEG_INFINITY];
/// let mut wide = [0.0f32; 2];
/// bf16::widen(&x, &mut wide);
/// assert_eq!(wide, [1.5, f32::NEG_INFINITY]);
/// let mut back = [bf16::ZERO; 2];
/// bf16::narrow(&[1.0 + 1.0 / 256.0, 3.4e38], &mut back);
/// assert_eq!(back, [bf16::ONE, bf16::INFINITY]); // a tie rounds to even; past MAX is inf
/// ```
pub trait Float: sealed::Sealed + Copy + Send + Sync + Debug + PartialOrd + 'static {
    /// The type the kernels compute in.
    type Compute: Real;
    /// NumPy's name of the type.
    const NAME: &'static str;
    /// Widens to the compute type (exact).
    fn to_compute(self) -> Self::Compute;
    /// Rounds from the compute type (once, to nearest even).
    fn from_compute(v: Self::Compute) -> Self;
    /// Widens to `f64` (exact).
    fn to_f64(self) -> f64;
    /// The largest finite value of the type.
    const MAX_FINITE: f64;
    /// Widens `src` into `dst` element by element, as [`Float::to_compute`]. Only the common
    /// length is converted.
    #[inline]
    fn widen(src: &[Self], dst: &mut [Self::Compute]) {
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = s.to_compute();
        }
    }
    /// Rounds `src` into `dst` element by element, as [`Float::from_compute`]. Only the
    /// common length is converted.
    #[inline]
    fn narrow(src: &[Self::Compute], dst: &mut [Self]) {
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = Self::from_compute(s);
        }
    }
}

/// A type the kernels compute in directly: `f32` or `f64`.
///
/// ```
/// use logitkit::{Float, Real};
/// // Generic code over the compute types: the largest probability, NaN for an empty row.
/// fn top_prob<R: Real>(x: &[R]) -> R {
///     let mut p = vec![R::default(); x.len()];
///     logitkit::softmax(x, &mut p, 1.0).unwrap();
///     p.into_iter().fold(R::NAN, |a, b| if a.is_nan() || b > a { b } else { a })
/// }
/// assert_eq!(top_prob(&[0.0f64, 0.0]), 0.5);
/// assert_eq!(top_prob(&[0.0f32, 0.0, 0.0, 0.0]), 0.25);
/// assert!(top_prob::<f32>(&[]).is_nan());
/// // Every `Float` names its compute type, which is a `Real`: `f16` computes in `f32`.
/// let wide: f32 = half::f16::from_f32(0.5).to_compute();
/// assert_eq!(wide, 0.5);
/// assert_eq!(<f32 as Real>::from_f64(0.1), 0.1f32);
/// ```
pub trait Real:
    Float<Compute = Self>
    + Default
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
{
    /// Rounds an `f64` to this type.
    fn from_f64(v: f64) -> Self;
    /// Negative infinity.
    const NEG_INFINITY: Self;
    /// Positive infinity.
    const INFINITY: Self;
    /// A quiet NaN.
    const NAN: Self;
    /// True for NaN.
    fn is_nan(self) -> bool;
    /// Below this maximum, `x - max` cannot overflow for any finite `x` of the type.
    const SUBTRACTION_SAFE_MAX: f64;
    /// Up to this temperature, an `x - max` that overflows to `-inf` stands for a probability
    /// that underflows to 0 anyway (`(x - max) / t` is below the type's smallest subnormal's
    /// log), so the kernels' 0 (log-softmax: `-inf`, which S5 allows there) is the exact result.
    const OVERFLOW_SAFE_TEMPERATURE: f64;
    /// `self` if `keep`, else `+0.0`, by masking the bits (branch-free, so that loops using it
    /// vectorise as a mask and an `and`).
    fn keep_if(self, keep: bool) -> Self;
}

impl Float for f32 {
    type Compute = f32;
    const NAME: &'static str = "float32";
    const MAX_FINITE: f64 = f32::MAX as f64;
    #[inline(always)]
    fn to_compute(self) -> f32 {
        self
    }
    #[inline(always)]
    fn from_compute(v: f32) -> f32 {
        v
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
}

impl Float for f64 {
    type Compute = f64;
    const NAME: &'static str = "float64";
    const MAX_FINITE: f64 = f64::MAX;
    #[inline(always)]
    fn to_compute(self) -> f64 {
        self
    }
    #[inline(always)]
    fn from_compute(v: f64) -> f64 {
        v
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
}

impl Float for half::f16 {
    type Compute = f32;
    const NAME: &'static str = "float16";
    const MAX_FINITE: f64 = 65504.0;
    #[inline(always)]
    fn to_compute(self) -> f32 {
        self.to_f32()
    }
    #[inline(always)]
    fn from_compute(v: f32) -> half::f16 {
        half::f16::from_f32(v)
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self.to_f64()
    }
    #[inline]
    fn widen(src: &[half::f16], dst: &mut [f32]) {
        use half::slice::HalfFloatSliceExt;
        let n = src.len().min(dst.len());
        // F16C when the CPU has it (checked at run time by `half`), else a loop.
        src[..n].convert_to_f32_slice(&mut dst[..n]);
    }
    #[inline]
    fn narrow(src: &[f32], dst: &mut [half::f16]) {
        use half::slice::HalfFloatSliceExt;
        let n = src.len().min(dst.len());
        dst[..n].convert_from_f32_slice(&src[..n]);
    }
}

impl Float for half::bf16 {
    type Compute = f32;
    const NAME: &'static str = "bfloat16";
    const MAX_FINITE: f64 = 3.3895313892515355e38;
    #[inline(always)]
    fn to_compute(self) -> f32 {
        bf16_to_f32(self.to_bits())
    }
    #[inline(always)]
    fn from_compute(v: f32) -> half::bf16 {
        half::bf16::from_bits(f32_to_bf16(v))
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        bf16_to_f32(self.to_bits()) as f64
    }
    #[inline]
    fn widen(src: &[half::bf16], dst: &mut [f32]) {
        crate::convert::widen_bf16(src, dst)
    }
    #[inline]
    fn narrow(src: &[f32], dst: &mut [half::bf16]) {
        crate::convert::narrow_bf16(src, dst)
    }
}

impl Real for f32 {
    const NEG_INFINITY: f32 = f32::NEG_INFINITY;
    const INFINITY: f32 = f32::INFINITY;
    const NAN: f32 = f32::NAN;
    // x - m rounds to -inf only if m exceeds half an ulp of f32::MAX (2^103).
    const SUBTRACTION_SAFE_MAX: f64 = 1e30;
    // An overflowed x - m is at most -f32::MAX; over t <= f32::MAX / 128 it is below -128, and
    // exp is below half the smallest subnormal (2^-150) from -104 on.
    const OVERFLOW_SAFE_TEMPERATURE: f64 = f32::MAX as f64 / 128.0;
    #[inline(always)]
    fn from_f64(v: f64) -> f32 {
        v as f32
    }
    #[inline(always)]
    fn keep_if(self, keep: bool) -> f32 {
        f32::from_bits(self.to_bits() & (keep as u32).wrapping_neg())
    }
    #[inline(always)]
    fn is_nan(self) -> bool {
        self.is_nan()
    }
}

impl Real for f64 {
    const NEG_INFINITY: f64 = f64::NEG_INFINITY;
    const INFINITY: f64 = f64::INFINITY;
    const NAN: f64 = f64::NAN;
    // x - m rounds to -inf only if m exceeds half an ulp of f64::MAX (2^970).
    const SUBTRACTION_SAFE_MAX: f64 = 1e291;
    // As for f32: below -1024, and exp is below half the smallest subnormal (2^-1075) from -746.
    const OVERFLOW_SAFE_TEMPERATURE: f64 = f64::MAX / 1024.0;
    #[inline(always)]
    fn from_f64(v: f64) -> f64 {
        v
    }
    #[inline(always)]
    fn keep_if(self, keep: bool) -> f64 {
        f64::from_bits(self.to_bits() & (keep as u64).wrapping_neg())
    }
    #[inline(always)]
    fn is_nan(self) -> bool {
        self.is_nan()
    }
}

/// True when `T` is its own compute type, so a `*const T` may be read as `*const T::Compute`.
#[inline(always)]
pub(crate) fn is_native<T: Float>() -> bool {
    std::any::TypeId::of::<T>() == std::any::TypeId::of::<T::Compute>()
}

/// Widens the `dst.len()` elements of `T` at `p`, `stride` apart, into `dst` (in one call to
/// [`Float::widen`] when they are adjacent).
///
/// # Safety
/// Those elements are valid for reads and not written during the call.
#[inline]
pub(crate) unsafe fn widen_strided<T: Float>(p: *const T, stride: isize, dst: &mut [T::Compute]) {
    if stride == 1 {
        // SAFETY: the caller's contract, for adjacent elements.
        T::widen(unsafe { std::slice::from_raw_parts(p, dst.len()) }, dst);
    } else {
        for (j, d) in dst.iter_mut().enumerate() {
            // SAFETY: the caller's contract.
            *d = unsafe { *p.offset(j as isize * stride) }.to_compute();
        }
    }
}

/// Rounds `src` into the `src.len()` elements of `T` at `p`, `stride` apart (in one call to
/// [`Float::narrow`] when they are adjacent).
///
/// # Safety
/// Those elements are valid for writes and accessed by nobody else during the call.
#[inline]
pub(crate) unsafe fn narrow_strided<T: Float>(src: &[T::Compute], p: *mut T, stride: isize) {
    if stride == 1 {
        // SAFETY: the caller's contract, for adjacent elements.
        T::narrow(src, unsafe { std::slice::from_raw_parts_mut(p, src.len()) });
    } else {
        for (j, &v) in src.iter().enumerate() {
            // SAFETY: the caller's contract.
            unsafe { *p.offset(j as isize * stride) = T::from_compute(v) };
        }
    }
}

/// `buf` refilled with the `n` elements of `T` at `p`, `stride` apart, widened; a refused
/// allocation is an error naming `what` (contract R1).
///
/// # Safety
/// As [`widen_strided`].
pub(crate) unsafe fn widen_into_scratch<T: Float>(
    p: *const T,
    stride: isize,
    n: usize,
    buf: &mut Vec<T::Compute>,
    what: &'static str,
) -> crate::Result<()> {
    // Only elements beyond the buffer's current length are filled before the widening
    // overwrites them all: a reused buffer is written once per lane, not twice.
    buf.truncate(n);
    crate::scratch::resize(buf, n, T::Compute::default(), what)?;
    // A long lane is copied a piece at a time, with a poll for an interruption between pieces
    // (contract R8).
    const PIECE: usize = 1 << 20;
    for (c, part) in buf.chunks_mut(PIECE).enumerate() {
        if c > 0 && crate::interrupt::poll() {
            return Err(crate::Error::Interrupted);
        }
        // SAFETY: the caller's contract: the piece's elements, from element `c PIECE` of the
        // lane, are readable.
        unsafe { widen_strided(p.offset((c * PIECE) as isize * stride), stride, part) };
    }
    Ok(())
}

//! Element types the crate computes on: `f32`, `f64` and `half::f16` (computed in `f32`).

use std::fmt::Debug;

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
    impl Sealed for half::f16 {}
}

/// A floating-point element type accepted by the public functions: `f32`, `f64` or
/// [`half::f16`]. `f16` data is widened to `f32`, computed there and rounded once on output.
///
/// ```
/// use logitkit::Float;
/// assert_eq!(<half::f16 as Float>::NAME, "float16");
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
    + crate::kernels::HasKernels
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

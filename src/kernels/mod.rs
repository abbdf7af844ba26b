//! Kernel tables, one per element type and instruction-set level, chosen once per process.
//!
//! A kernel works on one block of a row (at most [`BLOCK`] elements). Rows are cut into blocks
//! at fixed offsets and block results are combined in block order, so a row's result is the same
//! bits however many threads share the row (contract S9).

pub(crate) mod scalar;

use crate::element::Real;
use crate::simd::{simd_level, SimdLevel};

/// Elements per block: the unit of within-row parallelism and of deterministic summation.
pub(crate) const BLOCK: usize = 16 * 1024;

/// The kernels of one level for compute type `C`.
pub struct Kernels<C: 'static> {
    /// Largest entry ignoring NaN (`-inf` for an empty or all `-inf` block), and whether any
    /// entry is NaN.
    pub max: fn(&[C]) -> (C, bool),
    /// Σ exp((x - m) / t), accumulated at least as precisely as `f64` pairwise summation.
    pub sum_exp: fn(&[C], C, f64) -> f64,
    /// dst = exp((src - m) / t), returning the sum as `sum_exp` would. `src == dst` allowed.
    pub exp_store_sum: unsafe fn(*const C, *mut C, usize, C, f64) -> f64,
    /// dst *= factor.
    pub scale: unsafe fn(*mut C, usize, f64),
    /// dst = (src - m) / t - log_sum. `src == dst` allowed.
    pub write_log_softmax: unsafe fn(*const C, *mut C, usize, C, f64, f64),
}

/// Compensated (Neumaier) sum of block or chunk partial sums.
#[derive(Default, Clone, Copy)]
pub(crate) struct SumAcc {
    sum: f64,
    comp: f64,
}

impl SumAcc {
    #[inline]
    pub fn add(&mut self, v: f64) {
        let t = self.sum + v;
        if self.sum.abs() >= v.abs() {
            self.comp += (self.sum - t) + v;
        } else {
            self.comp += (v - t) + self.sum;
        }
        self.sum = t;
    }

    #[inline]
    pub fn total(self) -> f64 {
        self.sum + self.comp
    }
}

/// Vector levels the crate has kernels for on this architecture (the CPU may lack some).
pub(crate) fn vector_levels() -> &'static [SimdLevel] {
    &[]
}

/// A compute type with a kernel table per level (a supertrait of [`Real`], unnameable outside).
pub trait HasKernels: Sized + 'static {
    fn kernels_for(level: SimdLevel) -> &'static Kernels<Self>;
}

macro_rules! scalar_table {
    ($t:ty) => {
        Kernels::<$t> {
            max: scalar::max::<$t>,
            sum_exp: scalar::sum_exp::<$t>,
            exp_store_sum: scalar::exp_store_sum::<$t>,
            scale: scalar::scale::<$t>,
            write_log_softmax: scalar::write_log_softmax::<$t>,
        }
    };
}

static SCALAR_F32: Kernels<f32> = scalar_table!(f32);
static SCALAR_F64: Kernels<f64> = scalar_table!(f64);

impl HasKernels for f32 {
    fn kernels_for(level: SimdLevel) -> &'static Kernels<f32> {
        let _ = level;
        &SCALAR_F32
    }
}

impl HasKernels for f64 {
    fn kernels_for(level: SimdLevel) -> &'static Kernels<f64> {
        let _ = level;
        &SCALAR_F64
    }
}

/// The kernels of the process's level for `C`.
#[inline]
pub(crate) fn kernels<C: Real>() -> &'static Kernels<C> {
    C::kernels_for(simd_level())
}

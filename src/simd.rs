//! Run-time choice of the instruction set (contract S12).
//!
//! The level is chosen once per process: the best the CPU has, lowered by the environment
//! variable `LOGITKIT_SIMD` when it names a lower level. A level the CPU lacks falls back to the
//! best it has.

use std::sync::OnceLock;

/// An instruction-set level the kernels may use.
///
/// ```
/// let level = logitkit::simd_level();
/// assert!(["scalar", "avx2", "avx512", "neon"].contains(&level.name()));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SimdLevel {
    /// Portable code, no explicit vector instructions.
    Scalar,
    /// x86-64 AVX2 with FMA and F16C (every AVX2 CPU has both).
    Avx2,
    /// x86-64 AVX-512F.
    Avx512,
    /// aarch64 NEON.
    Neon,
}

impl SimdLevel {
    /// The name `simd_level()` reports: `"scalar"`, `"avx2"`, `"avx512"` or `"neon"`.
    ///
    /// ```
    /// use logitkit::SimdLevel;
    /// assert_eq!(SimdLevel::Avx512.name(), "avx512");
    /// // Names round-trip through `from_name`.
    /// for level in logitkit::supported_levels() {
    ///     assert_eq!(SimdLevel::from_name(level.name()), Some(level));
    /// }
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            SimdLevel::Scalar => "scalar",
            SimdLevel::Avx2 => "avx2",
            SimdLevel::Avx512 => "avx512",
            SimdLevel::Neon => "neon",
        }
    }

    /// Parses a name as `simd_level()` reports it (case-insensitive).
    ///
    /// ```
    /// use logitkit::SimdLevel;
    /// assert_eq!(SimdLevel::from_name("AVX2"), Some(SimdLevel::Avx2));
    /// assert_eq!(SimdLevel::from_name(" neon "), Some(SimdLevel::Neon));
    /// assert_eq!(SimdLevel::from_name("sse4"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<SimdLevel> {
        match name.trim().to_ascii_lowercase().as_str() {
            "scalar" => Some(SimdLevel::Scalar),
            "avx2" => Some(SimdLevel::Avx2),
            "avx512" => Some(SimdLevel::Avx512),
            "neon" => Some(SimdLevel::Neon),
            _ => None,
        }
    }
}

/// Every level this CPU supports that the crate has kernels for, best last.
///
/// ```
/// use logitkit::{supported_levels, SimdLevel};
/// let levels = supported_levels();
/// assert_eq!(levels[0], SimdLevel::Scalar); // always available
/// assert!(levels.windows(2).all(|w| w[0] < w[1]));
/// // The level in use is one of them.
/// assert!(levels.contains(&logitkit::simd_level()));
/// ```
pub fn supported_levels() -> Vec<SimdLevel> {
    let mut levels = vec![SimdLevel::Scalar];
    levels.extend(vector_levels().iter().copied().filter(|&l| cpu_has(l)));
    levels
}

/// Vector levels the crate has kernels for on this architecture (the CPU may lack some).
fn vector_levels() -> &'static [SimdLevel] {
    #[cfg(target_arch = "x86_64")]
    {
        &[SimdLevel::Avx2, SimdLevel::Avx512]
    }
    #[cfg(target_arch = "aarch64")]
    {
        &[SimdLevel::Neon]
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        &[]
    }
}

/// True when the running CPU can execute kernels of `level`.
pub fn cpu_has(level: SimdLevel) -> bool {
    match level {
        SimdLevel::Scalar => true,
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx2 => {
            std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
                && std::arch::is_x86_feature_detected!("f16c")
        }
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx512 => {
            std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
        }
        #[cfg(target_arch = "aarch64")]
        SimdLevel::Neon => std::arch::is_aarch64_feature_detected!("neon"),
        #[allow(unreachable_patterns)]
        _ => false,
    }
}

/// Whether the CPU is AMD's (CPUID vendor "AuthenticAMD"): a tuning choice, never a result.
pub(crate) fn cpu_is_amd() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static AMD: OnceLock<bool> = OnceLock::new();
        *AMD.get_or_init(|| {
            // SAFETY: CPUID exists on every x86-64 CPU (a safe function in newer Rust).
            #[allow(unused_unsafe)]
            let r = unsafe { std::arch::x86_64::__cpuid(0) };
            [r.ebx, r.edx, r.ecx]
                .iter()
                .flat_map(|w| w.to_le_bytes())
                .eq(*b"AuthenticAMD")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The level for a requested name: the requested level if the CPU has it and the crate has
/// kernels for it, else the best available level not above the request, else the best available.
fn resolve(requested: Option<&str>) -> SimdLevel {
    let levels = supported_levels();
    let best = *levels.last().expect("scalar is always supported");
    let Some(req) = requested.and_then(SimdLevel::from_name) else {
        return best;
    };
    if levels.contains(&req) {
        return req;
    }
    // A level of another architecture, or one this CPU lacks: use the best this CPU has below
    // it (for "scalar" that is scalar itself; for a missing one that is the best we have).
    levels
        .iter()
        .rev()
        .copied()
        .find(|&l| l <= req)
        .unwrap_or(best)
}

/// Environment variable that lowers the level at first use: `"scalar"`, `"avx2"`, `"avx512"` or
/// `"neon"` (case-insensitive). Any other value is ignored (the Python module warns about it at
/// import, contract R5).
pub const SIMD_ENV: &str = "LOGITKIT_SIMD";

static LEVEL: OnceLock<SimdLevel> = OnceLock::new();

/// The instruction-set level the kernels use in this process (contract S12).
///
/// ```
/// use logitkit::{simd_level, supported_levels};
/// let level = simd_level();
/// println!("logitkit kernels: {}", level.name());
/// // The best supported level, unless `LOGITKIT_SIMD` asked for a lower one.
/// assert!(level <= *supported_levels().last().unwrap());
/// assert_eq!(simd_level(), level); // chosen once per process
/// ```
pub fn simd_level() -> SimdLevel {
    *LEVEL.get_or_init(|| resolve(std::env::var(SIMD_ENV).ok().as_deref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s12_scalar_request_gives_scalar() {
        assert_eq!(resolve(Some("scalar")), SimdLevel::Scalar);
    }

    #[test]
    fn s12_unknown_request_gives_best() {
        assert_eq!(resolve(Some("bogus")), *supported_levels().last().unwrap());
        assert_eq!(resolve(None), *supported_levels().last().unwrap());
    }

    #[test]
    fn s12_names_round_trip() {
        for l in [
            SimdLevel::Scalar,
            SimdLevel::Avx2,
            SimdLevel::Avx512,
            SimdLevel::Neon,
        ] {
            assert_eq!(SimdLevel::from_name(l.name()), Some(l));
        }
    }

    #[test]
    fn s12_request_never_exceeds_cpu() {
        for name in ["scalar", "avx2", "avx512", "neon"] {
            let got = resolve(Some(name));
            assert!(
                cpu_has(got),
                "{name} resolved to {got:?}, which this CPU lacks"
            );
        }
    }
}

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

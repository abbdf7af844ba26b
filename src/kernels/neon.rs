//! The NEON level's kernel tables (aarch64): the block kernels of `algo::f32` and
//! `algo::f64` compiled for NEON, the many-rows kernel row by row. NEON is part of the aarch64
//! baseline, so these run on every aarch64 CPU; `kernels_for` still hands them out only after
//! `cpu_has(Neon)`.

use super::isa::neon::Neon;
use super::{level_table, rows_kernel};

/// The NEON token.
///
/// # Safety
/// Only called from functions that run on a CPU with NEON (every function here).
#[inline(always)]
unsafe fn isa() -> Neon {
    // SAFETY: this function's contract.
    unsafe { Neon::new() }
}

crate::kernels::algo::f32::block_kernels!("neon");

rows_kernel!(
    rows_f32,
    f32,
    "neon",
    max_f32_impl,
    exp_store_sum_f32,
    sum_exp_f32_impl,
    scale_f32,
    scale_to_f32,
    exp_scale_f32,
    write_log_softmax_f32,
    super::row_ln_f32
);

level_table!(
    /// The NEON table for `f32`. Only handed out when the CPU has NEON (every aarch64 CPU).
    F32: f32 {
        max: max_f32_impl,
        sum_exp: sum_exp_f32_impl,
        exp_store_sum: exp_store_sum_f32,
        scale: scale_f32,
        scale_to: scale_to_f32,
        exp_scale: exp_scale_f32,
        write_log_softmax: write_log_softmax_f32,
        rows: rows_f32,
        exp_sum_overlapped: None,
    }
);

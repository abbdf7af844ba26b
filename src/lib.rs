#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
//! # logitkit
//!
//! Logits to probabilities and tokens, fast and exact, on the CPU: softmax, log-softmax and
//! log-sum-exp with a temperature, over slices or batches of rows, in parallel on a pool the
//! crate owns. `f32`, `f64` and `half::f16` (computed in `f32`).
//!
//! ```
//! let logits = [4.1f32, 1.0, 2.3, -0.5, 0.2];
//! let mut probs = [0.0f32; 5];
//! logitkit::softmax(&logits, &mut probs, 1.0).unwrap();
//! assert!((probs.iter().sum::<f32>() - 1.0).abs() < 1e-6);
//!
//! // A batch of rows, one temperature per row.
//! let batch = [0.0f64, 1.0, 2.0, 0.0, 1.0, 2.0];
//! let mut out = [0.0f64; 6];
//! logitkit::softmax_rows(&batch, &mut out, 3, (&[1.0, 0.5][..]).into()).unwrap();
//! assert!(out[5] > out[2]);
//! ```
//!
//! The behaviour is the contract in the repository's README: overflow safety, non-finite input,
//! accuracy bounds, and results that are bitwise the same whatever the thread count.
//! The Python bindings sit behind the `python` feature; without it the crate has no PyO3.

#![warn(missing_docs)]

mod cache;
mod convert;
mod element;
mod error;
pub mod extras;
mod interrupt;
#[doc(hidden)]
pub mod kernel_access;
mod kernels;
pub mod lanes;
mod layout;
mod ln;
mod op;
// The bindings' `out=` checks and `StridedViewMut`'s.
mod overlap;
pub(crate) mod parallel;
mod row;
pub mod sampling;
mod scratch;
mod shared;
mod simd;
mod softmax;
mod temperature;
#[cfg(test)]
mod test_rng;
pub mod view;
#[cfg(test)]
mod view_api_tests;

/// True under `make valgrind`, which sets `LOGITKIT_UNDER_VALGRIND`: memcheck checks memory, not
/// numbers, so a unit test may keep one case per code path there.
#[cfg(test)]
pub(crate) fn under_valgrind() -> bool {
    std::env::var_os("LOGITKIT_UNDER_VALGRIND").is_some()
}

/// True under valgrind or qemu-user (`make neon` sets `LOGITKIT_UNDER_QEMU`), where every case
/// takes ~50 times as long: a unit test may keep one case per code path there (the native run
/// has them all).
#[cfg(test)]
pub(crate) fn emulated() -> bool {
    under_valgrind() || std::env::var_os("LOGITKIT_UNDER_QEMU").is_some()
}

#[cfg(feature = "python")]
mod python;

pub use element::{Float, Real};
pub use error::{Error, Result};
pub use interrupt::with_interrupt_check;
#[doc(hidden)]
pub use kernel_access as __kernels;
pub use layout::Lanes;
pub use op::Op;
pub use parallel::{
    available_cpus, get_num_threads, set_num_threads, MAX_THREADS, NUM_THREADS_ENV,
};
pub use sampling::{
    filter_logits, filter_logits_batch, filter_logits_rows, sample, sample_batch, sample_rows,
    token_logprobs, token_logprobs_rows, Draws, Histories, LogprobsMode, PerRow, RowParam, Sampler,
    SamplingParams, Seed, TokenBitmask,
};
pub use sampling::{verify_draft, verify_draft_uniforms, Verified};
pub use simd::{simd_level, supported_levels, SimdLevel};
pub use softmax::{
    log_softmax, log_softmax_in_place, log_softmax_rows, log_softmax_rows_in_place, logsumexp,
    logsumexp_rows, softmax, softmax_in_place, softmax_rows, softmax_rows_in_place,
};
pub use temperature::Temperature;
pub use view::{StridedView, StridedViewMut};

/// The README's Rust examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

//! Test data: a small deterministic generator of uniforms for the sampling module's unit tests.

/// Uniforms in `[0, 1)` from an xorshift64 stream started at `state` (not 0): the upper 53 bits
/// of each step.
pub(crate) fn units(mut state: u64) -> impl FnMut() -> f64 {
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Sampling parameters with temperature `t`, top-p `p`, min-p `mp` and top-k `k` (0 = off).
pub(crate) fn filters(t: f64, p: f64, mp: f64, k: i64) -> crate::SamplingParams {
    crate::SamplingParams::default()
        .temperature(t)
        .top_p(p)
        .min_p(mp)
        .top_k(k)
}

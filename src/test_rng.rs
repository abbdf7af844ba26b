//! Test data for the unit tests of every layer: a small seeded generator of uniforms.

/// Uniforms in `[0, 1)` from a linear congruential generator (Knuth's MMIX constants) seeded
/// with `state`: the upper 53 bits of each step.
pub(crate) fn lcg_uniform(mut state: u64) -> impl FnMut() -> f64 {
    move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    }
}

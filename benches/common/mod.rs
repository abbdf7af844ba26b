//! What the benches share: the shapes and a deterministic input.
// Each bench target compiles this module and uses part of it.
#![allow(dead_code)]

/// The f32 batch shapes of the speed issue (rows, row length).
pub const SHAPES: &[(usize, usize)] = &[
    (1, 32_000),
    (1, 128_256),
    (32, 128_256),
    (256, 152_064),
    (4096, 1000),
    (65_536, 10),
    (32_768, 1024),
];

/// Deterministic logits, uniform in [-5, 5), from an xorshift stream started at `seed`.
pub fn logits(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 10.0
        })
        .collect()
}

//! The first 64-bit word of ChaCha20 block 0 for [`LANES`] streams at once (contract P5's
//! streams, computed for many short rows together).
//!
//! `rand_chacha` fills four blocks of one stream at a time, which a row that draws one word
//! wastes three quarters of. Here each lane holds one stream's block and each state word is a
//! `[u32; LANES]`: written once in plain Rust, compiled for the build's baseline and for AVX2
//! and AVX-512F (one vector register per state word), chosen by the crate's SIMD level.

#[cfg(target_arch = "x86_64")]
use crate::simd::{simd_level, SimdLevel};

/// Streams computed together.
pub(crate) const LANES: usize = 8;

type Word = [u32; LANES];

/// "expand 32-byte k"
const SIGMA: [u32; 4] = [0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574];

// Each step a loop of its own over the lanes: LLVM's vectoriser leaves a loop that mixes the
// add and the rotate scalar.
#[inline(always)]
fn add(a: &mut Word, b: &Word) {
    for l in 0..LANES {
        a[l] = a[l].wrapping_add(b[l]);
    }
}

#[inline(always)]
fn xor_rotate(d: &mut Word, a: &Word, by: u32) {
    for l in 0..LANES {
        d[l] = (d[l] ^ a[l]).rotate_left(by);
    }
}

#[inline(always)]
fn quarter_round(x: &mut [Word; 16], [a, b, c, d]: [usize; 4]) {
    let (mut va, mut vb, mut vc, mut vd) = (x[a], x[b], x[c], x[d]);
    add(&mut va, &vb);
    xor_rotate(&mut vd, &va, 16);
    add(&mut vc, &vd);
    xor_rotate(&mut vb, &vc, 12);
    add(&mut va, &vb);
    xor_rotate(&mut vd, &va, 8);
    add(&mut vc, &vd);
    xor_rotate(&mut vb, &vc, 7);
    (x[a], x[b], x[c], x[d]) = (va, vb, vc, vd);
}

#[inline(always)]
fn rounds_loop(x: &mut [Word; 16]) {
    for _ in 0..10 {
        quarter_round(x, [0, 4, 8, 12]);
        quarter_round(x, [1, 5, 9, 13]);
        quarter_round(x, [2, 6, 10, 14]);
        quarter_round(x, [3, 7, 11, 15]);
        quarter_round(x, [0, 5, 10, 15]);
        quarter_round(x, [1, 6, 11, 12]);
        quarter_round(x, [2, 7, 8, 13]);
        quarter_round(x, [3, 4, 9, 14]);
    }
}

// The rounds alone are compiled per level, over a state in memory: inlined together with the
// set-up, LLVM splits the state into scalars and never vectorises it again.
fn rounds(x: &mut [Word; 16], baseline_only: bool) {
    #[cfg(target_arch = "x86_64")]
    if !baseline_only {
        #[target_feature(enable = "avx512f,avx2")]
        fn avx512(x: &mut [Word; 16]) {
            rounds_loop(x)
        }
        #[target_feature(enable = "avx2")]
        fn avx2(x: &mut [Word; 16]) {
            rounds_loop(x)
        }
        match simd_level() {
            // SAFETY: the level is only ever one the CPU has (checked at run time).
            SimdLevel::Avx512 => return unsafe { avx512(x) },
            // SAFETY: as above.
            SimdLevel::Avx2 => return unsafe { avx2(x) },
            _ => {}
        }
    }
    let _ = baseline_only;
    rounds_loop(x)
}

fn first_words_at(
    keys: &[[u32; 8]; LANES],
    streams: &[u64; LANES],
    baseline_only: bool,
) -> [u64; LANES] {
    let mut x = [[0u32; LANES]; 16];
    for (w, &s) in SIGMA.iter().enumerate() {
        x[w] = [s; LANES];
    }
    for l in 0..LANES {
        for w in 0..8 {
            x[4 + w][l] = keys[l][w];
        }
        // Words 12 and 13 are the block counter (0); 14 and 15 the stream, low half first.
        x[14][l] = streams[l] as u32;
        x[15][l] = (streams[l] >> 32) as u32;
    }
    rounds(&mut x, baseline_only);
    let mut out = [0u64; LANES];
    for l in 0..LANES {
        let lo = x[0][l].wrapping_add(SIGMA[0]);
        let hi = x[1][l].wrapping_add(SIGMA[1]);
        out[l] = (u64::from(hi) << 32) | u64::from(lo);
    }
    out
}

/// Lane `l`'s result is the first `u64` that `rand_chacha`'s `ChaCha20Rng` seeded with the
/// little-endian bytes of `keys[l]`, on stream `streams[l]`, returns.
pub(crate) fn first_words(keys: &[[u32; 8]; LANES], streams: &[u64; LANES]) -> [u64; LANES] {
    first_words_at(keys, streams, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::{Rng, SeedableRng};
    use rand_chacha::ChaCha20Rng;

    fn reference(key: &[u32; 8], stream: u64) -> u64 {
        let mut bytes = [0u8; 32];
        for (b, w) in bytes.chunks_exact_mut(4).zip(key) {
            b.copy_from_slice(&w.to_le_bytes());
        }
        let mut r = ChaCha20Rng::from_seed(bytes);
        r.set_stream(stream);
        r.next_u64()
    }

    #[test]
    fn p5_lanes_give_rand_chachas_first_words_at_every_level() {
        let mut keys = [[0u32; 8]; LANES];
        let mut streams = [0u64; LANES];
        let mut s = 0x0123_4567_89ab_cdefu64;
        for (l, (key, stream)) in keys.iter_mut().zip(&mut streams).enumerate() {
            for w in key.iter_mut() {
                s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                *w = (s >> 32) as u32;
            }
            // Stream numbers with both halves set, and the extremes.
            *stream = match l {
                0 => 0,
                1 => u64::MAX,
                _ => s.rotate_left(l as u32),
            };
        }
        let want: Vec<u64> = (0..LANES)
            .map(|l| reference(&keys[l], streams[l]))
            .collect();
        assert_eq!(
            first_words_at(&keys, &streams, true).to_vec(),
            want,
            "baseline"
        );
        assert_eq!(first_words(&keys, &streams).to_vec(), want, "this level");
    }
}

//! bfloat16 <-> f32 over slices, compiled for the CPU's vector level (the loops are plain
//! integer work, so each level's instantiation is the compiler's vectorisation of the same
//! code, and gives the same bits).

#[cfg(target_arch = "x86_64")]
use crate::simd::{simd_level, SimdLevel};

/// A bfloat16's bits widened to `f32` (exact: the upper half of the `f32`).
#[inline(always)]
pub(crate) fn bf16_to_f32(b: u16) -> f32 {
    f32::from_bits((b as u32) << 16)
}

/// `v` rounded to bfloat16 bits, to nearest even (`half::bf16::from_f32`'s results), without
/// a branch so that loops over slices vectorise: a NaN stays NaN (quietened, sign and upper
/// payload kept); beyond the largest finite bfloat16 the result is infinite.
#[inline(always)]
pub(crate) fn f32_to_bf16(v: f32) -> u16 {
    let b = v.to_bits();
    let rounded = b.wrapping_add(0x7FFF + ((b >> 16) & 1)) >> 16;
    let quiet_nan = (b >> 16) | 0x0040;
    let is_nan = (b & 0x7FFF_FFFF) > 0x7F80_0000;
    (if is_nan { quiet_nan } else { rounded }) as u16
}

#[inline(always)]
fn widen_loop(src: &[half::bf16], dst: &mut [f32]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d = bf16_to_f32(s.to_bits());
    }
}

#[inline(always)]
fn narrow_loop(src: &[f32], dst: &mut [half::bf16]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = half::bf16::from_bits(f32_to_bf16(s));
    }
}

/// Widens the common length of `src` into `dst`.
pub(crate) fn widen_bf16(src: &[half::bf16], dst: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,avx2")]
        fn avx512(src: &[half::bf16], dst: &mut [f32]) {
            widen_loop(src, dst)
        }
        #[target_feature(enable = "avx2")]
        fn avx2(src: &[half::bf16], dst: &mut [f32]) {
            widen_loop(src, dst)
        }
        match simd_level() {
            // SAFETY: the level is only ever one the CPU has (checked at run time).
            SimdLevel::Avx512 => return unsafe { avx512(src, dst) },
            // SAFETY: as above.
            SimdLevel::Avx2 => return unsafe { avx2(src, dst) },
            _ => {}
        }
    }
    widen_loop(src, dst)
}

/// Rounds the common length of `src` into `dst`.
pub(crate) fn narrow_bf16(src: &[f32], dst: &mut [half::bf16]) {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,avx2")]
        fn avx512(src: &[f32], dst: &mut [half::bf16]) {
            narrow_loop(src, dst)
        }
        #[target_feature(enable = "avx2")]
        fn avx2(src: &[f32], dst: &mut [half::bf16]) {
            narrow_loop(src, dst)
        }
        match simd_level() {
            // SAFETY: the level is only ever one the CPU has (checked at run time).
            SimdLevel::Avx512 => return unsafe { avx512(src, dst) },
            // SAFETY: as above.
            SimdLevel::Avx2 => return unsafe { avx2(src, dst) },
            _ => {}
        }
    }
    narrow_loop(src, dst)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every level's instantiation gives the scalar loop's bits.
    #[test]
    fn every_level_converts_as_the_scalar_loop() {
        let mut s = 0x1234_5678_9abc_def0u64;
        let bits: Vec<u32> = (0..10_007)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                s as u32
            })
            .collect();
        let vals: Vec<f32> = bits.iter().map(|&b| f32::from_bits(b)).collect();
        let mut want = vec![half::bf16::ZERO; vals.len()];
        for (w, &v) in want.iter_mut().zip(&vals) {
            *w = half::bf16::from_bits(f32_to_bf16(v));
        }
        let mut got = vec![half::bf16::ZERO; vals.len()];
        narrow_bf16(&vals, &mut got);
        let bits = |v: &[half::bf16]| v.iter().map(|b| b.to_bits()).collect::<Vec<u16>>();
        assert!(
            bits(&got) == bits(&want),
            "narrowing differs from the scalar loop"
        );
        let mut wide = vec![0.0f32; vals.len()];
        widen_bf16(&got, &mut wide);
        for (w, g) in wide.iter().zip(&got) {
            assert_eq!(w.to_bits(), bf16_to_f32(g.to_bits()).to_bits());
        }
    }
}

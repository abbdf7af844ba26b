//! bfloat16 read natively (issue 22 item 5): every function over `half::bf16` gives the bits of
//! the same function over the values widened to `f32`, rounded once to bfloat16 (contract S1
//! and S13's "computed in float32, rounded once"), for every layout, temperature, thread count
//! and SIMD level; and the conversions themselves are `half`'s. The long-row tests run for
//! float16 (`half::f16`) too, which the same kernels read.

use half::{bf16, f16};
use logitkit::lanes::{logsumexp_lanes, map_lanes};
use logitkit::{
    filter_logits_batch, log_softmax_rows, log_softmax_rows_in_place, logsumexp_rows, sample_batch,
    set_num_threads, softmax_rows, softmax_rows_in_place, Float, Histories, Lanes, Op,
    SamplingParams, Seed, StridedView, StridedViewMut, Temperature,
};

mod common;
use common::{emulated, scaled, Rng};

/// The 16-bit types the kernels read natively.
trait Half: Float<Compute = f32> + Copy + Default + std::fmt::Debug {
    const NEG_INF: Self;
    const NAN: Self;
    const INF: Self;
    fn of_f32(v: f32) -> Self;
    fn of_f64(v: f64) -> Self;
    fn f32(self) -> f32;
    fn bits(self) -> u16;
}

macro_rules! half_type {
    ($t:ty) => {
        impl Half for $t {
            const NEG_INF: $t = <$t>::NEG_INFINITY;
            const NAN: $t = <$t>::NAN;
            const INF: $t = <$t>::INFINITY;
            fn of_f32(v: f32) -> $t {
                <$t>::from_f32(v)
            }
            fn of_f64(v: f64) -> $t {
                <$t>::from_f64(v)
            }
            fn f32(self) -> f32 {
                self.to_f32()
            }
            fn bits(self) -> u16 {
                self.to_bits()
            }
        }
    };
}
half_type!(bf16);
half_type!(f16);

fn widened<H: Half>(x: &[H]) -> Vec<f32> {
    x.iter().map(|v| v.f32()).collect()
}

/// `half`'s rounding to `H` (bfloat16: the bits `convert::f32_to_bf16` gives, checked below).
fn rounded<H: Half>(x: &[f32]) -> Vec<u16> {
    x.iter().map(|&v| H::of_f32(v).bits()).collect()
}

fn bits<H: Half>(x: &[H]) -> Vec<u16> {
    x.iter().map(|v| v.bits()).collect()
}

/// Logits as a model gives them, with some `-inf` (masked) and, for `hostile`, NaN and `+inf`.
fn logits<H: Half>(rng: &mut Rng, n: usize, scale: f64, hostile: bool) -> Vec<H> {
    (0..n)
        .map(|_| {
            let u = rng.uniform();
            if u < 0.01 {
                H::NEG_INF
            } else if hostile && u < 0.012 {
                H::NAN
            } else if hostile && u < 0.013 {
                H::INF
            } else {
                H::of_f64(rng.normal() * scale)
            }
        })
        .collect()
}

#[test]
fn s1_bf16_rounding_is_halfs_on_every_pattern_class() {
    let mut rng = Rng(7);
    let mut patterns: Vec<u32> = (0..scaled(2_000_000)).map(|_| rng.next() as u32).collect();
    // Ties, values next to the largest finite bfloat16, infinities, NaNs, zeros, subnormals.
    for hi in [
        0x0000u32, 0x0001, 0x007F, 0x0080, 0x3F80, 0x7F7F, 0x7F80, 0x7FC0, 0x8000, 0xFF7F,
    ] {
        for lo in [0x0000u32, 0x0001, 0x7FFF, 0x8000, 0x8001, 0xFFFF] {
            patterns.push(hi << 16 | lo);
            patterns.push((hi | 0x8000) << 16 | lo);
        }
    }
    let vals: Vec<f32> = patterns.iter().map(|&b| f32::from_bits(b)).collect();
    let mut ours = vec![bf16::ZERO; vals.len()];
    bf16::narrow(&vals, &mut ours);
    for (i, (&v, o)) in vals.iter().zip(&ours).enumerate() {
        let want = bf16::from_f32(v);
        assert_eq!(o.to_bits(), want.to_bits(), "pattern {:#010x}", patterns[i]);
        assert_eq!(bf16::from_compute(v).to_bits(), want.to_bits());
    }
    let mut wide = vec![0.0f32; ours.len()];
    bf16::widen(&ours, &mut wide);
    for (w, o) in wide.iter().zip(&ours) {
        assert_eq!(w.to_bits(), o.to_f32().to_bits(), "widening is exact");
    }
    assert_eq!(<bf16 as Float>::MAX_FINITE, bf16::MAX.to_f64());
}

#[test]
fn s1_bf16_softmax_family_is_one_rounding_of_f32() {
    let mut rng = Rng(11);
    // Short rows (the many-rows kernels), one block, several blocks, an LLM vocabulary.
    for &(rows, n) in &[
        (1, 1),
        (5, 7),
        (33, 100),
        (4, 1000),
        (3, 16_385),
        (2, 50_000),
        (2, 128_256),
    ] {
        for &t in &[1.0, 0.7, 3.0] {
            for hostile in [false, true] {
                let x = logits(&mut rng, rows * n, 4.0, hostile);
                let x32 = widened(&x);
                for op in [Op::Softmax, Op::LogSoftmax] {
                    let mut got = vec![bf16::ZERO; x.len()];
                    let mut want = vec![0.0f32; x.len()];
                    let temp = Temperature::Scalar(t);
                    match op {
                        Op::Softmax => {
                            softmax_rows(&x, &mut got, n, temp).unwrap();
                            softmax_rows(&x32, &mut want, n, temp).unwrap();
                        }
                        Op::LogSoftmax => {
                            log_softmax_rows(&x, &mut got, n, temp).unwrap();
                            log_softmax_rows(&x32, &mut want, n, temp).unwrap();
                        }
                    }
                    assert_eq!(
                        bits(&got),
                        rounded::<bf16>(&want),
                        "{op:?} {rows}x{n} t={t}"
                    );
                }
                let mut got = vec![bf16::ZERO; rows];
                let mut want = vec![0.0f32; rows];
                logsumexp_rows(&x, n, &mut got).unwrap();
                logsumexp_rows(&x32, n, &mut want).unwrap();
                assert_eq!(bits(&got), rounded::<bf16>(&want), "logsumexp {rows}x{n}");
            }
        }
    }
}

#[test]
fn s1_bf16_strided_lanes_and_per_row_temperatures() {
    let mut rng = Rng(13);
    // Columns of a (n, count) array, and every other element of rows.
    for &(n, count) in &[(9, 5), (300, 17), (20_000, 3)] {
        let x = logits(&mut rng, n * count, 2.0, false);
        let x32 = widened(&x);
        let temps: Vec<f64> = (0..count).map(|i| 0.5 + i as f64 * 0.25).collect();
        let cols = Lanes::from_strided(&[n, count], &[count as isize, 1], 0);
        for op in [Op::Softmax, Op::LogSoftmax] {
            let mut got = vec![bf16::ZERO; x.len()];
            let mut want = vec![0.0f32; x.len()];
            map_lanes(
                op,
                &StridedView::new(&x, 0, cols.clone()).unwrap(),
                &mut StridedViewMut::new(&mut got, 0, cols.clone()).unwrap(),
                Temperature::PerRow(&temps),
            )
            .unwrap();
            map_lanes(
                op,
                &StridedView::new(&x32, 0, cols.clone()).unwrap(),
                &mut StridedViewMut::new(&mut want, 0, cols.clone()).unwrap(),
                Temperature::PerRow(&temps),
            )
            .unwrap();
            assert_eq!(
                bits(&got),
                rounded::<bf16>(&want),
                "{op:?} columns {n}x{count}"
            );
        }
        let mut got = vec![bf16::ZERO; count];
        let mut want = vec![0.0f32; count];
        logsumexp_lanes(&StridedView::new(&x, 0, cols.clone()).unwrap(), &mut got).unwrap();
        logsumexp_lanes(&StridedView::new(&x32, 0, cols.clone()).unwrap(), &mut want).unwrap();
        assert_eq!(
            bits(&got),
            rounded::<bf16>(&want),
            "logsumexp columns {n}x{count}"
        );
    }
}

#[test]
fn s9_bf16_same_bits_on_one_thread_or_two() {
    let mut rng = Rng(17);
    let x = logits(&mut rng, 8 * 128_256, 3.0, false);
    let mut one = vec![bf16::ZERO; x.len()];
    let mut two = vec![bf16::ZERO; x.len()];
    set_num_threads(1).unwrap();
    softmax_rows(&x, &mut one, 128_256, Temperature::Scalar(1.0)).unwrap();
    set_num_threads(2).unwrap();
    softmax_rows(&x, &mut two, 128_256, Temperature::Scalar(1.0)).unwrap();
    assert_eq!(bits(&one), bits(&two));
}

#[test]
fn p1_bf16_sampling_and_filtering_match_f32_on_the_same_values() {
    let mut rng = Rng(19);
    let (rows, vocab) = (6, 32_000);
    let x = logits(&mut rng, rows * vocab, 3.0, false);
    let x32 = widened(&x);
    let params = SamplingParams::default()
        .temperature(0.8)
        .top_k(50)
        .top_p(0.9)
        .min_p(0.02)
        .repetition_penalty(1.1)
        .top_logprobs(3);
    let prompt: Vec<Vec<u32>> = (0..rows).map(|r| vec![r as u32, 7, 99]).collect();
    let h = Histories::new().prompt_tokens(&prompt);
    let seed = Seed::Fixed(5);
    let a = sample_batch(&x, vocab, &params, &h, &seed, true).unwrap();
    let b = sample_batch(&x32, vocab, &params, &h, &seed, true).unwrap();
    assert_eq!(a.tokens, b.tokens);
    assert_eq!(a.logprobs, b.logprobs);
    assert_eq!(a.top_ids, b.top_ids);
    assert_eq!(a.top_logprobs, b.top_logprobs);
    let mut got = vec![bf16::ZERO; x.len()];
    let mut want = vec![0.0f32; x.len()];
    filter_logits_batch(&x, vocab, &params, &h, &mut got).unwrap();
    filter_logits_batch(&x32, vocab, &params, &h, &mut want).unwrap();
    assert_eq!(bits(&got), rounded::<bf16>(&want));
}

#[test]
fn p7_bf16_filtered_values_stay_finite_in_bfloat16() {
    // A bias pushes a kept logit past bfloat16's largest finite value (but not f32's, where
    // it is computed): the filtered row must still hold only finite kept values (P7), so the
    // row is given as gaps from its maximum instead (the same distribution).
    let x = [bf16::from_f32(3.3e38), bf16::ZERO, bf16::ONE];
    let biased = x[0].to_f64() + 1.0e37;
    assert!(biased > bf16::MAX.to_f64() && biased < f32::MAX as f64);
    let params = SamplingParams::default().logit_bias(vec![(0, 1.0e37)]);
    let mut out = [bf16::ZERO; 3];
    filter_logits_batch(&x, 3, &params, &Histories::new(), &mut out).unwrap();
    assert!(out.iter().all(|v| v.is_finite()), "{out:?}");
    assert_eq!(out[0], bf16::ZERO, "the maximum's gap");
    assert!(out[1] < bf16::from_f32(-1e38) && out[2] < bf16::from_f32(-1e38));
}

/// Long rows go through the bfloat16 kernels (no conversion buffer) where the level has them
/// and the temperature is one its vector kernels take; every case here must still be the f32
/// result rounded once: temperatures the vector kernels pass to the portable ones (tiny, huge,
/// per row mixed with ordinary ones), in place, whole blocks of `-inf` (softmax writes zeros
/// there), a block whose maximum is far below the row's (weight 0), NaN or `+inf` in one block
/// only, one row shared by two threads, and lengths one past and one short of whole blocks.
#[test]
fn s1_bf16_long_rows_on_every_path_are_one_rounding_of_f32() {
    long_rows_on_every_path_are_one_rounding_of_f32::<bf16>();
}

/// The same for float16, which the same kernels read (the values stay in float16's range).
#[test]
fn s1_f16_long_rows_on_every_path_are_one_rounding_of_f32() {
    long_rows_on_every_path_are_one_rounding_of_f32::<f16>();
}

fn long_rows_on_every_path_are_one_rounding_of_f32<H: Half>() {
    const BLOCK: usize = 16 * 1024;
    let mut rng = Rng(23);
    let temps = [1.0, 0.7, 1e-35, 1e-310, 1e35, 2.5];
    // Under valgrind or qemu, the block edges only: the longer rows take the same paths, in
    // more blocks.
    let lengths: &[usize] = if emulated() {
        &[BLOCK + 1, 3 * BLOCK - 1]
    } else {
        &[BLOCK + 1, 3 * BLOCK - 1, 50_000, 128_256]
    };
    for &n in lengths {
        let rows = temps.len();
        let mut x = logits::<H>(&mut rng, rows * n, 4.0, false);
        // Row 1: its second block all -inf; row 2: its first block 200 below the rest; row 3:
        // NaN in its last block; row 4: +inf in its first block.
        for v in &mut x[n + BLOCK..n + 2 * BLOCK] {
            *v = H::NEG_INF;
        }
        for v in &mut x[2 * n..2 * n + BLOCK] {
            *v = H::of_f32(v.f32() - 200.0);
        }
        x[4 * n - 1] = H::NAN;
        x[4 * n + 5] = H::INF;
        let x32 = widened(&x);
        for threads in [1, 2] {
            set_num_threads(threads).unwrap();
            for op in [Op::Softmax, Op::LogSoftmax] {
                let check = |temp: Temperature<'_>, what: &str| {
                    let (mut got, mut want) = (x.clone(), x32.clone());
                    let mut out = vec![0.0f32; x.len()];
                    let mut out16 = vec![H::default(); x.len()];
                    match op {
                        Op::Softmax => {
                            softmax_rows(&x, &mut out16, n, temp).unwrap();
                            softmax_rows(&x32, &mut out, n, temp).unwrap();
                            softmax_rows_in_place(&mut got, n, temp).unwrap();
                            softmax_rows_in_place(&mut want, n, temp).unwrap();
                        }
                        Op::LogSoftmax => {
                            log_softmax_rows(&x, &mut out16, n, temp).unwrap();
                            log_softmax_rows(&x32, &mut out, n, temp).unwrap();
                            log_softmax_rows_in_place(&mut got, n, temp).unwrap();
                            log_softmax_rows_in_place(&mut want, n, temp).unwrap();
                        }
                    }
                    let ctx = format!("{op:?} {rows}x{n} {what} threads={threads}");
                    assert_eq!(bits(&out16), rounded::<H>(&out), "{ctx}");
                    assert_eq!(bits(&got), rounded::<H>(&want), "{ctx} in place");
                };
                check(Temperature::PerRow(&temps), "per-row temperatures");
                for &t in &temps {
                    check(Temperature::Scalar(t), &format!("t={t}"));
                }
                // One row: two threads share its blocks.
                let one = |v: &[H]| v[..n].to_vec();
                let (mut got, mut want) = (vec![H::default(); n], vec![0.0f32; n]);
                let t = Temperature::Scalar(0.9);
                match op {
                    Op::Softmax => {
                        softmax_rows(&one(&x), &mut got, n, t).unwrap();
                        softmax_rows(&x32[..n], &mut want, n, t).unwrap();
                    }
                    Op::LogSoftmax => {
                        log_softmax_rows(&one(&x), &mut got, n, t).unwrap();
                        log_softmax_rows(&x32[..n], &mut want, n, t).unwrap();
                    }
                }
                assert_eq!(bits(&got), rounded::<H>(&want), "{op:?} one row of {n}");
            }
        }
    }
    // A row whose `f32` exps do not fit the 4 MB scratch buffer: softmax computes them twice.
    let n = (4 << 20) / 4 + 1;
    let x = logits::<H>(&mut rng, n, 4.0, false);
    let x32 = widened(&x);
    for t in [1.0, 0.7] {
        let (mut got, mut want) = (vec![H::default(); n], vec![0.0f32; n]);
        softmax_rows(&x, &mut got, n, Temperature::Scalar(t)).unwrap();
        softmax_rows(&x32, &mut want, n, Temperature::Scalar(t)).unwrap();
        assert_eq!(
            bits(&got),
            rounded::<H>(&want),
            "softmax of one row of {n}, t={t}"
        );
    }
}

/// A batch whose output is larger than the caches is written with non-temporal stores (here
/// at least 3/4 of a last-level cache of up to 43 MB): the same bits, also with an output
/// that starts off any vector boundary and rows whose starts drift against it.
#[test]
fn s1_bf16_streamed_batches_are_one_rounding_of_f32() {
    streamed_batches_are_one_rounding_of_f32::<bf16>();
}

#[test]
fn s1_f16_streamed_batches_are_one_rounding_of_f32() {
    streamed_batches_are_one_rounding_of_f32::<f16>();
}

fn streamed_batches_are_one_rounding_of_f32<H: Half>() {
    let mut rng = Rng(29);
    let (rows, n) = (64, 128_257);
    let x = logits::<H>(&mut rng, rows * n, 4.0, false);
    let x32 = widened(&x);
    // Under valgrind or qemu, one temperature (the general one): its loads and stores are
    // those of the other.
    let temps: &[f64] = if emulated() { &[0.8] } else { &[1.0, 0.8] };
    for op in [Op::Softmax, Op::LogSoftmax] {
        for &t in temps {
            let temp = Temperature::Scalar(t);
            let mut got = vec![H::default(); x.len() + 1];
            let mut want = vec![0.0f32; x.len()];
            match op {
                Op::Softmax => {
                    softmax_rows(&x, &mut got[1..], n, temp).unwrap();
                    softmax_rows(&x32, &mut want, n, temp).unwrap();
                }
                Op::LogSoftmax => {
                    log_softmax_rows(&x, &mut got[1..], n, temp).unwrap();
                    log_softmax_rows(&x32, &mut want, n, temp).unwrap();
                }
            }
            assert_eq!(
                bits(&got[1..]),
                rounded::<H>(&want),
                "{op:?} {rows}x{n} t={t}"
            );
        }
    }
}

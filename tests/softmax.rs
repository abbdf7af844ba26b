//! The softmax family over slices against a plain f64 reference (contract S4-S9).

use logitkit::{
    log_softmax, log_softmax_rows, logsumexp, logsumexp_rows, softmax, softmax_in_place,
    softmax_rows, softmax_rows_in_place, Error, Lanes, Op, Temperature,
};
use proptest::prelude::*;

/// exp((v - m) / t) with the argument carried as a double word (TwoSum for the difference, an
/// FMA remainder for the quotient): a plain f64 argument near -560 is off by ~1e-13 relative.
fn exp_shifted(v: f64, m: f64, t: f64) -> f64 {
    let d = v - m;
    let bb = d - v;
    let lo = (v - (d - bb)) + (-m - bb);
    let hi = d / t;
    let rem = (-hi).mul_add(t, d);
    let e = hi.exp();
    e + e * ((rem + lo) / t)
}

/// softmax(x / t) in f64 (finite input only), accurate to a few ulps.
fn reference(x: &[f64], t: f64) -> Vec<f64> {
    let m = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = x.iter().map(|&v| exp_shifted(v, m, t)).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

fn reference_log(x: &[f64], t: f64) -> Vec<f64> {
    let m = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let s: f64 = x.iter().map(|&v| ((v - m) / t).exp()).sum();
    x.iter().map(|&v| (v - m) / t - s.ln()).collect()
}

/// A deterministic normal-ish sample (sum of uniforms) without a rand dependency.
fn normal_row(n: usize, std: f64, seed: u64) -> Vec<f64> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..n)
        .map(|_| ((0..12).map(|_| next()).sum::<f64>() - 6.0) * std)
        .collect()
}

#[test]
fn s8_f32_accuracy_on_262144_entries() {
    for std in [1.0, 6.0] {
        let x64 = normal_row(262_144, std, 7);
        let x: Vec<f32> = x64.iter().map(|&v| v as f32).collect();
        let xr: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        let r = reference(&xr, 1.0);
        let mut p = vec![0f32; x.len()];
        softmax(&x, &mut p, 1.0).unwrap();
        let mut worst = 0f64;
        for (&a, &b) in p.iter().zip(&r) {
            if b >= 1e-12 {
                worst = worst.max((a as f64 - b).abs() / b);
            }
        }
        let sum: f64 = p.iter().map(|&v| v as f64).sum();
        assert!(worst <= 2e-6, "std {std}: rel err {worst}");
        assert!((sum - 1.0).abs() <= 1e-6, "std {std}: sum {sum}");
        let mut lp = vec![0f32; x.len()];
        log_softmax(&x, &mut lp, 1.0).unwrap();
        let rl = reference_log(&xr, 1.0);
        for (&a, &b) in lp.iter().zip(&rl) {
            assert!(
                (a as f64 - b).abs() <= 2e-6 * b.abs().max(1.0),
                "log {a} vs {b}"
            );
        }
    }
}

#[test]
fn s8_f64_accuracy_on_262144_entries() {
    let x = normal_row(262_144, 6.0, 11);
    let r = reference(&x, 1.0);
    let mut p = vec![0f64; x.len()];
    softmax(&x, &mut p, 1.0).unwrap();
    for (&a, &b) in p.iter().zip(&r) {
        if b >= 1e-250 {
            assert!((a - b).abs() / b <= 1e-13, "{a} vs {b}");
        }
    }
    let lse = logsumexp(&x);
    let m = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let want = m + x.iter().map(|&v| (v - m).exp()).sum::<f64>().ln();
    assert!((lse - want).abs() <= 1e-13 * want.abs().max(1.0));
}

#[test]
fn s5_contract_examples() {
    let mut p = [0f64; 2];
    softmax(&[1e30, 0.0], &mut p, 1e-30).unwrap();
    assert_eq!(p, [1.0, 0.0]);
    let mut q = [0f32; 2];
    softmax(&[3e38f32, -3e38], &mut q, 1.0).unwrap();
    assert_eq!(q, [1.0, 0.0]);
    let mut l = [0f64; 2];
    log_softmax(&[f64::MAX, -f64::MAX], &mut l, 1.0).unwrap();
    assert_eq!(l[0], 0.0);
    assert_eq!(l[1], f64::NEG_INFINITY);
}

#[test]
fn s6_non_finite_rows() {
    let nan = f32::NAN;
    let ni = f32::NEG_INFINITY;
    let x = [
        1.0f32,
        ni,
        0.0,
        /* row 1 */ ni,
        ni,
        ni,
        /* row 2 */ 1.0,
        nan,
        2.0,
        /* row 3 */ 0.0,
        f32::INFINITY,
        1.0,
    ];
    let mut p = [0f32; 12];
    softmax_rows(&x, &mut p, 3, 1.0.into()).unwrap();
    assert_eq!(p[1], 0.0);
    assert!((p[0] + p[2] - 1.0).abs() < 1e-6);
    assert!(p[3..].iter().all(|v| v.is_nan()));
    let mut lp = [0f32; 12];
    log_softmax_rows(&x, &mut lp, 3, 1.0.into()).unwrap();
    assert_eq!(lp[1], ni);
    assert!(lp[3..].iter().all(|v| v.is_nan()));
    let mut lse = [0f32; 4];
    logsumexp_rows(&x, 3, &mut lse).unwrap();
    assert!(lse[0].is_finite());
    assert_eq!(lse[1], ni);
    assert!(lse[2].is_nan());
    assert_eq!(lse[3], f32::INFINITY);
}

#[test]
fn s7_empty_inputs() {
    let mut out: [f64; 0] = [];
    softmax::<f64>(&[], &mut out, 1.0).unwrap();
    assert_eq!(logsumexp::<f64>(&[]), f64::NEG_INFINITY);
    let mut lse = [0f32; 3];
    logsumexp_rows::<f32>(&[], 0, &mut lse).unwrap();
    assert_eq!(lse, [f32::NEG_INFINITY; 3]);
}

#[test]
fn s4_temperature_errors_name_parameter_and_value() {
    for t in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let err = softmax(&[1.0f64], &mut [0.0], t).unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidParameter {
                    name: "temperature",
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains(&format!("{t}")));
    }
    let err = softmax_rows(&[1.0f64, 2.0], &mut [0.0; 2], 1, (&[1.0][..]).into()).unwrap_err();
    assert!(matches!(
        err,
        Error::LengthMismatch {
            name: "temperature",
            got: 1,
            expected: 2
        }
    ));
}

#[test]
fn s9_same_bits_for_any_thread_count() {
    let x: Vec<f32> = normal_row(3 * 100_003, 3.0, 5)
        .iter()
        .map(|&v| v as f32)
        .collect();
    let mut results = Vec::new();
    for threads in [1, 2, 3] {
        logitkit::set_num_threads(threads).unwrap();
        let mut one = vec![0f32; 100_003];
        softmax(&x[..100_003], &mut one, 0.7).unwrap();
        let mut many = vec![0f32; x.len()];
        softmax_rows(&x, &mut many, 100_003, 0.7.into()).unwrap();
        let mut lse = vec![0f32; 3];
        logsumexp_rows(&x, 100_003, &mut lse).unwrap();
        results.push((one, many, lse));
    }
    logitkit::set_num_threads(logitkit::available_cpus()).unwrap();
    for r in &results[1..] {
        assert!(r
            .0
            .iter()
            .zip(&results[0].0)
            .all(|(a, b)| a.to_bits() == b.to_bits()));
        assert!(r
            .1
            .iter()
            .zip(&results[0].1)
            .all(|(a, b)| a.to_bits() == b.to_bits()));
        assert_eq!(r.2, results[0].2);
    }
    // A vector's result does not depend on the other vectors of the call.
    assert!(results[0]
        .0
        .iter()
        .zip(&results[0].1[..100_003])
        .all(|(a, b)| a.to_bits() == b.to_bits()));
}

#[test]
fn s3_in_place_equals_out_of_place() {
    let x: Vec<f64> = normal_row(4 * 50, 2.0, 3);
    let temps = [0.5, 1.0, 2.0, 4.0];
    let mut out = vec![0f64; x.len()];
    softmax_rows(&x, &mut out, 50, Temperature::PerRow(&temps)).unwrap();
    let mut inplace = x.clone();
    softmax_rows_in_place(&mut inplace, 50, Temperature::PerRow(&temps)).unwrap();
    assert_eq!(out, inplace);
    let mut one = x[..50].to_vec();
    softmax_in_place(&mut one, 0.5).unwrap();
    assert_eq!(&one[..], &out[..50]);
}

#[test]
fn s2_strided_lanes_match_rows() {
    // A 3 x 4 x 5 C-contiguous array; softmax along axis 1 via strided lanes.
    let x: Vec<f64> = normal_row(60, 1.5, 9);
    let src = Lanes::from_strided(&[3, 4, 5], &[20, 5, 1], 1);
    let mut out = vec![0f64; 60];
    let sv = logitkit::StridedView::new(&x, 0, src.clone()).unwrap();
    let mut dv = logitkit::StridedViewMut::new(&mut out, 0, src).unwrap();
    logitkit::lanes::map_lanes(Op::Softmax, &sv, &mut dv, 1.0.into()).unwrap();
    for i in 0..3 {
        for k in 0..5 {
            let lane: Vec<f64> = (0..4).map(|j| x[i * 20 + j * 5 + k]).collect();
            let r = reference(&lane, 1.0);
            for j in 0..4 {
                assert!((out[i * 20 + j * 5 + k] - r[j]).abs() <= 1e-15);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn s5_s8_finite_rows_match_reference(
        row in prop::collection::vec(-1e4f64..1e4, 1..300),
        rows in 1usize..4,
        t in prop::sample::select(vec![1e-3, 0.1, 1.0, 7.5, 1e3]),
    ) {
        let x: Vec<f64> = (0..rows).flat_map(|r| row.iter().map(move |&v| v + r as f64)).collect();
        let mut p = vec![0f64; x.len()];
        softmax_rows(&x, &mut p, row.len(), t.into()).unwrap();
        let mut p32 = vec![0f32; x.len()];
        let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
        softmax_rows(&x32, &mut p32, row.len(), t.into()).unwrap();
        for r in 0..rows {
            let lane = &x[r * row.len()..(r + 1) * row.len()];
            let want = reference(lane, t);
            let lane32: Vec<f64> = x32[r * row.len()..(r + 1) * row.len()].iter().map(|&v| v as f64).collect();
            let want32 = reference(&lane32, t);
            for j in 0..row.len() {
                let (a, b) = (p[r * row.len() + j], want[j]);
                prop_assert!(a.is_finite());
                if b >= 1e-250 { prop_assert!((a - b).abs() <= 1e-13 * b, "{} vs {}", a, b); }
                let (a, b) = (p32[r * row.len() + j] as f64, want32[j]);
                prop_assert!(a.is_finite());
                if b >= 1e-12 { prop_assert!((a - b).abs() <= 2e-6 * b, "{} vs {}", a, b); }
            }
        }
    }

    #[test]
    fn s6_neg_inf_entries_get_zero(row in prop::collection::vec(prop::option::weighted(0.7, -50f32..50.0), 1..100)) {
        let x: Vec<f32> = row.iter().map(|v| v.unwrap_or(f32::NEG_INFINITY)).collect();
        let mut p = vec![0f32; x.len()];
        softmax(&x, &mut p, 1.0).unwrap();
        if x.iter().all(|v| *v == f32::NEG_INFINITY) {
            prop_assert!(p.iter().all(|v| v.is_nan()));
        } else {
            let m = x.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            for (a, b) in x.iter().zip(&p) {
                // Finite entries get a positive probability unless it is below float32's
                // normal range (exp(-87) ~ 1.6e-38), where kernels may flush it to 0.
                if *a == f32::NEG_INFINITY { prop_assert_eq!(*b, 0.0); } else { prop_assert!(*b > 0.0 || *a - m < -80.0); }
            }
            prop_assert!((p.iter().map(|&v| v as f64).sum::<f64>() - 1.0).abs() <= 1e-6);
        }
    }

    #[test]
    fn s1_f16_is_one_rounding_of_f32(row in prop::collection::vec(-20f32..20.0, 1..64)) {
        let x16: Vec<half::f16> = row.iter().map(|&v| half::f16::from_f32(v)).collect();
        let x32: Vec<f32> = x16.iter().map(|v| v.to_f32()).collect();
        let mut p16 = vec![half::f16::ZERO; row.len()];
        let mut p32 = vec![0f32; row.len()];
        softmax(&x16, &mut p16, 1.0).unwrap();
        softmax(&x32, &mut p32, 1.0).unwrap();
        for (a, b) in p16.iter().zip(&p32) {
            prop_assert_eq!(*a, half::f16::from_f32(*b));
        }
    }
}

//! `top_n_sigma` (contract P21; Tang et al. 2024, llama.cpp's top-n-sigma): keeps the tokens
//! whose scaled logit is `>= max - n * sigma`, `sigma` the population standard deviation
//! (divided by `N`) of the scaled logits of the kept set. The largest is always kept.
//!
//! The scaled logits are `(x - m) / T`, whose deviation is that of the logits over `T`: the
//! statistics are taken over the logits as they are (no division per token), and the bound is
//! turned into the least logit that reaches it, so that the kept tokens are found by one
//! comparison each.

use super::kept::Ctx;
use super::{least_logit_passing, scaled_gap, Cut};
use crate::element::Real;
use crate::error::Result;
use crate::sampling::hot::{
    lane_count_sum_at_least, lane_extremes, lane_squared_deviations,
    lane_squared_deviations_at_least, lane_sum,
};
use crate::sampling::params::RowCfg;

pub(super) fn apply<C: Real>(ctx: &mut Ctx<'_, C>) -> Result<()> {
    if ctx.cfg.n_sigma <= 0.0 {
        return Ok(());
    }
    let xs = &ctx.set.xs;
    let (low, top) = lane_extremes(xs);
    let (count, sd) = if low == f64::NEG_INFINITY {
        // Top-k or top-p reaching past the finite logits lists -inf ones too: they have
        // probability 0 and are not part of the spread (their -inf would make it NaN, and
        // every token would be kept).
        let (count, sum) = lane_count_sum_at_least(xs, f64::MIN);
        let mean = sum / count as f64;
        let squares = lane_squared_deviations_at_least(xs, mean, f64::MIN);
        let finite = || xs.iter().map(|x| x.to_f64()).filter(|&x| x >= f64::MIN);
        (count, deviation(count, squares, finite))
    } else {
        let count = xs.len();
        let mean = lane_sum(xs) / count as f64;
        let squares = lane_squared_deviations(xs, mean);
        (
            count,
            deviation(count, squares, || xs.iter().map(|x| x.to_f64())),
        )
    };
    if count == 0 {
        return Ok(());
    }
    match least_kept(top, sd, ctx.m, &ctx.cfg) {
        Some(lowest) => ctx.retain_logits_at_least(lowest),
        None => Ok(()),
    }
}

/// The population standard deviation of `count` finite logits from `squares`, the Σ of their
/// squared deviations from their mean (or of whatever `values` returns: those logits, for when
/// that overflows).
fn deviation<I: Iterator<Item = f64>>(count: usize, squares: f64, values: impl Fn() -> I) -> f64 {
    if squares.is_finite() {
        return (squares / count as f64).sqrt();
    }
    // Deviations beyond about 1e154 (float64 logits) overflow the squares, and a sum of logits
    // near f64::MAX the mean: both are taken again over the logits scaled by 2^-600 (exact,
    // but for logits so small that they are nothing beside such a spread), the result scaled
    // back (to +inf only for a deviation beyond f64::MAX: every token kept).
    let (down, up) = (
        f64::from_bits((1023 - 600) << 52),
        f64::from_bits((1023 + 600) << 52),
    );
    let mean = values().map(|x| x * down).sum::<f64>() / count as f64;
    let squares = values()
        .map(|x| (x * down - mean) * (x * down - mean))
        .sum::<f64>();
    (squares / count as f64).sqrt() * up
}

/// The least logit top-n-sigma keeps of a set of logits whose greatest is `top`, `sd` their
/// population standard deviation; `None` when it keeps every token (an infinite spread, or a
/// NaN from one).
fn least_kept(top: f64, sd: f64, m: f64, cfg: &RowCfg) -> Option<f64> {
    let t = cfg.t;
    let sigma = sd / t;
    if sigma == f64::INFINITY && sd.is_finite() {
        // A tiny temperature overflows the scaled spread though the logits' is finite: the
        // same bound in logit units, `y - m >= (top - m) - n * sd` (T > 0 scales both sides).
        let thr = (top - m) - cfg.n_sigma * sd;
        if thr.is_nan() || thr == f64::NEG_INFINITY {
            return None;
        }
        return Some(least_logit_passing(m, |y| y - m >= thr));
    }
    let thr = scaled_gap(top, m, t) - cfg.n_sigma * sigma;
    if thr.is_nan() || thr == f64::NEG_INFINITY {
        return None;
    }
    Some(least_logit_passing(m, |y| scaled_gap(y, m, t) >= thr))
}

/// Top-n-sigma on a kept set before it is listed: the tokens of `xs` (a row, or candidates
/// holding the kept set) that `cut` keeps, `m` the greatest of them. The least logit it keeps
/// when that removes tokens (the kept set is then every token of `xs` at or above it), `None`
/// when it keeps them all. The statistics are masked passes over `xs`: on a flat row the kept
/// set is most of the row, and a list of it costs many times the passes.
pub(crate) fn least_kept_of_cut<C: Real>(xs: &[C], cut: Cut, m: f64, cfg: &RowCfg) -> Option<f64> {
    // The kept ties, all equal to the cut's value, are added apart from the masked passes. A
    // cut at -inf (top-k or top-p reaching past the finite logits) keeps every finite logit and
    // no -inf one: those have probability 0 and are not in the set whose spread is taken.
    let (floor, ties) = if cut.value == f64::NEG_INFINITY {
        (f64::MIN, 0)
    } else if cut.ties == usize::MAX {
        (cut.value, 0)
    } else {
        (cut.value.next_up(), cut.ties)
    };
    let (above, mut sum) = lane_count_sum_at_least(xs, floor);
    let count = above + ties;
    if count == 0 {
        return None;
    }
    if ties > 0 {
        sum += ties as f64 * cut.value;
    }
    let mean = sum / count as f64;
    let mut squares = lane_squared_deviations_at_least(xs, mean, floor);
    if ties > 0 {
        squares += ties as f64 * (cut.value - mean) * (cut.value - mean);
    }
    let kept = || {
        let above = xs.iter().map(|x| x.to_f64()).filter(move |&x| x >= floor);
        above.chain(std::iter::repeat_n(cut.value, ties))
    };
    let sd = deviation(count, squares, kept);
    least_kept(m, sd, m, cfg).filter(|&lowest| lowest > cut.value)
}

#[cfg(test)]
mod tests {
    use super::least_kept_of_cut;
    use crate::element::Real;
    use crate::sampling::select::Cut;
    use crate::sampling::test_units::units;
    use crate::SamplingParams;

    /// A cut at -inf (top-k or top-p reaching past the finite logits, with some -inf tokens
    /// kept as ties, or all of them) is the set of the finite logits.
    #[test]
    fn p21_a_cut_at_minus_inf_is_the_finite_logits() {
        let xs = [0.0f64, f64::NEG_INFINITY, f64::NEG_INFINITY, 5.0, 1.0];
        let cfg = SamplingParams::default().top_n_sigma(0.5).row(0, xs.len());
        for ties in [0, 1, 2, usize::MAX] {
            let cut = Cut {
                value: f64::NEG_INFINITY,
                ties,
            };
            // sigma of {0, 5, 1} is 2.16: the bound 5 - 1.08 keeps 5 alone.
            let lowest = least_kept_of_cut(&xs, cut, 5.0, &cfg).expect("a bound");
            assert!(lowest > 1.0 && lowest <= 5.0, "ties {ties}: {lowest}");
        }
    }

    /// Top-n-sigma on a kept set given as a cut of a larger set (masked passes, the ties added
    /// apart) keeps what it keeps on the set listed (plain `f64` sums over the kept tokens):
    /// continuous and gridded values (ties at the cut), cuts that keep every tie, some or
    /// none of them, `n` from small (few kept) to large (every token kept: `None`), `f32` and
    /// `f64`, lengths around the lanes.
    #[test]
    fn p21_sigma_of_a_cut_is_sigma_of_the_kept_list() {
        fn check<C: Real>(unit: &mut impl FnMut() -> f64) {
            for case in 0..600 {
                let n = [1, 7, 8, 9, 100, 1000, 5003][case % 7];
                let grid = case % 3 == 0;
                let xs: Vec<C> = (0..n)
                    .map(|_| {
                        let e = (unit() + unit() + unit()) * 4.0 - 6.0;
                        C::from_f64(if grid { (e * 4.0).round() / 4.0 } else { e })
                    })
                    .collect();
                let m = xs
                    .iter()
                    .map(|e| e.to_f64())
                    .fold(f64::NEG_INFINITY, f64::max);
                let value = xs[(unit() * n as f64) as usize].to_f64();
                let equal = xs.iter().filter(|e| e.to_f64() == value).count();
                let ties = match case % 4 {
                    0 => usize::MAX,
                    1 => equal,
                    _ => (unit() * (equal + 1) as f64) as usize,
                };
                let cut = Cut { value, ties };
                let mut left = ties;
                let kept: Vec<f64> = xs
                    .iter()
                    .map(|e| e.to_f64())
                    .filter(|&e| {
                        let tie = e == value && left > 0;
                        left -= usize::from(tie);
                        e > value || tie
                    })
                    .collect();
                if kept.is_empty() {
                    continue;
                }
                let n_sigma = [0.1, 0.7, 1.5, 40.0][case % 4];
                let t = [0.5, 1.0, 1.7][case % 3];
                let cfg = SamplingParams::default()
                    .temperature(t)
                    .top_n_sigma(n_sigma)
                    .row(0, n);
                let count = kept.len() as f64;
                let mean = kept.iter().sum::<f64>() / count;
                let sd =
                    (kept.iter().map(|e| (e - mean) * (e - mean)).sum::<f64>() / count).sqrt() / t;
                let top = kept.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let thr = (top - m) / t - n_sigma * sd;
                // Tokens within rounding of the bound may go either way.
                if kept.iter().any(|&e| ((e - m) / t - thr).abs() < 1e-9) {
                    continue;
                }
                let want: Vec<f64> = kept
                    .iter()
                    .cloned()
                    .filter(|&e| (e - m) / t >= thr)
                    .collect();
                let got: Vec<f64> = match least_kept_of_cut(&xs, cut, top, &cfg) {
                    Some(lowest) => {
                        assert!(lowest > value, "case {case}");
                        xs.iter()
                            .map(|e| e.to_f64())
                            .filter(|&e| e >= lowest)
                            .collect()
                    }
                    None => kept.clone(),
                };
                assert_eq!(got, want, "case {case} n {n} cut {cut:?}");
            }
        }
        let mut unit = units(0x9E37_79B9_7F4A_7C15);
        check::<f32>(&mut unit);
        check::<f64>(&mut unit);
    }

    /// Found by a review: float64 logits spread beyond about 1e154 overflowed the squared
    /// deviations, and top-n-sigma kept every token.
    #[test]
    fn p21_a_spread_beyond_1e154_does_not_overflow() {
        use crate::sampling::filter_logits;
        for scale in [1.0, 1e150, 1e155, 1e160, 1e200, 1e300, 5e307] {
            for (row, want) in [
                (vec![1.0, -1.0, 0.0], vec![0]),
                (vec![1.0, 0.9, -1.0, -0.8, 0.0], vec![0, 1]),
                (vec![3.0, 2.9, 2.95, -3.0], vec![0, 1, 2]),
            ] {
                let x: Vec<f64> = row.iter().map(|v| v * scale).collect();
                // The kept list's statistics (`apply`).
                let params = SamplingParams::default().top_n_sigma(1.0);
                let mut out = x.clone();
                filter_logits(&x, &params, &mut out).unwrap();
                let kept: Vec<usize> = (0..x.len())
                    .filter(|&i| out[i] > f64::NEG_INFINITY)
                    .collect();
                assert_eq!(kept, want, "scale {scale:e}, row {row:?}");
                // The masked passes over a cut that keeps every token.
                let least = x.iter().cloned().fold(f64::INFINITY, f64::min);
                let cut = Cut {
                    value: least,
                    ties: usize::MAX,
                };
                let cfg = params.row(0, x.len());
                let lowest = least_kept_of_cut(&x, cut, x[0], &cfg).expect("removes tokens");
                let kept: Vec<usize> = (0..x.len()).filter(|&i| x[i] >= lowest).collect();
                assert_eq!(kept, want, "scale {scale:e}, row {row:?}, masked");
            }
        }
        // A temperature so small that the scaled deviation overflows (found by a review):
        // the same tokens as at T = 1.
        for t in [5e-324, 1e-300] {
            for (row, want) in [
                (vec![1.0, 0.0, -1.0], vec![0]),
                (vec![1e9, 0.9e9, -1e9, -0.8e9, 0.0], vec![0, 1]),
            ] {
                let params = SamplingParams::default().top_n_sigma(1.0).temperature(t);
                let mut out = row.clone();
                filter_logits(&row, &params, &mut out).unwrap();
                let kept: Vec<usize> = (0..row.len())
                    .filter(|&i| out[i] > f64::NEG_INFINITY)
                    .collect();
                assert_eq!(kept, want, "T {t:e}, row {row:?}");
            }
        }
        // Logits at both ends of the range: a deviation of f64::MAX, and a bound below
        // -f64::MAX for n = 2.5 (every token kept).
        let x = [f64::MAX, -f64::MAX];
        for (n, want) in [(0.5, [true, false]), (2.5, [true, true])] {
            let mut out = x;
            let params = SamplingParams::default().top_n_sigma(n);
            filter_logits(&x, &params, &mut out).unwrap();
            assert_eq!(out.map(|v| v > f64::NEG_INFINITY), want, "n {n}: {out:?}");
        }
    }
}

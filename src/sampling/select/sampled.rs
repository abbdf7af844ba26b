//! The nucleus list's first candidates (P20-P23): a level just below the top-p cut, read off a
//! sample of the row's weights, so that one pass packs few more tokens than the cut keeps.
//! A guess: the caller checks that the packed tokens hold enough of the row's mass.

use super::logit_row::{LogitRow, RUN as SAMPLE_RUN};
use crate::element::Real;
use crate::error::Result;
use crate::sampling::hot::{count_at_least, lane_sum, level_masses, Packed, LEVELS};

/// The distance between sampled runs of [`SAMPLE_RUN`] tokens in a row of `v`: 256, or 512
/// from 65536 tokens on (still 128 runs or more; a vocabulary of 128256 is sampled in half
/// the time, and its levels hold the nucleus as well).
fn sample_every(v: usize) -> usize {
    if v >= 65_536 {
        2 * SHORT_ROW_SPACING
    } else {
        SHORT_ROW_SPACING
    }
}

/// The distance between sampled runs in rows of fewer than 65536 tokens.
const SHORT_ROW_SPACING: usize = 256;

/// Rows shorter than this are not sampled: 64 runs at the spacing of short rows.
const SAMPLED_ROWS: usize = 64 * SHORT_ROW_SPACING;

/// The estimated share of the tokens of row `x` at or above `thr`, from its sample in
/// `sample` as [`sampled_level`] left it; `None` for rows too short to sample.
pub(crate) fn share_at_least<C: Real, X: LogitRow<C> + ?Sized>(
    x: &X,
    sample: &Packed<C>,
    thr: C,
) -> Option<f64> {
    (x.len() >= SAMPLED_ROWS && !sample.xs.is_empty())
        .then(|| count_at_least(&sample.xs, thr.to_f64()) as f64 / sample.xs.len() as f64)
}

/// A scaled-logit gap `z < 0` such that the tokens with `x >= m + t z` very likely weigh all
/// but `allowed` of the row's weights `ws` (`x`'s at temperature `t`, maximum `m`), by a sample
/// of the row (runs of [`SAMPLE_RUN`] tokens every [`sample_every`], copied into `sample`): a
/// level qualifies when the sample, scaled up, puts under it at most four fifths of `allowed`,
/// and one token under it (scaled up as a sampled one is) at most a tenth. The highest of
/// eight levels from there down to `floor`, then of eight between it and the level above.
/// `None` for rows too short to sample, or when no level qualifies.
pub(crate) fn sampled_level<C: Real, X: LogitRow<C> + ?Sized>(
    x: &X,
    ws: &[C],
    m: f64,
    t: f64,
    floor: f64,
    allowed: f64,
    sample: &mut Packed<C>,
) -> Result<Option<f64>> {
    let v = x.len();
    if v < SAMPLED_ROWS {
        return Ok(None);
    }
    // Whole runs only (`v` is at least 64 of them), copied as arrays.
    let every = sample_every(v);
    let runs = (v - SAMPLE_RUN) / every + 1;
    let n = runs * SAMPLE_RUN;
    crate::scratch::resize(&mut sample.xs, n, C::default(), "the row's sample")?;
    crate::scratch::resize(&mut sample.ws, n, C::default(), "the row's sample")?;
    for (r, (xs, wr)) in sample
        .xs
        .chunks_exact_mut(SAMPLE_RUN)
        .zip(sample.ws.chunks_exact_mut(SAMPLE_RUN))
        .enumerate()
    {
        xs.copy_from_slice(&x.run(r * every));
        wr.copy_from_slice(&ws.run(r * every));
    }
    let scale = v as f64 / n as f64;
    let sampled = lane_sum(&sample.ws);
    let top = (0.1 * allowed / scale).ln().min(0.0);
    if top.is_nan() || top <= floor {
        return Ok(None);
    }
    let (mut hi, mut lo) = (top, floor);
    for round in 0..2 {
        // The first round's levels include the top one.
        let first = usize::from(round > 0);
        let gaps: [f64; LEVELS] = std::array::from_fn(|k| {
            hi + (lo - hi) * (k + first) as f64 / (LEVELS - 1 + first) as f64
        });
        let masses = level_masses(&sample.ws, &sample.xs, &gaps.map(|z| m + t * z));
        let Some(k) = masses
            .iter()
            .position(|&above| scale * (sampled - above) <= 0.8 * allowed)
        else {
            return Ok(None);
        };
        if k == 0 {
            return Ok(Some(gaps[0]));
        }
        (hi, lo) = (gaps[k - 1], gaps[k]);
    }
    Ok(Some(lo))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The guess is what makes the nucleus list fast: on vocabulary-sized rows (32000 and
    /// 128256 tokens), flat or peaked, a level qualifies, the tokens at or above it hold
    /// enough, and they are not many more than the cut keeps.
    #[test]
    fn p20_sampled_level_holds_the_nucleus_and_little_more() {
        let mut u = crate::sampling::test_units::units(0x9E37_79B9_7F4A_7C15);
        for case in 0..24 {
            // Both sample spacings: every 256 tokens (32000) and every 512 (128256).
            let v = [128_256, 32_000][case / 12];
            // Sums of 12 uniforms (about N(0, sd^2)), every other row with 40 tokens lifted.
            let sd = [1.0, 3.0, 5.0][case % 3];
            let x: Vec<f32> = (0..v)
                .map(|j| {
                    let z: f64 = (0..12).map(|_| u()).sum::<f64>() - 6.0;
                    let lift = if case % 2 == 1 && j % 3203 == 7 {
                        12.0
                    } else {
                        0.0
                    };
                    (z * sd + lift) as f32
                })
                .collect();
            for (t, p) in [(0.8, 0.95), (1.0, 0.9), (0.7, 0.99)] {
                let m = x.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
                let ws: Vec<f64> = x.iter().map(|&e| ((e as f64 - m) / t).exp()).collect();
                let total: f64 = ws.iter().sum();
                let enough = (p + 0.05 * (1.0 - p)) * total;
                let floor = (0.5 * (1.0 - p) * total / v as f64).ln();
                let mut order: Vec<usize> = (0..v).collect();
                order.sort_by(|&a, &b| x[b].total_cmp(&x[a]));
                let mut cum = 0.0;
                let nucleus = 1 + order
                    .iter()
                    .take_while(|&&j| {
                        cum += ws[j];
                        cum < p * total
                    })
                    .count();
                let ws32: Vec<f32> = ws.iter().map(|&w| w as f32).collect();
                let mut sample = Packed::default();
                let ctx = format!("case {case} sd {sd} t {t} p {p}");
                let z = sampled_level(&x[..], &ws32, m, t, floor, total - enough, &mut sample)
                    .unwrap()
                    .unwrap_or_else(|| panic!("no level: {ctx}"));
                let thr = m + t * z;
                let held: f64 = (0..v).filter(|&j| x[j] as f64 >= thr).map(|j| ws[j]).sum();
                let count = x.iter().filter(|&&e| e as f64 >= thr).count();
                assert!(held >= enough, "{ctx}: holds {held} < {enough}");
                if sd > 1.0 {
                    assert!(count <= 3 * nucleus + 64, "{ctx}: {count} for {nucleus}");
                }
            }
        }
    }
}

//! bfloat16 and float16 rows drawn from as they are (issue 22, item 5): a row with no
//! processing stage, greedy or whose filters are the temperature with top-p, min-p or both, or
//! a top-k small enough to be found from the row's chunk maxima (with top-p and min-p on its
//! list), is read in its 16-bit type, with no f32 copy of the row. No log-probability may be
//! asked for but under the kept set: the drawn token's, and its rank and alternatives when
//! they are few enough for the chunk-maxima selection ([`alternatives`]). The row:
//! - its maximum and weights come from the level's 16-bit kernels (the logits widened in
//!   registers), and top-p's rejection rounds compare the logits widened in registers;
//! - min-p alone counts the tokens at its threshold on the 16-bit logits, then masks the row
//!   a chunk at a time (widened as it is masked) or gathers the tokens that pass;
//! - top-k takes the chunk maxima from those kernels and widens only the chunks that can hold
//!   the top `k`, after which the f32 path's list code runs unchanged;
//! - a greedy row's token is the first at its maximum, compared in registers;
//! - under top-p's rejection draw, which finds no total for the log-probability, the kept set
//!   is listed as the f32 path lists it: candidates packed off the 16-bit logits, widened in
//!   registers ([`super::logit_row`]), the cut found among them.
//!
//! The weights, chunk sums, candidates and uniforms are those the f32 path takes from the row
//! widened to f32, so the token is the one it draws. Whatever this path does not take is left
//! to the f32 path: the other filters and stages, a larger top-k, a row the rounds give up on,
//! a kept set too large to list from packed candidates (the f32 path then cuts the row),
//! an unusable row (which the f32 path reports), the scalar level, or a temperature the 16-bit
//! kernels do not take. That path starts over from the row's first uniform and draws the same
//! token this one would have.

use super::nucleus::{rounds, Start};
use super::{
    changed, chunk_maxima_by, cut_zc, draw, draw_from_list, exp_weights_chunked_by, finish_list,
    masked_weights, min_p_masks_row, min_p_of_list, min_p_threshold, narrow_list, nucleus_list,
    scaled_gap, sum_over_blocks, top_k_in_chunks, wants_chunk_maxima, weight_total, Work, KCH, NB,
    Z_SPAN,
};
use crate::element::{Float, Real};
use crate::error::Result;
use crate::kernels::{kernels, HalfRows, BLOCK};
use crate::parallel::ranges_mapped;
use crate::sampling::hot::{
    compresses, count_at_least_half, first_eq_half, gather_at_least_half, mask_below_half,
    masked_lane_sum_half, Lanes16, Stored16,
};
use crate::sampling::logprobs::list_report;
use crate::sampling::params::RowCfg;
use crate::sampling::rng::RowRng;
use crate::sampling::{classify_row, max_of_blocks};
use crate::simd::simd_level;
use half::{bf16, f16};
use std::any::TypeId;

/// A 16-bit type this path reads: kernels that widen it in registers, and its value by bits.
trait InPlace: HalfRows + Stored16 + Lanes16 + Float<Compute = f32> {}
impl InPlace for bf16 {}
impl InPlace for f16 {}

/// Whether this path draws from a row of `v` tokens under `cfg`: greedy, or a temperature
/// with top-p, min-p or both (top-p's rejection rounds take min-p on), or a top-k small enough
/// to be found from the chunk maxima (top-p and min-p on its list); no stage of P20-P26.
fn takes(cfg: &RowCfg, v: usize) -> bool {
    if cfg.dyn_range != 0.0 || cfg.has_kept_stages() {
        false
    } else if cfg.is_greedy(v) {
        true
    } else if cfg.k < v {
        wants_chunk_maxima(cfg, v)
    } else {
        true
    }
}

/// Whether rows of `T` may take this path (they are bfloat16 or float16).
pub(crate) fn stored_as_16_bits<T: Float>() -> bool {
    TypeId::of::<T>() == TypeId::of::<bf16>() || TypeId::of::<T>() == TypeId::of::<f16>()
}

/// The row as `H`, when `T` is `H`.
pub(crate) fn as_stored<T: Float, H: Float>(row: &[T]) -> Option<&[H]> {
    (TypeId::of::<T>() == TypeId::of::<H>()).then(|| {
        // SAFETY: `T` is `H`.
        unsafe { std::slice::from_raw_parts(row.as_ptr().cast::<H>(), row.len()) }
    })
}

/// The scratch as `Work<f32>`, when `C` is `f32`.
fn as_f32_work<C: Real>(w: &mut Work<C>) -> Option<&mut Work<f32>> {
    (TypeId::of::<C>() == TypeId::of::<f32>()).then(|| {
        // SAFETY: `C` is `f32`, so `Work<C>` is `Work<f32>`.
        unsafe { &mut *(w as *mut Work<C>).cast::<Work<f32>>() }
    })
}

/// The token of `row` under `cfg` with the uniforms of `rng`, and with `logprob` its
/// log-probability under the kept set (as `sample_row` gives it; NaN without), when the row is
/// bfloat16 or float16 and this path takes it (see the module's documentation); `None` leaves
/// the row to the f32 path, which draws the same token from a fresh stream.
pub(crate) fn try_draw<T: Float, C: Real>(
    row: &[T],
    cfg: RowCfg,
    rng: &mut RowRng,
    logprob: bool,
    w: &mut Work<C>,
) -> Result<Option<Drawn>> {
    let Some(w) = as_f32_work(w) else {
        return Ok(None);
    };
    let drawn = if let Some(x) = as_stored::<T, bf16>(row) {
        draw_stored(x, cfg, rng, logprob, w)?
    } else if let Some(x) = as_stored::<T, f16>(row) {
        draw_stored(x, cfg, rng, logprob, w)?
    } else {
        None
    };
    Ok(drawn.map(|d| Drawn {
        logprob: if logprob { d.logprob } else { f64::NAN },
        ..d
    }))
}

/// A row's token, its log-probability under the kept set, and what the report's alternatives
/// need of the draw.
pub(crate) struct Drawn {
    pub(crate) tok: usize,
    pub(crate) logprob: f64,
    /// The row's maximum.
    m: f32,
    kept: KeptSet,
}

/// Where the kept set of a row drawn here is (it is a prefix of the order: logit descending,
/// id ascending).
#[derive(Debug, Clone, Copy, PartialEq)]
enum KeptSet {
    /// The drawn token alone (greedy).
    One,
    /// The first `n` tokens of the row's order; `n` is large (every token, or min-p's many).
    Row(usize),
    /// The list in `Work::cur`.
    List,
    /// Not listed: top-p's rejection draw without a log-probability.
    Unlisted,
}

impl Drawn {
    /// Token `tok` of `x` (maximum `m`) drawn from a kept set of weight `total` at
    /// temperature `t`: its log-probability as `sample_row` computes it.
    fn from_set<H: InPlace>(
        x: &[H],
        tok: usize,
        m: f32,
        t: f64,
        total: f64,
        kept: KeptSet,
    ) -> Drawn {
        let gap = scaled_gap(f64::from(x[tok].value()), f64::from(m), t);
        Drawn {
            tok,
            logprob: gap - total.ln(),
            m,
            kept,
        }
    }
}

/// Whether the `n` most probable alternatives of a row of `v` tokens drawn here can be found
/// as the f32 path finds them from its row (the top-k selection from chunk maxima, which the
/// f32 path uses for this `n` too).
pub(crate) fn lists_alternatives(n: usize, v: usize) -> bool {
    n.saturating_mul(4) <= v.div_ceil(KCH)
}

/// The rank of the token `d` drew from `row` and the `n` most probable tokens with their
/// log-probabilities under the kept set at temperature `t` (`cfg.t`, or 1 when greedy), as
/// the f32 path's report gives them from the row widened (`lists_alternatives(n, len)`, the
/// row bfloat16 or float16 and drawn by [`try_draw`] with a log-probability, `w` as it left
/// it).
pub(crate) fn alternatives<T: Float, C: Real>(
    row: &[T],
    d: &Drawn,
    t: f64,
    n: usize,
    w: &mut Work<C>,
) -> Result<(i64, Vec<(i64, f64)>)> {
    let w = as_f32_work(w).expect("drawn by try_draw, whose rows are f32 work");
    if let Some(x) = as_stored::<T, bf16>(row) {
        alternatives_of(x, d, t, n, w)
    } else {
        let x = as_stored::<T, f16>(row).expect("drawn by try_draw, from 16 bits");
        alternatives_of(x, d, t, n, w)
    }
}

/// [`alternatives`] of a row of `H`: the rank counts the row's tokens at least as probable
/// (at most the kept set's size); the alternatives are the kept set's first `n` in the order
/// (the list's first `n`, or the row's top `n` from its chunk maxima), then removed tokens by
/// id.
fn alternatives_of<H: InPlace>(
    x: &[H],
    d: &Drawn,
    t: f64,
    n: usize,
    w: &mut Work<f32>,
) -> Result<(i64, Vec<(i64, f64)>)> {
    let v = x.len();
    let (m, xt) = (f64::from(d.m), f64::from(x[d.tok].value()));
    let ln_total = scaled_gap(xt, m, t) - d.logprob;
    let kept = match d.kept {
        KeptSet::One => 1,
        KeptSet::Row(count) => count,
        KeptSet::List => w.cur.idx.len(),
        KeptSet::Unlisted => unreachable!("drawn with a log-probability, so listed"),
    };
    let first = n.min(v).min(kept);
    let greedy = [d.tok];
    let mut at_max = [0];
    let logit = |j: usize| f64::from(x[j].value());
    let logprob = |_, j| scaled_gap(logit(j), m, t) - ln_total;
    let (ids, rank): (&[usize], _) = match d.kept {
        KeptSet::One => (&greedy, None),
        // A prefix of the order holding the drawn token: the row's tokens at least as probable
        // as it, capped at the kept set's size, are the kept set's own.
        KeptSet::List => (&w.cur.idx, None),
        KeptSet::Row(_) | KeptSet::Unlisted => {
            let count = sum_over_blocks(v, w.par, |r| count_at_least_half::<f32, H>(&x[r], xt));
            let ids = if first == 1 {
                at_max[0] = first_eq_half::<f32, H>(x, d.m).ok_or_else(changed)?;
                &at_max[..]
            } else {
                let k = H::kernels_for(simd_level()).expect("drawn by try_draw, which has them");
                chunk_maxima_by(x, &mut w.cmax, w.par, k.chunk_maxima)?;
                top_k_in_chunks(x, first, m, NB as f64 / Z_SPAN, w)?;
                &w.cur.idx
            };
            (ids, Some(count.min(kept)))
        }
    };
    let (rank, top) = list_report(ids, logit, xt, rank, v, n, logprob)?;
    Ok((rank, top))
}

/// [`try_draw`] of a row of `H`.
fn draw_stored<H: InPlace>(
    x: &[H],
    cfg: RowCfg,
    rng: &mut RowRng,
    logprob: bool,
    w: &mut Work<f32>,
) -> Result<Option<Drawn>> {
    let Some(k) = H::kernels_for(simd_level()) else {
        return Ok(None);
    };
    let greedy = cfg.is_greedy(x.len());
    if !takes(&cfg, x.len()) || !(greedy || (k.takes)(cfg.t)) {
        return Ok(None);
    }
    if cfg.k < x.len() && !greedy {
        return top_k(x, k.chunk_maxima, cfg, rng, w);
    }
    // Top-p's rejection draw finds no total for the log-probability: the kept set is listed
    // for it from packed candidates, which need the vector path (else the f32 path lists it).
    if logprob && !greedy && cfg.p < 1.0 && !compresses::<f32>(x.len()) {
        return Ok(None);
    }
    let par = w.par && x.len() > BLOCK;
    let blocks = ranges_mapped(x.len(), BLOCK, par, |_, r| (k.max)(&x[r]));
    let Ok(m) = max_of_blocks(&blocks) else {
        return Ok(None);
    };
    if greedy {
        // The first token at the maximum, as `select` finds it; its kept set is itself.
        let tok = first_eq_half::<f32, H>(x, m);
        return Ok(tok.map(|tok| Drawn {
            tok,
            logprob: 0.0,
            m,
            kept: KeptSet::One,
        }));
    }
    if cfg.p >= 1.0 && cfg.mp > 0.0 {
        return min_p(x, m, cfg, rng, w).map(Some);
    }
    let mut ws = std::mem::take(&mut w.row_ws);
    let mut chunks = std::mem::take(&mut w.chunks);
    let drawn = (|| {
        // The f32 path's weights and chunk sums, from the 16-bit kernels.
        let kernel = k.exp_store_chunk_sums;
        // SAFETY: `k` is the table of this CPU's level (`kernels_for` gives no other).
        let total =
            unsafe { exp_weights_chunked_by(x, m, cfg.t, &mut ws, &mut chunks, w.par, kernel) }?;
        if cfg.p >= 1.0 {
            let tok = draw(&ws, &chunks, total, rng.uniform());
            let kept = KeptSet::Row(x.len());
            return Ok(tok.map(|tok| Drawn::from_set(x, tok, m, cfg.t, total, kept)));
        }
        // As `nucleus::draw`: with min-p, the first prefix is its tokens.
        let masked = masked_lane_sum_half::<f32, H>;
        let start = Start::first(
            x,
            &ws,
            &mut chunks,
            f64::from(m),
            &cfg,
            total,
            w.par,
            masked,
        )?;
        let found = rounds(x, &ws, &mut chunks, cfg.p, start, rng, w.par, masked)?;
        match found.tok {
            Some(tok) if logprob => listed_logprob(x, m, cfg, &ws, &mut chunks, total, tok, w),
            tok => Ok(tok.map(|tok| Drawn {
                tok,
                logprob: f64::NAN,
                m,
                kept: KeptSet::Unlisted,
            })),
        }
    })();
    w.row_ws = ws;
    w.chunks = chunks;
    drawn
}

/// Token `tok`, drawn by top-p's rejection rounds from row `x` (maximum `m`, weights `ws`
/// summing to `total`), with its log-probability under the kept set as `sample_row` computes
/// it: the nucleus listed from candidates packed off the 16-bit row ([`nucleus_list`]), min-p
/// applied to the list, and the list's total weight (`chunks`: scratch). `None` when the
/// candidates are too many to pack: the f32 path then lists them.
#[allow(clippy::too_many_arguments)]
fn listed_logprob<H: InPlace>(
    x: &[H],
    m: f32,
    cfg: RowCfg,
    ws: &[f32],
    chunks: &mut Vec<f64>,
    total: f64,
    tok: usize,
    w: &mut Work<f32>,
) -> Result<Option<Drawn>> {
    // No stage is on here (see `takes`): the list is top-p's alone.
    let (mut cfg, zc) = (cfg, cut_zc(cfg.t));
    if !nucleus_list(x, m, &mut cfg, zc, ws, total, false, w)? {
        return Ok(None);
    }
    if cfg.mp > 0.0 {
        min_p_of_list(min_p_threshold(f64::from(m), cfg.t, cfg.mp), true, w)?;
    }
    let kept = weight_total(&w.cur.ws, chunks, w.par)?;
    Ok(Some(Drawn::from_set(x, tok, m, cfg.t, kept, KeptSet::List)))
}

/// [`try_draw`] under min-p alone, as `select` does it over the row widened: the tokens at or
/// above min-p's threshold counted; when many pass, the row's weights with the others' exactly
/// 0 (masked and exponentiated a chunk at a time, the chunk widened as it is masked), else the
/// list of those that pass and their weights; then one uniform draws from them.
fn min_p<H: InPlace>(
    x: &[H],
    m: f32,
    cfg: RowCfg,
    rng: &mut RowRng,
    w: &mut Work<f32>,
) -> Result<Drawn> {
    let v = x.len();
    let thr = min_p_threshold(f64::from(m), cfg.t, cfg.mp);
    let count: usize = sum_over_blocks(v, w.par, |r| count_at_least_half::<f32, H>(&x[r], thr));
    if min_p_masks_row(count, v) {
        let mut ws = std::mem::take(&mut w.row_ws);
        let total = masked_weights(v, m, cfg.t, &mut ws, &mut w.chunks, w.par, |at, d| {
            mask_below_half::<f32, H>(&x[at..][..d.len()], thr, d)
        });
        w.row_ws = ws;
        let total = total?;
        let tok = draw(&w.row_ws, &w.chunks, total, rng.uniform()).ok_or_else(changed)?;
        return Ok(Drawn::from_set(
            x,
            tok,
            m,
            cfg.t,
            total,
            KeptSet::Row(count),
        ));
    }
    w.cur.clear();
    w.cur.reserve(count + 1, false)?;
    gather_at_least_half::<f32, H>(x, thr, count, &mut w.cur.idx, &mut w.cur.xs);
    finish_list(m, cfg.t, w, true, false)?;
    let (tok, total) = draw_from_list(w, rng.uniform())?;
    let tok = tok.ok_or_else(changed)?;
    Ok(Drawn::from_set(x, tok, m, cfg.t, total, KeptSet::List))
}

/// [`try_draw`] under a small top-k: as the f32 path, the row's maximum from its chunk
/// maxima (`chunk_maxima`, a kernel table's), the candidates from the chunks that can hold the top `k`
/// (widened a chunk at a time), then the list's top-p, min-p and draw.
fn top_k<H: InPlace>(
    x: &[H],
    chunk_maxima: fn(&[H], usize, &mut [f32]) -> bool,
    cfg: RowCfg,
    rng: &mut RowRng,
    w: &mut Work<f32>,
) -> Result<Option<Drawn>> {
    let nan = chunk_maxima_by(x, &mut w.cmax, w.par, chunk_maxima)?;
    let m = (kernels::<f32>().max)(&w.cmax).0;
    if classify_row(m, nan).is_err() {
        return Ok(None);
    }
    let zc = cut_zc(cfg.t);
    top_k_in_chunks(x, cfg.k, f64::from(m), zc, w)?;
    narrow_list(m, cfg, zc, w, true)?;
    let (tok, total) = draw_from_list(w, rng.uniform())?;
    Ok(tok.map(|tok| Drawn::from_set(x, tok, m, cfg.t, total, KeptSet::List)))
}

#[cfg(test)]
mod tests {
    use super::super::exp_weights_chunked;
    use super::*;
    use crate::sampling::rng::Streams;
    use crate::simd::SimdLevel;
    use crate::{sample_rows, SamplingParams, Seed};

    /// 16-bit rows: flat (every token tied), on a coarse grid (many ties), spread, peaked,
    /// with two spikes, and with signed zeros at the maximum, some with `-inf`; lengths around
    /// the chunk and block sizes.
    fn rows<H: InPlace>() -> Vec<(String, Vec<H>)> {
        let mut s = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut out = Vec::new();
        for v in [2, 7, 1000, 1024, 1025, 3 * BLOCK + 5] {
            let u: Vec<f64> = (0..v).map(|_| next()).collect();
            for name in ["flat", "grid", "spread", "peaked", "spiked", "zeros"] {
                let value = |i: usize| match name {
                    "flat" => 1.5,
                    // The maximum as -0.0 and +0.0, which compare equal.
                    "zeros" => [-0.0, 0.0, -1.0][i % 3],
                    "grid" => (u[i] * 8.0).floor() * 0.5,
                    "spread" if i % 11 == 5 => f64::NEG_INFINITY,
                    "spread" => 6.0 * u[i] - 3.0,
                    "peaked" if i % 97 == 3 => 9.0,
                    // Two tokens far above the rest: min-p and top-p cut top-k's list.
                    "spiked" if i == 1 => 9.0,
                    "spiked" if i == v / 2 => 8.0,
                    _ => 4.0 * u[i],
                };
                let row: Vec<H> = (0..v).map(|i| H::from_compute(value(i) as f32)).collect();
                out.push((format!("{name} {v}"), row));
            }
        }
        out
    }

    /// A bfloat16 or float16 row drawn from as it is gives the token the f32 path gives on its
    /// values, seed by seed, with the same weights and chunk sums, at top-p 1 and below (the
    /// rejection rounds compare 16-bit logits, ties included); rows this path leaves to the f32
    /// path get that token too. At the vector levels it takes most rows; at the scalar level
    /// none.
    #[test]
    fn half_rows_draw_the_tokens_of_their_f32_values() {
        draw_the_tokens_of_their_f32_values::<bf16>();
        draw_the_tokens_of_their_f32_values::<f16>();
    }

    fn draw_the_tokens_of_their_f32_values<H: InPlace>() {
        let vector = simd_level() != SimdLevel::Scalar;
        let (mut taken, mut left) = (0, 0);
        // Listed rows (top-p with a log-probability) taken: those whose candidates `select`
        // packs over the row widened (its kept set is then a list).
        let mut taken_listed = 0;
        for (name, xb) in rows::<H>() {
            let x32: Vec<f32> = xb.iter().map(|e| e.to_compute()).collect();
            let v = xb.len();
            // Under valgrind or qemu, the long rows with two seeds: one each way of `par` and of
            // the log-probability.
            let seeds = match (v > BLOCK, crate::emulated()) {
                (true, true) => 2,
                (true, false) => 6,
                (false, _) => 24,
            };
            for (t, p, mp, k) in [
                (1.0, 1.0, 0.0, 0),
                (0.8, 0.95, 0.0, 0),
                (1.3, 0.5, 0.0, 0),
                (0.7, 0.05, 0.0, 0),
                (0.8, 0.95, 0.05, 0),
                (1.0, 0.9, 0.3, 0),
                // Only the tokens tied at the maximum pass (all of a flat row).
                (0.9, 0.5, 1.0, 0),
                // Top-k from the chunk maxima (rows of 1000 tokens and more), with and
                // without top-p and min-p on its list.
                (0.8, 0.95, 0.05, 40),
                (1.0, 1.0, 0.0, 3),
                (1.2, 0.6, 0.0, 50),
                (1.0, 1.0, 0.5, 4),
                // Min-p alone: many tokens pass (the row's weights, masked) or few (a list).
                (1.0, 1.0, 0.05, 0),
                (0.8, 1.0, 0.3, 0),
                (0.7, 1.0, 0.9, 0),
                (1.1, 1.0, 1.0, 0),
                // Greedy: temperature 0 (ties at the maximum: the first), top-k 1.
                (0.0, 1.0, 0.0, 0),
                (0.9, 0.8, 0.0, 1),
            ] {
                let params = crate::sampling::test_units::filters(t, p, mp, k);
                let cfg = params.row(0, v);
                for s in 0..seeds {
                    let seed = Seed::Fixed(s);
                    let (mut want, mut got_b) = ([0i64], [0i64]);
                    let (mut want_lp, mut got_lp) = ([0f64], [0f64]);
                    sample_rows(&x32, v, &params, &seed, &mut want, Some(&mut want_lp)).unwrap();
                    sample_rows(&xb, v, &params, &seed, &mut got_b, Some(&mut got_lp)).unwrap();
                    assert_eq!(got_b, want, "{name} T {t} p {p} mp {mp} k {k} seed {s}");
                    assert_eq!(got_lp[0].to_bits(), want_lp[0].to_bits(), "{name} seed {s}");
                    let mut w = Work::<f32> {
                        par: s % 2 == 1,
                        ..Default::default()
                    };
                    let mut rng = Streams::for_sample(&seed).row(0);
                    // Rows this path does not take are left (with a log-probability, those
                    // top-p's rejection draws when there is no vector path to pack their
                    // candidates); of those it takes, only the ones whose rounds give up or
                    // whose candidates are too many to pack.
                    let logprob = s % 3 != 1;
                    let rejection = !cfg.is_greedy(v) && cfg.k >= v && cfg.p < 1.0;
                    let listed = logprob && rejection;
                    let eligible = takes(&cfg, v) && (!listed || compresses::<f32>(v));
                    let drawn = try_draw(&xb, cfg, &mut rng, logprob, &mut w).unwrap();
                    let bits = |a: &[f32]| a.iter().map(|e| e.to_bits()).collect::<Vec<_>>();
                    let m = x32.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    let mut w32 = Work::<f32>::default();
                    let packs = listed
                        && eligible
                        && super::super::select(&x32, m, &mut { cfg }, &mut w32, true, None)
                            .unwrap()
                            == super::super::Kept::List;
                    let Some(Drawn {
                        tok: j,
                        logprob: lp,
                        ..
                    }) = drawn
                    else {
                        left += usize::from(eligible && (!listed || packs));
                        continue;
                    };
                    assert!(eligible, "{name} T {t} p {p} mp {mp} k {k}");
                    if listed {
                        // Top-p's kept set, listed for the log-probability (min-p on the list),
                        // is `select`'s over the row widened, bit for bit.
                        assert!(packs, "{name} T {t} p {p} mp {mp}: listed, f32 did not");
                        assert_eq!(w.cur.idx, w32.cur.idx, "{name} T {t} p {p} mp {mp}");
                        assert_eq!(bits(&w.cur.xs), bits(&w32.cur.xs), "{name} p {p}");
                        assert_eq!(bits(&w.cur.ws), bits(&w32.cur.ws), "{name} p {p}");
                        taken_listed += 1;
                    }
                    taken += 1;
                    assert_eq!(
                        j as i64, want[0],
                        "{name} T {t} p {p} mp {mp} k {k} seed {s}"
                    );
                    // The log-probability is the f32 path's, bit for bit; NaN when not asked.
                    if logprob {
                        assert_eq!(lp.to_bits(), want_lp[0].to_bits(), "{name} T {t} k {k}");
                    } else {
                        assert!(lp.is_nan());
                    }
                    let cb = |a: &[f64]| a.iter().map(|e| e.to_bits()).collect::<Vec<_>>();
                    if s == 0 && k == 0 && t > 0.0 && p >= 1.0 && mp > 0.0 {
                        // Min-p alone: the kept set and its weights are `select`'s over the
                        // row widened, bit for bit.
                        let m = x32.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                        let mut w32 = Work::<f32>::default();
                        match super::super::select(&x32, m, &mut { cfg }, &mut w32, true, None)
                            .unwrap()
                        {
                            super::super::Kept::Row(None) => {
                                assert_eq!(bits(&w.row_ws), bits(&w32.row_ws), "{name} mp {mp}");
                                assert_eq!(cb(&w.chunks), cb(&w32.chunks), "{name} mp {mp}");
                            }
                            super::super::Kept::List => {
                                assert_eq!(w.cur.idx, w32.cur.idx, "{name} mp {mp}");
                                assert_eq!(bits(&w.cur.xs), bits(&w32.cur.xs), "{name} mp {mp}");
                                assert_eq!(bits(&w.cur.ws), bits(&w32.cur.ws), "{name} mp {mp}");
                            }
                            other => panic!("{name} mp {mp}: {other:?}"),
                        }
                    } else if s == 0 && k == 0 && t > 0.0 {
                        // The weights and chunk sums are the f32 path's, bit for bit.
                        let m = x32.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                        let (mut ws, mut chunks) = (Vec::new(), Vec::new());
                        exp_weights_chunked(&x32, m, cfg.t, &mut ws, &mut chunks, false).unwrap();
                        assert_eq!(bits(&w.row_ws), bits(&ws), "{name} T {t}");
                        if p >= 1.0 && mp == 0.0 && k == 0 {
                            assert_eq!(cb(&w.chunks), cb(&chunks), "{name} T {t}");
                        }
                    }
                }
            }
        }
        if vector {
            assert!(taken > 10 * left, "taken {taken}, left {left}");
        } else {
            assert_eq!(taken + taken_listed, 0);
        }
        if compresses::<f32>(1 << 20) {
            assert!(taken_listed > 100, "listed: taken {taken_listed}");
        }
    }

    /// What this path does not take: rows of f32, other filters, stages, a temperature of 0.
    #[test]
    fn half_rows_leave_other_rows_to_the_f32_path() {
        leave_other_rows_to_the_f32_path::<bf16>();
        leave_other_rows_to_the_f32_path::<f16>();
    }

    fn leave_other_rows_to_the_f32_path<H: InPlace>() {
        let xb: Vec<H> = (0..300)
            .map(|i| H::from_compute((i % 17) as f32 * 0.25))
            .collect();
        let x32: Vec<f32> = xb.iter().map(|e| e.to_compute()).collect();
        let v = xb.len();
        let base = SamplingParams::default().temperature(0.9);
        let mut rng = Streams::for_sample(&Seed::Fixed(1)).row(0);
        let mut w = Work::<f32>::default();
        let cfg = base.row(0, v);
        assert!(try_draw(&x32, cfg, &mut rng, false, &mut w)
            .unwrap()
            .is_none());
        for params in [
            // Too large a top-k for the chunk maxima: the f32 path's cut over the row.
            base.clone().top_k(100),
            base.clone().top_p(0.9).epsilon_cutoff(1e-3),
            base.clone().typical_p(0.9),
            base.clone().dynatemp_range(0.5),
            // Greedy with a stage of P20-P26.
            base.clone().temperature(0.0).typical_p(0.9),
            base.clone().top_k(1).dynatemp_range(0.5),
        ] {
            let cfg = params.row(0, v);
            let got = try_draw(&xb, cfg, &mut rng, false, &mut w).unwrap();
            assert!(got.is_none(), "{params:?}");
        }
        // With a log-probability, top-p's rejection draw is left to the f32 path too (at
        // the scalar level, which has no direct path, every row is).
        let vector = simd_level() != SimdLevel::Scalar;
        for params in [base.clone().top_p(0.9), base.clone().top_p(0.9).min_p(0.1)] {
            let cfg = params.row(0, v);
            let plain = try_draw(&xb, cfg, &mut rng, false, &mut w).unwrap();
            assert_eq!(plain.is_some(), vector, "{params:?}");
            let got = try_draw(&xb, cfg, &mut rng, true, &mut w).unwrap();
            assert!(got.is_none(), "{params:?}");
        }
    }
}

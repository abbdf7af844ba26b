//! Fuzzing the strided-lanes API (the layer the NumPy bindings call) against a plain reference.
//!
//! `cargo test` runs a few hundred cases; `make fuzz` runs many more in release mode
//! (`PROPTEST_CASES=...`). Layouts: 1-3 dimensions, any axis, reversed and stepped strides,
//! in place or into a separate buffer; values include -inf, +inf, NaN and huge magnitudes.

use logitkit::lanes::{logsumexp_lanes, map_lanes, map_lanes_in_place};
use logitkit::{Lanes, Op, StridedView, StridedViewMut};
use proptest::prelude::*;

/// A strided view into a buffer: shape, element strides and the offset of element 0.
#[derive(Debug, Clone)]
struct View {
    shape: Vec<usize>,
    strides: Vec<isize>,
    origin: usize,
    buf_len: usize,
}

impl View {
    fn index(&self, idx: &[usize]) -> usize {
        (self.origin as isize
            + idx
                .iter()
                .zip(&self.strides)
                .map(|(&i, &s)| i as isize * s)
                .sum::<isize>()) as usize
    }
}

/// A C-order layout of `shape` padded by `step` per dimension, with some dimensions reversed
/// and the dimension order permuted.
fn view_strategy() -> impl Strategy<Value = View> {
    (
        prop::collection::vec(0usize..6, 1..=3),
        prop::collection::vec(1usize..3, 3),
        prop::collection::vec(any::<bool>(), 3),
        any::<bool>(),
    )
        .prop_map(|(shape, steps, rev, transpose)| {
            let mut order: Vec<usize> = (0..shape.len()).collect();
            if transpose {
                order.reverse();
            }
            layout(&shape, &order, &steps, &rev)
        })
}

/// C order over the dimensions of `shape` taken in `order` (the last innermost), each padded
/// by its step, those marked in `rev` reversed.
fn layout(shape: &[usize], order: &[usize], steps: &[usize], rev: &[bool]) -> View {
    let nd = shape.len();
    let mut strides = vec![0isize; nd];
    let mut span = 1isize;
    for &d in order.iter().rev() {
        strides[d] = span * steps[d] as isize;
        span = strides[d] * shape[d].max(1) as isize;
    }
    let mut origin = 0isize;
    for d in 0..nd {
        if rev[d] && shape[d] > 0 {
            origin += (shape[d] as isize - 1) * strides[d];
            strides[d] = -strides[d];
        }
    }
    View {
        shape: shape.to_vec(),
        strides,
        origin: origin as usize,
        buf_len: span.max(1) as usize,
    }
}

/// Another layout of `shape`: [`layout`] with the dimensions permuted by `perm` (a
/// permutation index).
fn other_layout(shape: &[usize], perm: usize, steps: &[usize], rev: &[bool]) -> View {
    let nd = shape.len();
    let mut dims: Vec<usize> = (0..nd).collect();
    let mut order = Vec::with_capacity(nd);
    let mut k = perm;
    while !dims.is_empty() {
        order.push(dims.remove(k % dims.len()));
        k /= nd;
    }
    layout(shape, &order, steps, rev)
}

/// Each lane of `view` (along `axis`) computed alone as a contiguous row: the bits every
/// layout must give (S9).
fn contiguous_lanes(buf: &[f32], view: &View, axis: usize, op: Op, temps: &[f64]) -> Vec<Vec<f32>> {
    let mut outer_shape = view.shape.clone();
    outer_shape[axis] = 1;
    all_indices(&outer_shape)
        .into_iter()
        .enumerate()
        .map(|(k, idx)| {
            let lane: Vec<f32> = (0..view.shape[axis])
                .map(|j| {
                    let mut i = idx.clone();
                    i[axis] = j;
                    buf[view.index(&i)]
                })
                .collect();
            let mut out = vec![0f32; lane.len()];
            let rows = Lanes::rows(1, lane.len());
            let src = StridedView::new(&lane, 0, rows.clone()).unwrap();
            let mut dst = StridedViewMut::new(&mut out, 0, rows).unwrap();
            map_lanes(op, &src, &mut dst, temps[k].into()).unwrap();
            out
        })
        .collect()
}

/// Softmax along `axis` of `src` (a view into `buf`) into a buffer laid out as `dst`, per-lane
/// temperatures `temps`, checked bit for bit against [`contiguous_lanes`].
fn check_other_out_layout(
    buf: &[f32],
    src: &View,
    dst: &View,
    axis: usize,
    op: Op,
    temps: &[f64],
) -> Result<(), TestCaseError> {
    let src_lanes = Lanes::from_strided(&src.shape, &src.strides, axis);
    let dst_lanes = Lanes::from_strided(&dst.shape, &dst.strides, axis);
    let mut out = vec![f32::NAN; dst.buf_len];
    let sv = StridedView::new(buf, src.origin, src_lanes).unwrap();
    let mut dv = StridedViewMut::new(&mut out, dst.origin, dst_lanes).unwrap();
    map_lanes(op, &sv, &mut dv, logitkit::Temperature::PerRow(temps)).unwrap();
    let want = contiguous_lanes(buf, src, axis, op, temps);
    let mut outer_shape = src.shape.clone();
    outer_shape[axis] = 1;
    for (idx, lane) in all_indices(&outer_shape).into_iter().zip(&want) {
        for (j, w) in lane.iter().enumerate() {
            let mut i = idx.clone();
            i[axis] = j;
            let got = out[dst.index(&i)];
            prop_assert!(
                got.to_bits() == w.to_bits(),
                "lane {:?} element {}: {} against {} (src {:?}, dst {:?}, axis {})",
                idx,
                j,
                got,
                w,
                src,
                dst,
                axis
            );
        }
    }
    Ok(())
}

fn value_strategy() -> impl Strategy<Value = f64> {
    prop_oneof![
        20 => -30.0f64..30.0,
        2 => Just(f64::NEG_INFINITY),
        1 => Just(f64::INFINITY),
        1 => Just(f64::NAN),
        1 => prop::sample::select(vec![1e300, -1e300, 1.7e308, -1.7e308, 0.0, -0.0]),
    ]
}

fn reference(lane: &[f64], t: f64, log: bool) -> Vec<f64> {
    let m = lane.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    if lane.iter().any(|v| v.is_nan()) || m == f64::INFINITY || m == f64::NEG_INFINITY {
        return vec![f64::NAN; lane.len()];
    }
    let z: Vec<f64> = lane
        .iter()
        .map(|&v| {
            let d = v - m;
            if d == f64::NEG_INFINITY && v != f64::NEG_INFINITY {
                v / t - m / t
            } else {
                d / t
            }
        })
        .collect();
    let s: f64 = z.iter().map(|v| v.exp()).sum();
    z.iter()
        .map(|v| if log { v - s.ln() } else { v.exp() / s })
        .collect()
}

fn close(got: f64, want: f64, log: bool) -> bool {
    if want.is_nan() {
        return got.is_nan();
    }
    if log {
        // S5: `-inf` where the probability underflows to 0 (there `x - max` may overflow while
        // `(x - max) / t` would not, e.g. [-1.7e308, 1.7e308] at t = 3).
        let underflows = want.exp() == 0.0;
        return (got == want)
            || (got - want).abs() <= 1e-12 * want.abs().max(1.0)
            || (underflows && got == f64::NEG_INFINITY);
    }
    (got - want).abs() <= 1e-12 * want.max(1e-300) || (want < 1e-290 && got < 1e-280)
}

fn all_indices(shape: &[usize]) -> Vec<Vec<usize>> {
    let mut out = vec![vec![]];
    for &n in shape {
        out = out
            .into_iter()
            .flat_map(|p| (0..n).map(move |i| [p.clone(), vec![i]].concat()))
            .collect();
    }
    out
}

/// 300 cases under `cargo test`; `PROPTEST_CASES` for long runs (`make fuzz`).
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn fuzz_map_lanes_any_layout(
        view in view_strategy(),
        axis_pick in 0usize..3,
        values in prop::collection::vec(value_strategy(), 600),
        in_place in any::<bool>(),
        log in any::<bool>(),
        t in prop::sample::select(vec![1.0, 0.25, 3.0, 1e-3]),
    ) {
        let axis = axis_pick % view.shape.len();
        let mut buf: Vec<f64> = (0..view.buf_len).map(|i| values[i % values.len()]).collect();
        let original = buf.clone();
        let lanes = Lanes::from_strided(&view.shape, &view.strides, axis);
        let op = if log { Op::LogSoftmax } else { Op::Softmax };
        let mut dst = vec![0.0f64; view.buf_len];
        if in_place {
            let mut v = StridedViewMut::new(&mut buf, view.origin, lanes).unwrap();
            map_lanes_in_place(op, &mut v, t.into()).unwrap();
        } else {
            let src = StridedView::new(&buf, view.origin, lanes.clone()).unwrap();
            let mut d = StridedViewMut::new(&mut dst, view.origin, lanes).unwrap();
            map_lanes(op, &src, &mut d, t.into()).unwrap();
        }
        let result = if in_place { &buf } else { &dst };
        // Every lane against the reference, element by element.
        let mut outer_shape = view.shape.clone();
        outer_shape[axis] = 1;
        for idx in all_indices(&outer_shape) {
            let lane_idx: Vec<Vec<usize>> = (0..view.shape[axis]).map(|j| { let mut i = idx.clone(); i[axis] = j; i }).collect();
            let lane: Vec<f64> = lane_idx.iter().map(|i| original[view.index(i)]).collect();
            let want = reference(&lane, t, log);
            for (i, w) in lane_idx.iter().zip(&want) {
                let got = result[view.index(i)];
                prop_assert!(close(got, *w, log), "lane {:?}: got {} want {} (view {:?}, axis {})", lane, got, w, view, axis);
            }
        }
        if !in_place {
            prop_assert!(buf.iter().zip(&original).all(|(a, b)| a.to_bits() == b.to_bits()), "input modified");
        }
    }

    /// The output in another layout than the input (an F-order input into a C-order output
    /// along the middle axis: tiles spanning two dimensions, R8): the same bits as each lane
    /// computed contiguously (S9).
    #[test]
    fn fuzz_map_lanes_other_out_layout(
        view in view_strategy(),
        perm in 0usize..6,
        steps in prop::collection::vec(1usize..3, 3),
        rev in prop::collection::vec(any::<bool>(), 3),
        axis_pick in 0usize..3,
        values in prop::collection::vec(value_strategy(), 600),
        log in any::<bool>(),
        temps in prop::collection::vec(prop::sample::select(vec![1.0, 0.25, 3.0, 1e-3]), 32),
    ) {
        let axis = axis_pick % view.shape.len();
        let buf: Vec<f32> = (0..view.buf_len).map(|i| values[i % values.len()] as f32).collect();
        let dst = other_layout(&view.shape, perm, &steps, &rev);
        let count = Lanes::from_strided(&view.shape, &view.strides, axis).count();
        let temps: Vec<f64> = (0..count).map(|k| temps[k % temps.len()]).collect();
        let op = if log { Op::LogSoftmax } else { Op::Softmax };
        check_other_out_layout(&buf, &view, &dst, axis, op, &temps)?;
    }

    #[test]
    fn fuzz_logsumexp_lanes_any_layout(
        view in view_strategy(),
        axis_pick in 0usize..3,
        values in prop::collection::vec(value_strategy(), 600),
    ) {
        let axis = axis_pick % view.shape.len();
        let buf: Vec<f32> = (0..view.buf_len).map(|i| values[i % values.len()] as f32).collect();
        let lanes = Lanes::from_strided(&view.shape, &view.strides, axis);
        let mut out = vec![0f32; lanes.count()];
        let src = StridedView::new(&buf, view.origin, lanes).unwrap();
        logsumexp_lanes(&src, &mut out).unwrap();
        let mut outer_shape = view.shape.clone();
        outer_shape[axis] = 1;
        for (k, idx) in all_indices(&outer_shape).into_iter().enumerate() {
            let lane: Vec<f64> = (0..view.shape[axis]).map(|j| { let mut i = idx.clone(); i[axis] = j; buf[view.index(&i)] as f64 }).collect();
            let m = lane.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let want = if lane.iter().any(|v| v.is_nan()) { f64::NAN }
                else if m.is_infinite() { m }
                else { m + lane.iter().map(|v| (v - m).exp()).sum::<f64>().ln() };
            let got = out[k] as f64;
            if want.is_nan() { prop_assert!(got.is_nan()); }
            else if want.is_infinite() { prop_assert_eq!(got, want); }
            else { prop_assert!((got - want).abs() <= 2e-6 * want.abs().max(1.0), "{} vs {}", got, want); }
        }
    }
}

/// Larger arrays than the fuzz cases, so that tiles are many and partial along both of their
/// dimensions: an F-order input along its middle axis into a C-order output, and the reverse.
#[test]
fn two_dimensional_tiles_give_contiguous_bits() {
    let shape = [300usize, 20, 300];
    let f_order = other_layout(&shape, 5, &[1, 1, 1], &[false; 3]);
    let c_order = other_layout(&shape, 0, &[1, 1, 1], &[false; 3]);
    assert_eq!(f_order.strides, vec![1, 300, 6000]);
    assert_eq!(c_order.strides, vec![6000, 300, 1]);
    let buf: Vec<f32> = (0..f_order.buf_len)
        .map(|i| ((i * 7919) % 1000) as f32 / 37.0 - 13.0)
        .collect();
    let temps: Vec<f64> = (0..300 * 300).map(|k| 0.5 + (k % 5) as f64).collect();
    for op in [Op::Softmax, Op::LogSoftmax] {
        check_other_out_layout(&buf, &f_order, &c_order, 1, op, &temps).unwrap();
        check_other_out_layout(&buf, &c_order, &f_order, 1, op, &temps).unwrap();
    }
}

/// R2: a lane of a broadcast view (stride 0) too long for any tile is an error, never a panic.
/// Found by a review: at `len = usize::MAX` the tile's row pitch overflowed (a panic in debug,
/// a gather past the buffer's end, caught by its bounds check, in release).
#[test]
fn r2_a_lane_too_long_for_a_tile_is_an_error() {
    fn check<T: logitkit::Float + Default + Copy>() {
        let x = [T::default(); 16];
        for len in [usize::MAX, usize::MAX - 1, usize::MAX - 15, 1 << 63] {
            let lanes = Lanes {
                len,
                stride: 0,
                outer: vec![(1, 0)],
            };
            let v = StridedView::new(&x, 0, lanes).expect("a broadcast lane is a valid view");
            let mut out = [T::default(); 1];
            assert!(logsumexp_lanes(&v, &mut out).is_err(), "len {len}");
        }
    }
    check::<f32>();
    check::<f64>();
}

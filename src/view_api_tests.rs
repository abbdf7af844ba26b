//! The safe lanes API over views against the raw forms the bindings use, and its checks of
//! mismatched layouts (contracts S9, R6, R7). Kept apart from `view` so that the views do not
//! depend on the functions that take them.

use crate::error::Error;
use crate::extras::calibration::{calibration_bins_lanes, calibration_bins_lanes_raw};
use crate::extras::calibration::{fit_temperature_lanes, fit_temperature_lanes_raw};
use crate::extras::loss::{cross_entropy_lanes, cross_entropy_lanes_raw, CrossEntropyOptions};
use crate::extras::ops::{sigmoid_lanes, sigmoid_lanes_raw, sparsemax_lanes};
use crate::extras::ops::{sparsemax_lanes_raw, topk_lanes, topk_lanes_raw};
use crate::lanes::map_lanes_raw;
use crate::lanes::{logsumexp_lanes, logsumexp_lanes_raw, map_lanes, map_lanes_in_place};
use crate::layout::Lanes;
use crate::op::Op;
use crate::view::tests::{bad_param, lanes};
use crate::view::{StridedView, StridedViewMut};
use proptest::prelude::*;

#[test]
fn mismatched_source_and_destination_layouts_are_refused() {
    let x = [0.0f64; 6];
    let mut y = [0.0f64; 6];
    let src = StridedView::rows(&x, 3).unwrap();
    for dst_lanes in [
        Lanes::rows(3, 2),
        Lanes::rows(1, 6),
        lanes(3, 1, &[(1, 0), (2, 3)]),
    ] {
        let mut dst = StridedViewMut::new(&mut y, 0, dst_lanes).unwrap();
        let (name, value) = bad_param(map_lanes(Op::Softmax, &src, &mut dst, 1.0.into()));
        assert_eq!(name, "dst");
        assert!(value.contains("lanes of length"), "{value}");
        assert_eq!(bad_param(sparsemax_lanes(&src, &mut dst)).0, "dst");
        assert_eq!(bad_param(sigmoid_lanes(&src, &mut dst)).0, "dst");
    }
    // Other strides, the same lanes: accepted (the transposed layout).
    let mut dst = StridedViewMut::new(&mut y, 0, Lanes::from_strided(&[3, 2], &[2, 1], 0));
    map_lanes(Op::Softmax, &src, dst.as_mut().unwrap(), 1.0.into()).unwrap();
    // Top-k: outputs of the wrong shape, each named.
    let (mut v, mut i) = ([0.0f64; 4], [0i64; 4]);
    let mut values = StridedViewMut::rows(&mut v, 2).unwrap();
    let mut short = StridedViewMut::rows(&mut i[..2], 1).unwrap();
    let e = topk_lanes(&src, 2, &mut values, &mut short).unwrap_err();
    assert!(
        matches!(
            e,
            Error::LengthMismatch {
                name: "indices",
                got: 2,
                expected: 4
            }
        ),
        "{e}"
    );
    let mut values = StridedViewMut::rows(&mut v, 1).unwrap();
    let mut idx = StridedViewMut::rows(&mut i, 2).unwrap();
    let e = topk_lanes(&src, 2, &mut values, &mut idx).unwrap_err();
    assert!(
        matches!(e, Error::LengthMismatch { name: "values", .. }),
        "{e}"
    );
    // logsumexp: one output per lane.
    let e = logsumexp_lanes(&src, &mut [0.0; 3]).unwrap_err();
    assert!(
        matches!(
            e,
            Error::LengthMismatch {
                name: "out",
                got: 3,
                expected: 2
            }
        ),
        "{e}"
    );
}

/// A valid layout of `shape` (C order over the dimensions in `order`, stepped, some
/// reversed) along `axis`, with its base and the slice length it needs.
fn strided_layout() -> impl Strategy<Value = (Lanes, usize, usize)> {
    (
        prop::collection::vec(0usize..6, 1..=3),
        prop::collection::vec(1isize..3, 3),
        prop::collection::vec(any::<bool>(), 3),
        any::<bool>(),
        0usize..3,
    )
        .prop_map(|(shape, steps, rev, transpose, axis)| {
            let nd = shape.len();
            let mut order: Vec<usize> = (0..nd).collect();
            if transpose {
                order.reverse();
            }
            let mut strides = vec![0isize; nd];
            let mut span = 1isize;
            for &d in order.iter().rev() {
                strides[d] = span * steps[d];
                span = strides[d] * shape[d].max(1) as isize;
            }
            let mut base = 0isize;
            for d in 0..nd {
                if rev[d] && shape[d] > 0 {
                    base += (shape[d] as isize - 1) * strides[d];
                    strides[d] = -strides[d];
                }
            }
            let l = Lanes::from_strided(&shape, &strides, axis % nd);
            (l, base as usize, span.max(1) as usize)
        })
}

fn bits<T: Copy + Into<f64>>(x: &[T]) -> Vec<u64> {
    x.iter().map(|&v| v.into().to_bits()).collect()
}

#[test]
fn r7_empty_lanes_run_and_touch_nothing() {
    let mut y = [0.0f32; 0];
    let mut v = StridedViewMut::new(&mut y, 0, lanes(0, 0, &[(3, 0)])).unwrap();
    map_lanes_in_place(Op::Softmax, &mut v, 1.0.into()).unwrap();
    let mut lse = [0.0f32; 3];
    logsumexp_lanes(&v.as_view(), &mut lse).unwrap();
    assert_eq!(lse, [f32::NEG_INFINITY; 3]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

        /// S9: the safe API gives the raw one's bits over random strided layouts (out of place
        /// into another buffer, in place, and each of the extras).
        #[test]
        fn s9_safe_api_gives_the_raw_bits((l, base, n) in strided_layout(),
                                          seed in any::<u64>(),
                                          log in any::<bool>()) {
            let mut g = seed | 1;
            let x: Vec<f32> = (0..n)
                .map(|_| {
                    g ^= g << 13;
                    g ^= g >> 7;
                    g ^= g << 17;
                    ((g % 2001) as f32 - 1000.0) / 100.0
                })
                .collect();
            let op = if log { Op::LogSoftmax } else { Op::Softmax };
            let count = l.count();
            let temps: Vec<f64> = (0..count).map(|i| 0.5 + i as f64 * 0.25).collect();
            let t = crate::Temperature::PerRow(&temps);
            let src = StridedView::new(&x, base, l.clone()).unwrap();

            // Out of place, the same layout in another buffer.
            let (mut safe, mut raw) = (vec![f32::NAN; n], vec![f32::NAN; n]);
            map_lanes(op, &src, &mut StridedViewMut::new(&mut safe, base, l.clone()).unwrap(), t)
                .unwrap();
            // SAFETY: the layout lies in both buffers from `base` (built that way), distinct
            // elements, distinct buffers.
            unsafe {
                let (s, d) = (x.as_ptr().add(base), raw.as_mut_ptr().add(base));
                map_lanes_raw(op, s, &l, d, &l, t).unwrap();
            }
            prop_assert_eq!(bits(&safe), bits(&raw));

            // In place.
            let (mut safe, mut raw) = (x.clone(), x.clone());
            map_lanes_in_place(op, &mut StridedViewMut::new(&mut safe, base, l.clone()).unwrap(), t)
                .unwrap();
            // SAFETY: as above, in place with identical layouts.
            unsafe {
                let p = raw.as_mut_ptr().add(base);
                map_lanes_raw(op, p, &l, p, &l, t).unwrap();
            }
            prop_assert_eq!(bits(&safe), bits(&raw));

            // SAFETY: (this and every raw call below) the layout lies in `x` from `base`; outputs are
            // separate buffers of the layout `l` from `base` (distinct elements) or slices.
            let sp = unsafe { x.as_ptr().add(base) };
            let (mut a, mut b) = (vec![0.0f32; count], vec![0.0f32; count]);
            logsumexp_lanes(&src, &mut a).unwrap();
            // SAFETY: as above (the layout and outputs described there).
            unsafe { logsumexp_lanes_raw(sp, &l, &mut b) }.unwrap();
            prop_assert_eq!(bits(&a), bits(&b));

            let (mut safe, mut raw) = (vec![f32::NAN; n], vec![f32::NAN; n]);
            sparsemax_lanes(&src, &mut StridedViewMut::new(&mut safe, base, l.clone()).unwrap())
                .unwrap();
            // SAFETY: as above (the layout and outputs described there).
            unsafe { sparsemax_lanes_raw(sp, &l, raw.as_mut_ptr().add(base), &l) }.unwrap();
            prop_assert_eq!(bits(&safe), bits(&raw));

            let (mut safe, mut raw) = (vec![f32::NAN; n], vec![f32::NAN; n]);
            sigmoid_lanes(&src, &mut StridedViewMut::new(&mut safe, base, l.clone()).unwrap())
                .unwrap();
            // SAFETY: as above (the layout and outputs described there).
            unsafe { sigmoid_lanes_raw(sp, &l, raw.as_mut_ptr().add(base), &l) }.unwrap();
            prop_assert_eq!(bits(&safe), bits(&raw));

            // Top-k into C-order outputs (values) and a transposed one (indices).
            let k = l.len.min(2);
            let out = Lanes::rows(count, k);
            // (For k = 0 the transposed lanes would start past an empty slice: C order.)
            let out_t = if k > 0 {
                Lanes { len: k, stride: count as isize, outer: vec![(count, 1)] }
            } else {
                out.clone()
            };
            let (mut v1, mut i1) = (vec![0.0f32; count * k], vec![-1i64; count * k]);
            let (mut v2, mut i2) = (vec![0.0f32; count * k], vec![-1i64; count * k]);
            topk_lanes(
                &src,
                k,
                &mut StridedViewMut::new(&mut v1, 0, out.clone()).unwrap(),
                &mut StridedViewMut::new(&mut i1, 0, out_t.clone()).unwrap(),
            )
            .unwrap();
            // SAFETY: as above (the layout and outputs described there).
            unsafe {
                topk_lanes_raw(sp, &l, k, v2.as_mut_ptr(), &out, i2.as_mut_ptr(), &out_t)
            }
            .unwrap();
            prop_assert_eq!(bits(&v1), bits(&v2));
            prop_assert_eq!(i1, i2);

            if l.len > 0 && count > 0 {
                let labels: Vec<i64> = (0..count).map(|i| (i % l.len) as i64).collect();
                let opts = CrossEntropyOptions::default();
                let (mut a, mut b) = (vec![0.0f64; count], vec![0.0f64; count]);
                cross_entropy_lanes(&src, &labels, &opts, &mut a).unwrap();
                // SAFETY: as above (the layout and outputs described there).
                unsafe { cross_entropy_lanes_raw(sp, &l, &labels, &opts, &mut b) }.unwrap();
                prop_assert_eq!(bits(&a), bits(&b));
                let fa = fit_temperature_lanes(&src, &labels).unwrap();
                // SAFETY: as above (the layout and outputs described there).
                let fb = unsafe { fit_temperature_lanes_raw(sp, &l, &labels) }.unwrap();
                prop_assert_eq!(fa, fb);
                // Probabilities: the softmax computed above, in the same layout.
                let mut p = vec![0.0f32; n];
                map_lanes(
                    Op::Softmax,
                    &src,
                    &mut StridedViewMut::new(&mut p, base, l.clone()).unwrap(),
                    1.0.into(),
                )
                .unwrap();
                let pv = StridedView::new(&p, base, l.clone()).unwrap();
                let ba = calibration_bins_lanes(&pv, &labels, 7).unwrap();
                // SAFETY: as above (the layout and outputs described there).
                let bb = unsafe { calibration_bins_lanes_raw(p.as_ptr().add(base), &l, &labels, 7) }
                    .unwrap();
                prop_assert_eq!(ba, bb);
            }
        }
}

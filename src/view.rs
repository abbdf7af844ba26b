//! Safe strided views: a slice plus a [`Lanes`] layout, checked once at construction, that the
//! lanes functions ([`crate::lanes::map_lanes`], [`crate::extras::topk_lanes`], ...) take instead
//! of raw pointers.
//!
//! A view's elements are the elements of its lanes: element `j` of lane `i` is
//! `data[base + lanes.offset(i) + j * lanes.stride]`. Strides may be negative (the base offset
//! then points past the start of the slice) or zero. [`StridedView::new`] checks, with checked
//! arithmetic, that every one of those indices lies inside the slice (contract R7: an
//! out-of-range layout is an error, never an out-of-bounds access or a panic, R2).
//! [`StridedViewMut::new`] checks in addition that no two elements of the view are the same
//! element of the slice (contract R6: a write target whose elements overlap is refused).
//!
//! ```
//! use logitkit::lanes::map_lanes;
//! use logitkit::{Lanes, Op, StridedView, StridedViewMut};
//! // Softmax down the columns of a C-contiguous 2 x 3 array, into a fresh 2 x 3 array.
//! let x = [0.0f64, 1.0, 2.0, 0.0, 1.0, 2.0];
//! let cols = Lanes::from_strided(&[2, 3], &[3, 1], 0);
//! let src = StridedView::new(&x, 0, cols.clone()).unwrap();
//! let mut p = [0.0f64; 6];
//! let mut dst = StridedViewMut::new(&mut p, 0, cols).unwrap();
//! map_lanes(Op::Softmax, &src, &mut dst, 1.0.into()).unwrap();
//! assert_eq!(p, [0.5; 6]);
//! ```

use crate::error::{Error, Result};
use crate::lanes::Lanes;

/// The lowest and highest index a layout reaches from `base`, or `None` when it reaches no
/// element (no lanes). Checked: an overflow is an error naming `lanes`.
fn index_range(base: usize, lanes: &Lanes, data_len: usize) -> Result<Option<(i128, i128)>> {
    if base > data_len {
        return Err(Error::InvalidParameter {
            name: "base",
            value: format!("{base} (slice of {data_len} elements)"),
            expected: "an index in [0, slice length]",
        });
    }
    let overflow = || Error::InvalidParameter {
        name: "lanes",
        value: format!("{lanes:?}"),
        expected: "a layout whose offsets and lane count fit in isize and usize",
    };
    // The lane count itself must not overflow (`Lanes::count` multiplies the extents).
    let count = lanes
        .outer
        .iter()
        .try_fold(1usize, |c, &(e, _)| c.checked_mul(e));
    match count {
        Some(0) => return Ok(None),
        Some(_) => {}
        None => return Err(overflow()),
    }
    let (mut lo, mut hi) = (base as i128, base as i128);
    // A lane of no elements still has a start, which the functions form as a pointer: it must
    // lie inside the slice or one past its end.
    let lane_dim = (lanes.len > 0).then_some((lanes.len, lanes.stride));
    for &(extent, stride) in lanes.outer.iter().chain(lane_dim.iter()) {
        let span = i128::try_from(extent - 1)
            .ok()
            .and_then(|e| e.checked_mul(stride as i128))
            .ok_or_else(overflow)?;
        if span < 0 {
            lo = lo.checked_add(span).ok_or_else(overflow)?;
        } else {
            hi = hi.checked_add(span).ok_or_else(overflow)?;
        }
        if lo < isize::MIN as i128 || hi > isize::MAX as i128 {
            return Err(overflow());
        }
    }
    Ok(Some((lo, hi)))
}

/// Checks that every element (or, for empty lanes, every lane start) lies inside a slice of
/// `data_len` elements.
fn check_bounds(base: usize, lanes: &Lanes, data_len: usize) -> Result<()> {
    let Some((lo, hi)) = index_range(base, lanes, data_len)? else {
        return Ok(());
    };
    // Elements: indices in [0, len). Starts of empty lanes: in [0, len].
    let end = if lanes.len > 0 {
        data_len as i128 - 1
    } else {
        data_len as i128
    };
    if lo < 0 || hi > end {
        return Err(Error::InvalidParameter {
            name: "lanes",
            value: format!(
                "{lanes:?} at base {base}: indices {lo} to {hi} in a slice of {data_len} elements"
            ),
            expected: "a layout whose every element lies inside the slice",
        });
    }
    Ok(())
}

/// A read-only strided view: a slice and a [`Lanes`] layout whose every element lies inside it.
///
/// ```
/// use logitkit::{Lanes, StridedView};
/// let x = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
/// // The rows of x reversed: row 1 (elements 3..6) first, so the base offset is 3.
/// let rows = Lanes { len: 3, stride: 1, outer: vec![(2, -3)] };
/// let v = StridedView::new(&x, 3, rows.clone()).unwrap();
/// assert_eq!((v.base(), v.lanes()), (3, &rows));
/// // From base 0 the first row would start before the slice.
/// assert!(StridedView::new(&x, 0, rows).is_err());
/// ```
#[derive(Debug, Clone)]
pub struct StridedView<'a, T> {
    data: &'a [T],
    base: usize,
    lanes: Lanes,
}

impl<'a, T> StridedView<'a, T> {
    /// The view of `data` laid out as `lanes` from index `base`.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] naming `base` when `base > data.len()`, or `lanes` when an
    /// element (for lanes of length 0, a lane's start) lies outside `data` or an offset
    /// overflows (contract R7).
    ///
    /// ```
    /// use logitkit::{Lanes, StridedView};
    /// let x = [0.0f64; 12];
    /// // Columns of a 3 x 4 array: 4 lanes of 3, 4 apart.
    /// let cols = Lanes::from_strided(&[3, 4], &[4, 1], 0);
    /// assert!(StridedView::new(&x, 0, cols.clone()).is_ok());
    /// // One element short.
    /// let err = StridedView::new(&x[..11], 0, cols).unwrap_err();
    /// assert!(err.to_string().contains("lanes"));
    /// ```
    pub fn new(data: &'a [T], base: usize, lanes: Lanes) -> Result<Self> {
        check_bounds(base, &lanes, data.len())?;
        Ok(StridedView { data, base, lanes })
    }

    /// The rows of a row-major batch: `data.len() / row_len` lanes of `row_len` elements.
    ///
    /// # Errors
    /// When `row_len` does not divide `data.len()`, or is 0 for non-empty `data`.
    ///
    /// ```
    /// use logitkit::StridedView;
    /// let v = StridedView::rows(&[1.0f32, 2.0, 3.0, 4.0], 2).unwrap();
    /// assert_eq!((v.lanes().len, v.lanes().count()), (2, 2));
    /// assert!(StridedView::rows(&[1.0f32, 2.0, 3.0], 2).is_err());
    /// ```
    pub fn rows(data: &'a [T], row_len: usize) -> Result<Self> {
        let rows = crate::softmax::rows_of(data.len(), row_len)?;
        Self::new(data, 0, Lanes::rows(rows, row_len))
    }

    /// The layout.
    ///
    /// ```
    /// use logitkit::StridedView;
    /// assert_eq!(StridedView::rows(&[0u8; 6], 3).unwrap().lanes().stride, 1);
    /// ```
    pub fn lanes(&self) -> &Lanes {
        &self.lanes
    }

    /// Index in the slice from which the layout's offsets count.
    ///
    /// ```
    /// use logitkit::{Lanes, StridedView};
    /// let x = [0i64; 4];
    /// // The whole slice reversed: one lane, stride -1, from the last element.
    /// let v = StridedView::new(&x, 3, Lanes { len: 4, stride: -1, outer: vec![(1, 0)] }).unwrap();
    /// assert_eq!(v.base(), 3);
    /// ```
    pub fn base(&self) -> usize {
        self.base
    }

    /// The underlying slice.
    ///
    /// ```
    /// use logitkit::StridedView;
    /// let x = [1.0f32, 2.0];
    /// assert_eq!(StridedView::rows(&x, 1).unwrap().data(), &x);
    /// ```
    pub fn data(&self) -> &'a [T] {
        self.data
    }

    /// The element the layout's offsets count from (a pointer at most one past the slice).
    pub(crate) fn as_ptr(&self) -> *const T {
        self.data[self.base..].as_ptr()
    }
}

/// A writable strided view: a mutable slice and a [`Lanes`] layout whose every element lies
/// inside it and is distinct from every other (no two lanes, and no two positions of a lane,
/// reach the same element of the slice).
///
/// ```
/// use logitkit::{Lanes, StridedViewMut};
/// let mut out = [0.0f32; 6];
/// // A transposed 2 x 3 array (lanes along axis 0): distinct elements.
/// let cols = Lanes::from_strided(&[2, 3], &[3, 1], 0);
/// assert!(StridedViewMut::new(&mut out, 0, cols).is_ok());
/// // Three lanes that each start one element after the previous one share elements.
/// let shifted = Lanes { len: 3, stride: 1, outer: vec![(3, 1)] };
/// assert!(StridedViewMut::new(&mut out, 0, shifted).is_err());
/// ```
#[derive(Debug)]
pub struct StridedViewMut<'a, T> {
    data: &'a mut [T],
    base: usize,
    lanes: Lanes,
}

impl<'a, T> StridedViewMut<'a, T> {
    /// The writable view of `data` laid out as `lanes` from index `base`.
    ///
    /// # Errors
    /// As [`StridedView::new`], and [`Error::InvalidParameter`] naming `lanes` when two
    /// elements of the view are the same element of `data` (a zero stride along a lane or
    /// across lanes of more than one element, or lanes that overlap; contract R6).
    /// [`Error::OutOfMemory`] if the check of an interleaved layout cannot allocate.
    ///
    /// ```
    /// use logitkit::{Lanes, StridedViewMut};
    /// let mut out = [0.0f64; 4];
    /// // One row broadcast to two lanes (outer stride 0): both lanes write the same elements.
    /// let broadcast = Lanes { len: 4, stride: 1, outer: vec![(2, 0)] };
    /// let err = StridedViewMut::new(&mut out, 0, broadcast).unwrap_err();
    /// assert!(err.to_string().contains("distinct"));
    /// ```
    pub fn new(data: &'a mut [T], base: usize, lanes: Lanes) -> Result<Self> {
        check_bounds(base, &lanes, data.len())?;
        // In bounds, every offset fits in isize; compare element indices (items of width 1).
        let (shape, strides): (Vec<usize>, Vec<isize>) = lanes
            .outer
            .iter()
            .copied()
            .chain(std::iter::once((lanes.len, lanes.stride)))
            .unzip();
        let overlaps =
            crate::overlap::self_overlaps(&shape, &strides, 1).map_err(|_| Error::OutOfMemory {
                what: "the overlap check of a strided view",
                bytes: shape
                    .iter()
                    .fold(16usize, |a, &e| a.saturating_mul(e.max(1))),
            })?;
        if overlaps {
            return Err(Error::InvalidParameter {
                name: "lanes",
                value: format!("{lanes:?}"),
                expected: "a layout whose elements are all distinct (contract R6)",
            });
        }
        Ok(StridedViewMut { data, base, lanes })
    }

    /// The rows of a row-major batch: `data.len() / row_len` lanes of `row_len` elements.
    ///
    /// # Errors
    /// When `row_len` does not divide `data.len()`, or is 0 for non-empty `data`.
    ///
    /// ```
    /// use logitkit::StridedViewMut;
    /// let mut out = [0.0f64; 6];
    /// let v = StridedViewMut::rows(&mut out, 3).unwrap();
    /// assert_eq!(v.lanes().count(), 2);
    /// ```
    pub fn rows(data: &'a mut [T], row_len: usize) -> Result<Self> {
        let rows = crate::softmax::rows_of(data.len(), row_len)?;
        // Rows are distinct and in bounds: no need for the general checks.
        Ok(StridedViewMut {
            data,
            base: 0,
            lanes: Lanes::rows(rows, row_len),
        })
    }

    /// The layout.
    ///
    /// ```
    /// use logitkit::StridedViewMut;
    /// assert_eq!(StridedViewMut::rows(&mut [0u8; 6], 2).unwrap().lanes().len, 2);
    /// ```
    pub fn lanes(&self) -> &Lanes {
        &self.lanes
    }

    /// Index in the slice from which the layout's offsets count.
    ///
    /// ```
    /// use logitkit::StridedViewMut;
    /// assert_eq!(StridedViewMut::rows(&mut [0u8; 6], 2).unwrap().base(), 0);
    /// ```
    pub fn base(&self) -> usize {
        self.base
    }

    /// A read-only view of the same elements, borrowing this one.
    ///
    /// ```
    /// use logitkit::StridedViewMut;
    /// let mut x = [1.0f32, 2.0];
    /// let v = StridedViewMut::rows(&mut x, 2).unwrap();
    /// assert_eq!(v.as_view().data(), &[1.0, 2.0]);
    /// ```
    pub fn as_view(&self) -> StridedView<'_, T> {
        StridedView {
            data: self.data,
            base: self.base,
            lanes: self.lanes.clone(),
        }
    }

    /// The underlying slice, giving up the view.
    ///
    /// ```
    /// use logitkit::StridedViewMut;
    /// let mut x = [1.0f32, 2.0];
    /// let v = StridedViewMut::rows(&mut x, 1).unwrap();
    /// v.into_data()[0] = 3.0;
    /// assert_eq!(x, [3.0, 2.0]);
    /// ```
    pub fn into_data(self) -> &'a mut [T] {
        self.data
    }

    /// The element the layout's offsets count from (a pointer at most one past the slice).
    pub(crate) fn as_mut_ptr(&mut self) -> *mut T {
        self.data[self.base..].as_mut_ptr()
    }
}

/// Source and destination views lay out the same lanes: same lane length and the same outer
/// extents (so lane `i` of one matches lane `i` of the other). Else an error naming `dst`.
pub(crate) fn check_matching(src: &Lanes, dst: &Lanes) -> Result<()> {
    let extents = |l: &Lanes| l.outer.iter().map(|&(e, _)| e).collect::<Vec<_>>();
    if src.len != dst.len || extents(src) != extents(dst) {
        return Err(Error::InvalidParameter {
            name: "dst",
            value: format!(
                "lanes of length {} over extents {:?}",
                dst.len,
                extents(dst)
            ),
            expected: "the source's lane length and outer extents",
        });
    }
    Ok(())
}

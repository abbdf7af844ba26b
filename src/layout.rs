//! The layout of a strided array's vectors ([`Lanes`]): the bottom of the lanes layering,
//! shared by the views that check it and the functions that compute over it.

use crate::error::{Error, Result};

/// Checks a row-major batch: `len` elements in rows of `row_len`; returns the row count.
pub(crate) fn rows_of(len: usize, row_len: usize) -> Result<usize> {
    if row_len == 0 {
        return if len == 0 {
            Ok(0)
        } else {
            Err(Error::invalid(
                "row_len",
                0,
                "positive for a non-empty input",
            ))
        };
    }
    if !len.is_multiple_of(row_len) {
        return Err(Error::invalid(
            "row_len",
            row_len,
            "a divisor of the input's length",
        ));
    }
    Ok(len / row_len)
}

/// Where the lanes of a strided array lie. Strides count elements, not bytes, and may be
/// negative or zero.
///
/// ```
/// use logitkit::Lanes;
/// // A C-contiguous 2 x 3 x 4 array, lanes along axis 1.
/// let lanes = Lanes::from_strided(&[2, 3, 4], &[12, 4, 1], 1);
/// assert_eq!((lanes.len, lanes.stride), (3, 4));
/// assert_eq!(lanes.count(), 8);
/// assert_eq!(lanes.offset(5), 12 + 1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lanes {
    /// Elements per lane.
    pub len: usize,
    /// Distance between consecutive elements of a lane.
    pub stride: isize,
    /// The other dimensions, outermost first: (extent, stride). Lanes are numbered in C order
    /// over these.
    pub outer: Vec<(usize, isize)>,
}

impl Lanes {
    /// `rows` contiguous rows of `row_len` elements each, one after the other.
    ///
    /// ```
    /// use logitkit::Lanes;
    /// let rows = Lanes::rows(3, 4);
    /// assert_eq!((rows.len, rows.stride, rows.count()), (4, 1, 3));
    /// assert_eq!(rows.offset(2), 8); // row 2 starts at element 2 * 4
    /// // The same lanes as the rows of a C-contiguous 3 x 4 array.
    /// assert_eq!(rows, Lanes::from_strided(&[3, 4], &[4, 1], 1));
    /// ```
    pub fn rows(rows: usize, row_len: usize) -> Lanes {
        Lanes {
            len: row_len,
            stride: 1,
            outer: vec![(rows, row_len as isize)],
        }
    }

    /// The lanes along `axis` of an array of `shape` and element `strides`.
    ///
    /// # Panics
    /// If `axis >= shape.len()` or the lengths of `shape` and `strides` differ.
    ///
    /// ```
    /// use logitkit::lanes::map_lanes;
    /// use logitkit::{Lanes, Op};
    /// // Columns of a C-contiguous 2 x 3 array: 3 lanes of 2 elements, 3 apart.
    /// let x = [0.0f64, 1.0, 2.0, 0.0, 1.0, 2.0];
    /// let cols = Lanes::from_strided(&[2, 3], &[3, 1], 0);
    /// assert_eq!((cols.len, cols.stride, cols.count()), (2, 3, 3));
    /// assert_eq!((cols.offset(0), cols.offset(2)), (0, 2));
    /// // Softmax down each column: every column holds two equal values.
    /// let mut p = [0.0f64; 6];
    /// let src = logitkit::StridedView::new(&x, 0, cols.clone()).unwrap();
    /// let mut dst = logitkit::StridedViewMut::new(&mut p, 0, cols).unwrap();
    /// map_lanes(Op::Softmax, &src, &mut dst, 1.0.into()).unwrap();
    /// assert_eq!(p, [0.5; 6]);
    /// ```
    pub fn from_strided(shape: &[usize], strides: &[isize], axis: usize) -> Lanes {
        assert_eq!(
            shape.len(),
            strides.len(),
            "shape and strides differ in length"
        );
        assert!(axis < shape.len(), "axis out of range");
        let outer = (0..shape.len())
            .filter(|&d| d != axis)
            .map(|d| (shape[d], strides[d]))
            .collect();
        Lanes {
            len: shape[axis],
            stride: strides[axis],
            outer,
        }
    }

    /// Number of lanes.
    ///
    /// ```
    /// use logitkit::Lanes;
    /// // A 2 x 3 x 4 array has 2 * 4 lanes along axis 1 and 2 * 3 along axis 2.
    /// assert_eq!(Lanes::from_strided(&[2, 3, 4], &[12, 4, 1], 1).count(), 8);
    /// assert_eq!(Lanes::from_strided(&[2, 3, 4], &[12, 4, 1], 2).count(), 6);
    /// // A one-dimensional array is one lane; an empty dimension means no lanes.
    /// assert_eq!(Lanes::from_strided(&[5], &[1], 0).count(), 1);
    /// assert_eq!(Lanes::from_strided(&[0, 5], &[5, 1], 1).count(), 0);
    /// ```
    pub fn count(&self) -> usize {
        // Saturating: a layout of more lanes than `usize` counts describes no array (the
        // views' constructors refuse it).
        self.outer
            .iter()
            .fold(1usize, |n, &(e, _)| n.saturating_mul(e))
    }

    /// Offset, in elements, of the first element of lane `lane` (C order over `outer`).
    ///
    /// ```
    /// use logitkit::Lanes;
    /// // Lanes along axis 1 of a C-contiguous 2 x 3 x 4 array; lane 5 is (i, j) = (1, 1) over
    /// // the other axes, which starts at element 1 * 12 + 1 * 1.
    /// let lanes = Lanes::from_strided(&[2, 3, 4], &[12, 4, 1], 1);
    /// assert_eq!(lanes.offset(5), 13);
    /// // Negative strides (a reversed view) give negative offsets from the view's start.
    /// let reversed = Lanes::from_strided(&[3, 2], &[-2, 1], 1);
    /// assert_eq!(reversed.offset(2), -4);
    /// ```
    ///
    /// # Panics
    /// If `lane >= self.count()` on a layout with an outer extent of 0 (it has no lanes; the
    /// remainder by 0 panics). Other lanes past the end wrap around as the extents do, and an
    /// offset beyond `isize` overflows (a panic in debug builds): both are the caller's to
    /// avoid, as the views' constructors do.
    #[inline]
    pub fn offset(&self, mut lane: usize) -> isize {
        if let [(_, stride)] = self.outer[..] {
            // One outer dimension (the usual case after coalescing): no division.
            return lane as isize * stride;
        }
        let mut off = 0isize;
        for &(extent, stride) in self.outer.iter().rev() {
            off += (lane % extent) as isize * stride;
            lane /= extent;
        }
        off
    }

    pub(crate) fn outer_extents(&self) -> impl Iterator<Item = usize> + '_ {
        self.outer.iter().map(|&(e, _)| e)
    }
}

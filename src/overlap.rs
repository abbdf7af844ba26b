//! Whether the elements of a strided view overlap one another (contract R6: such an `out=` is
//! refused, since what it would hold depends on the order of the writes).

/// Whether two elements of the view overlap: `shape` and `strides` (in bytes, any sign) of a
/// view whose elements are `item` bytes wide, so that element `i` occupies the bytes
/// `[sum(i_k * strides[k]), ... + item)`. Exact.
///
/// An axis of length 1 never causes an overlap (its stride is never used), and an empty view
/// has no elements to overlap. Otherwise, with the axes sorted by `|stride|`, the view has
/// distinct elements if each `|stride|` is at least the bytes spanned by the axes inside it:
/// each step along that axis then moves past everything the inner axes reach. That settles
/// every layout slicing, transposing and reshaping make, in a few operations per axis.
/// Interleaved layouts it cannot settle (say lengths (3, 2), strides (2, 3) items, disjoint
/// though the second stride is within the first axis's span) are decided by sorting the
/// elements' addresses: `O(n log n)`, only for such hand-made `as_strided` views.
///
/// # Errors
/// When the addresses of an interleaved layout cannot be allocated.
pub(crate) fn self_overlaps(
    shape: &[usize],
    strides: &[isize],
    item: usize,
) -> Result<bool, std::collections::TryReserveError> {
    if shape.contains(&0) {
        return Ok(false);
    }
    let mut axes: Vec<(usize, usize)> = shape
        .iter()
        .zip(strides)
        .filter(|(&n, _)| n > 1)
        .map(|(&n, &s)| (s.unsigned_abs(), n))
        .collect();
    axes.sort_unstable();
    // Bytes reached by the axes sorted so far, from the lowest address of their block.
    let mut span = item;
    let mut nested = true;
    for &(s, n) in &axes {
        if s < item {
            // Neighbours along this axis share bytes (a zero stride included).
            return Ok(true);
        }
        if s < span {
            nested = false;
            break;
        }
        span = span.saturating_add((n - 1).saturating_mul(s));
    }
    if nested {
        return Ok(false);
    }
    // Every element's address, relative to the first, from the axes (innermost varying
    // fastest); sorted, two closer than `item` overlap.
    let size: usize = axes.iter().map(|&(_, n)| n).product();
    let mut addrs: Vec<i128> = Vec::new();
    addrs.try_reserve_exact(size)?;
    addrs.push(0);
    for &(s, n) in &axes {
        let block = addrs.len();
        for k in 1..n {
            let step = (k as i128) * (s as i128);
            for b in 0..block {
                let a = addrs[b] + step;
                addrs.push(a);
            }
        }
    }
    addrs.sort_unstable();
    Ok(addrs.windows(2).any(|w| w[1] - w[0] < item as i128))
}

#[cfg(test)]
mod tests {
    use super::self_overlaps;

    /// Brute force: the bytes of every element, counted.
    fn brute(shape: &[usize], strides: &[isize], item: usize) -> bool {
        let size: usize = shape.iter().product();
        let mut starts = Vec::with_capacity(size);
        for flat in 0..size {
            let (mut rem, mut a) = (flat, 0isize);
            for (&n, &s) in shape.iter().zip(strides).rev() {
                a += (rem % n) as isize * s;
                rem /= n;
            }
            starts.push(a);
        }
        let mut bytes = std::collections::HashSet::new();
        starts
            .iter()
            .any(|&a| (0..item as isize).any(|b| !bytes.insert(a + b)))
    }

    /// Every layout of up to three axes of length 0 to 4 with strides -7..=7 bytes, items of
    /// 1, 2 and 4 bytes: the check agrees with the brute force.
    #[test]
    fn r6_self_overlap_check_agrees_with_a_brute_force() {
        let lens = [0usize, 1, 2, 3, 4];
        let strides: Vec<isize> = (-7..=7).collect();
        let mut cases = 0;
        for item in [1usize, 2, 4] {
            for &n0 in &lens {
                for &n1 in &lens {
                    for &s0 in &strides {
                        for &s1 in &strides {
                            let (shape, st) = ([n0, n1], [s0, s1]);
                            assert_eq!(
                                self_overlaps(&shape, &st, item).unwrap(),
                                brute(&shape, &st, item),
                                "{shape:?} {st:?} item {item}"
                            );
                            for &(n2, s2) in &[(3usize, 9isize), (2, -13), (4, 1), (1, 0)] {
                                let (shape, st) = ([n0, n1, n2], [s0, s1, s2]);
                                assert_eq!(
                                    self_overlaps(&shape, &st, item).unwrap(),
                                    brute(&shape, &st, item),
                                    "{shape:?} {st:?} item {item}"
                                );
                                cases += 1;
                            }
                        }
                    }
                }
            }
        }
        assert!(cases > 10_000);
    }

    #[test]
    fn r6_self_overlap_examples() {
        // C order, a transpose, a reversed slice, every other column: distinct.
        assert!(!self_overlaps(&[3, 4], &[32, 8], 8).unwrap());
        assert!(!self_overlaps(&[4, 3], &[8, 32], 8).unwrap());
        assert!(!self_overlaps(&[3, 4], &[-64, 16], 8).unwrap());
        // A broadcast row, rows that share all but one element, a 0-d and an empty view.
        assert!(self_overlaps(&[5, 4], &[0, 4], 4).unwrap());
        assert!(self_overlaps(&[3, 4], &[4, 4], 4).unwrap());
        assert!(!self_overlaps(&[], &[], 4).unwrap());
        assert!(!self_overlaps(&[0, 3], &[0, 0], 4).unwrap());
        // Interleaved but disjoint (addresses 0 2 4 / 3 5 7), and interleaved and colliding.
        assert!(!self_overlaps(&[3, 2], &[2, 3], 1).unwrap());
        assert!(self_overlaps(&[3, 2], &[2, 4], 1).unwrap());
        // Strides that are not a multiple of the item: bytes shared.
        assert!(self_overlaps(&[2], &[3], 4).unwrap());
        assert!(!self_overlaps(&[2], &[5], 4).unwrap());
    }
}

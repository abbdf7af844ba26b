//! Growth of buffers that can fail (contract R1): when the system refuses memory, the call
//! returns [`Error::OutOfMemory`] instead of aborting the process, as `Vec`'s infallible growth
//! would. Every buffer whose size follows the input goes through here.

use crate::error::{Error, Result};

fn refused<T>(what: &'static str, len: usize) -> Error {
    Error::OutOfMemory {
        what,
        bytes: len.saturating_mul(std::mem::size_of::<T>()),
    }
}

/// Makes room in `v` for `len` elements in all, without changing its contents.
pub(crate) fn reserve<T>(v: &mut Vec<T>, len: usize, what: &'static str) -> Result<()> {
    if len > v.capacity() {
        v.try_reserve_exact(len - v.len())
            .map_err(|_| refused::<T>(what, len))?;
    }
    Ok(())
}

/// `v.push(item)`, failing cleanly (growth amortised as `Vec`'s own).
#[inline]
pub(crate) fn push<T>(v: &mut Vec<T>, item: T, what: &'static str) -> Result<()> {
    if v.len() == v.capacity() {
        let more = v.capacity().max(8);
        v.try_reserve(more)
            .map_err(|_| refused::<T>(what, v.len() + more))?;
    }
    v.push(item);
    Ok(())
}

/// `v.resize(len, value)`, failing cleanly.
pub(crate) fn resize<T: Clone>(
    v: &mut Vec<T>,
    len: usize,
    value: T,
    what: &'static str,
) -> Result<()> {
    reserve(v, len, what)?;
    v.resize(len, value);
    Ok(())
}

/// `vec![value; len]`, failing cleanly.
pub(crate) fn filled<T: Clone>(len: usize, value: T, what: &'static str) -> Result<Vec<T>> {
    let mut v = Vec::new();
    resize(&mut v, len, value, what)?;
    Ok(v)
}

/// Replaces the contents of `v` with `items`, of which there are `len`, failing cleanly.
pub(crate) fn refill<T>(
    v: &mut Vec<T>,
    len: usize,
    items: impl IntoIterator<Item = T>,
    what: &'static str,
) -> Result<()> {
    v.clear();
    reserve(v, len, what)?;
    v.extend(items);
    Ok(())
}

/// `items` collected into a new vector, room for its `len` items made first.
pub(crate) fn collected<T>(
    len: usize,
    items: impl IntoIterator<Item = T>,
    what: &'static str,
) -> Result<Vec<T>> {
    let mut v = Vec::new();
    refill(&mut v, len, items, what)?;
    Ok(v)
}

/// The first error of tasks that run in parallel and cannot return one (later ones are
/// dropped): a task that fails sets it, the others may stop early once it is set, and the
/// caller returns it.
#[derive(Default)]
pub(crate) struct FirstError {
    set: std::sync::atomic::AtomicBool,
    error: std::sync::Mutex<Option<Error>>,
}

impl FirstError {
    pub(crate) fn set(&self, e: Error) {
        let mut slot = self.error.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(e);
            self.set.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }

    pub(crate) fn is_set(&self) -> bool {
        self.set.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// `Ok(())` when no task failed, else the first failure.
    pub(crate) fn into_result(self) -> Result<()> {
        match self.error.into_inner().unwrap_or_else(|p| p.into_inner()) {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r1_a_refused_allocation_is_an_error_not_an_abort() {
        let mut v: Vec<u64> = Vec::new();
        let err = resize(&mut v, usize::MAX / 4, 0, "test buffer").unwrap_err();
        assert!(
            matches!(
                err,
                Error::OutOfMemory {
                    what: "test buffer",
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("out of memory"), "{err}");
        assert!(filled(isize::MAX as usize, 0u8, "x").is_err());
        assert!(collected(usize::MAX / 2, std::iter::empty::<u32>(), "x").is_err());
    }

    #[test]
    fn growth_keeps_contents() {
        let mut v = vec![1, 2];
        resize(&mut v, 4, 7, "t").unwrap();
        assert_eq!(v, [1, 2, 7, 7]);
        refill(&mut v, 3, [5, 6, 7], "t").unwrap();
        push(&mut v, 8, "t").unwrap();
        assert_eq!(v, [5, 6, 7, 8]);
        v.truncate(3);
        assert_eq!(v, [5, 6, 7]);
        assert_eq!(collected(2, [1u8, 2], "t").unwrap(), [1, 2]);
    }
}

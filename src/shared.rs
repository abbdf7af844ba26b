//! The one pointer wrapper through which parallel code shares a buffer between threads.

/// A raw pointer that may cross threads. Whoever shares one hands distinct threads disjoint
/// elements of the pointee, and waits for those threads before the pointee goes away or is
/// used otherwise.
#[derive(Clone, Copy)]
pub(crate) struct SharedPtr<T>(pub(crate) *mut T);

// SAFETY: a `SharedPtr` is only dereferenced by the threads of one parallel section, each on
// elements no other thread touches, while the caller that owns the pointee waits for them.
unsafe impl<T> Send for SharedPtr<T> {}
// SAFETY: as above; shared references to the wrapper only copy the pointer.
unsafe impl<T> Sync for SharedPtr<T> {}

impl<T> SharedPtr<T> {
    /// The pointer. A method, so that closures capture the whole (`Send`) wrapper, not its
    /// raw field.
    #[inline(always)]
    pub(crate) fn get(self) -> *mut T {
        self.0
    }
}

#[cfg(feature = "python")]
impl SharedPtr<u8> {
    /// The pointer as one to `T`: the bindings hold array data untyped until they dispatch on
    /// its dtype.
    #[inline(always)]
    pub(crate) fn typed<T>(self) -> *mut T {
        self.0.cast()
    }
}

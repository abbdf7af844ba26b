//! Stopping a long call early (contract R8: a long call answers Ctrl-C within a second).
//!
//! The caller installs a check with [`with_interrupt_check`] around a call. The crate's loops
//! over chunks of work (tiles of lanes, runs of rows, blocks of a long row, sampled rows) poll
//! between chunks; on the thread that installed the check, a poll runs the check at most every
//! [`POLL_EVERY`], and once it has said "stop", every later poll of that call, on that thread
//! or on a helper working for it, says so too. The remaining chunks are skipped and the call
//! returns [`Error::Interrupted`].
//!
//! Only the installing thread runs the check: the Python bindings' check takes the GIL and runs
//! the signal handlers, which CPython only runs on the main thread anyway, and a helper taking
//! the GIL would wait on the caller's Python thread. Without a check, a poll is one
//! thread-local read.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// Least time between two runs of the check. Reacquiring the GIL and running the signal
/// handlers costs microseconds; at this spacing the check costs nothing measurable, and a
/// Ctrl-C is seen well within the second R8 allows.
pub const POLL_EVERY: Duration = Duration::from_millis(50);

/// One installed check, on the stack of [`with_interrupt_check`] for its duration.
struct Watch<'a> {
    check: &'a dyn Fn() -> bool,
    stop: AtomicBool,
    next: Cell<Instant>,
}

thread_local! {
    /// The check installed on this thread, type-erased (see [`with_interrupt_check`]).
    static WATCH: Cell<*const Watch<'static>> = const { Cell::new(std::ptr::null()) };
    /// On a helper thread running a watched call's work: that call's stop flag.
    static HELPING: Cell<*const AtomicBool> = const { Cell::new(std::ptr::null()) };
}

/// Restores a thread-local pointer when dropped (also on unwinding).
struct Restore<T: 'static> {
    key: &'static std::thread::LocalKey<Cell<*const T>>,
    prev: *const T,
}

impl<T> Drop for Restore<T> {
    fn drop(&mut self) {
        self.key.with(|c| c.set(self.prev));
    }
}

fn set<T>(key: &'static std::thread::LocalKey<Cell<*const T>>, p: *const T) -> Restore<T> {
    Restore {
        key,
        prev: key.with(|c| c.replace(p)),
    }
}

/// Runs `f` with `check` installed on this thread: the crate's calls that `f` makes on this
/// thread run `check` between chunks of their work (at most every 50 ms), and when it returns
/// `true` they skip the rest of their work and return [`Error::Interrupted`]. What they wrote
/// into their outputs is then unspecified; nothing else is affected (the thread pool, later
/// calls). A call that does not return a `Result` (such as [`crate::logsumexp`]) returns NaN.
///
/// `check` is not run re-entrantly: calls made from inside it run unwatched. Calls made on
/// other threads are not watched.
///
/// ```
/// use logitkit::{with_interrupt_check, Error};
/// let x = vec![0.5f32; 1 << 20];
/// let mut out = vec![0.0f32; x.len()];
/// let t = logitkit::Temperature::Scalar(1.0);
/// let r = with_interrupt_check(&|| true, || logitkit::softmax_rows(&x, &mut out, 1024, t));
/// assert_eq!(r, Err(Error::Interrupted));
/// let r = with_interrupt_check(&|| false, || logitkit::softmax_rows(&x, &mut out, 1024, t));
/// assert_eq!(r, Ok(()));
/// ```
pub fn with_interrupt_check<R>(check: &dyn Fn() -> bool, f: impl FnOnce() -> R) -> R {
    // The first poll runs the check: a stop asked for before the call is seen at once.
    with_interrupt_check_from(Instant::now(), check, f)
}

/// [`with_interrupt_check`] whose first check is due at `first`. The Python bindings start it
/// one period after the call does: their check takes the GIL (about a microsecond), which a
/// short call should not pay, and a signal that came before the call is raised by Python
/// right after it anyway.
pub(crate) fn with_interrupt_check_from<R>(
    first: Instant,
    check: &dyn Fn() -> bool,
    f: impl FnOnce() -> R,
) -> R {
    let watch = Watch {
        check,
        stop: AtomicBool::new(false),
        next: Cell::new(first),
    };
    // SAFETY: only the lifetime is erased. The pointer is published in this thread's WATCH for
    // exactly as long as `watch` lives (the guard below restores the previous value before
    // `watch` is dropped, unwinding included), and helpers only get `&watch.stop`, for the
    // duration of a `run_shared` that returns before this frame does.
    let erased = unsafe {
        std::mem::transmute::<*const Watch<'_>, *const Watch<'static>>(&watch as *const _)
    };
    let _guard = set(&WATCH, erased);
    f()
}

/// Whether the current call should stop now: on the thread that installed a check, runs it
/// when it is due; on a helper working for a watched call, that call's flag. `false` when
/// nothing is installed.
#[inline]
pub(crate) fn poll() -> bool {
    let w = WATCH.with(|c| c.get());
    if w.is_null() {
        return helping_stopped();
    }
    // SAFETY: a non-null WATCH points to the live `Watch` of an enclosing
    // `with_interrupt_check` on this thread.
    let w = unsafe { &*w };
    if w.stop.load(Ordering::Relaxed) {
        return true;
    }
    let now = Instant::now();
    if now < w.next.get() {
        return false;
    }
    let stop = {
        // Calls made from inside the check run unwatched (no re-entrant check).
        let _unwatched = set(&WATCH, std::ptr::null());
        (w.check)()
    };
    w.next.set(Instant::now() + POLL_EVERY);
    if stop {
        w.stop.store(true, Ordering::Relaxed);
    }
    stop
}

#[inline]
fn helping_stopped() -> bool {
    let h = HELPING.with(|c| c.get());
    // SAFETY: a non-null HELPING points to the stop flag of a watched call whose
    // `run_shared` is running this helper's work (see `helping`).
    !h.is_null() && unsafe { &*h }.load(Ordering::Relaxed)
}

/// Whether the current call was told to stop, without running the check.
#[inline]
pub(crate) fn stopped() -> bool {
    let w = WATCH.with(|c| c.get());
    if w.is_null() {
        return helping_stopped();
    }
    // SAFETY: as in `poll`.
    unsafe { &*w }.stop.load(Ordering::Relaxed)
}

/// `Err(Interrupted)` when the current call was told to stop.
#[inline]
pub(crate) fn status() -> Result<()> {
    if stopped() {
        Err(Error::Interrupted)
    } else {
        Ok(())
    }
}

/// [`poll`] for item `i` of a loop over items of `elems` elements each: polls about every
/// 16k elements, so that loops over tiny items do not read the clock for each.
#[inline]
pub(crate) fn poll_at(i: usize, elems: usize) -> bool {
    let every = (16 * 1024 / elems.max(1)).max(1);
    if i.is_multiple_of(every) {
        poll()
    } else {
        stopped()
    }
}

/// The stop flag of the call watched on this thread (as the calling thread or as a helper),
/// for helpers about to run its work; null when unwatched.
pub(crate) fn flag() -> *const AtomicBool {
    let w = WATCH.with(|c| c.get());
    if w.is_null() {
        return HELPING.with(|c| c.get());
    }
    // SAFETY: as in `poll`.
    unsafe { &(*w).stop }
}

/// Runs `f` on a helper thread as part of the call whose stop flag is `flag` (from [`flag`]),
/// so that its polls see that call stop.
///
/// # Safety
/// `flag` is null or outlives the call of `f`.
pub(crate) unsafe fn helping<R>(flag: *const AtomicBool, f: impl FnOnce() -> R) -> R {
    let _guard = set(&HELPING, flag);
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r8_check_runs_at_most_every_poll_period_and_sticks() {
        let calls = Cell::new(0);
        let check = || {
            calls.set(calls.get() + 1);
            calls.get() >= 2
        };
        with_interrupt_check(&check, || {
            assert!(!poll(), "first poll runs the check, which says go on");
            assert!(!poll(), "too soon for the second run");
            assert_eq!(calls.get(), 1);
            std::thread::sleep(POLL_EVERY + Duration::from_millis(5));
            assert!(poll(), "second run says stop");
            assert!(poll() && stopped() && status().is_err());
            assert_eq!(
                calls.get(),
                2,
                "a stopped call does not run the check again"
            );
        });
        assert!(!poll() && !stopped() && status().is_ok());
    }

    #[test]
    fn r8_nested_calls_from_the_check_are_unwatched() {
        let inner = Cell::new(None);
        let check = || {
            inner.set(Some(poll()));
            true
        };
        with_interrupt_check(&check, || assert!(poll()));
        assert_eq!(inner.get(), Some(false));
    }

    #[test]
    fn r8_the_watch_is_removed_after_a_panic() {
        let r = std::panic::catch_unwind(|| {
            with_interrupt_check(&|| true, || {
                assert!(poll());
                panic!("boom");
            })
        });
        assert!(r.is_err());
        assert!(!stopped() && flag().is_null());
    }
}

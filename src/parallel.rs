//! The crate's threads (contracts S10, S11).
//!
//! A parallel call runs on the calling thread together with helper threads of the crate's own
//! crew (see `crew`), which take tasks from a shared counter; the caller never waits for a
//! helper that has not started. The crew records the process id that built it, and a call made
//! in a child after `fork()` (where the parent's helpers do not exist) builds a fresh crew
//! instead of waiting on dead threads. Small work runs on the calling thread alone.

use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::{Error, Result};

mod crew;

/// Environment variable that overrides the default thread count when the crate first needs it.
pub const NUM_THREADS_ENV: &str = "LOGITKIT_NUM_THREADS";

/// 0 until first read; then the thread count in force.
static NUM_THREADS: AtomicUsize = AtomicUsize::new(0);

/// The number of CPUs this process may use (affinity and cgroup quotas included).
pub fn available_cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Parses the value of `LOGITKIT_NUM_THREADS`: a positive integer.
pub fn parse_num_threads(value: &str) -> Result<usize> {
    match value.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(Error::invalid(
            NUM_THREADS_ENV,
            format!("{value:?}"),
            "a positive integer",
        )),
    }
}

fn default_num_threads() -> usize {
    match std::env::var(NUM_THREADS_ENV) {
        Ok(v) => parse_num_threads(&v).unwrap_or_else(|_| available_cpus()),
        Err(_) => available_cpus(),
    }
}

/// Sets the number of threads the crate's calls use (contract S11). Any `n >= 1` is accepted
/// and reported back by [`get_num_threads`]; a call uses at most 1024 threads, and
/// fewer if the system refuses them.
///
/// ```
/// logitkit::set_num_threads(2).unwrap();
/// assert_eq!(logitkit::get_num_threads(), 2);
/// assert!(logitkit::set_num_threads(0).is_err());
/// ```
pub fn set_num_threads(n: usize) -> Result<()> {
    if n == 0 {
        return Err(Error::invalid("n", n, "an integer >= 1"));
    }
    NUM_THREADS.store(n, Ordering::SeqCst);
    Ok(())
}

/// The number of threads the crate's calls use: the last [`set_num_threads`], else
/// `LOGITKIT_NUM_THREADS`, else the number of CPUs this process may use.
///
/// ```
/// assert!(logitkit::get_num_threads() >= 1);
/// ```
pub fn get_num_threads() -> usize {
    let n = NUM_THREADS.load(Ordering::SeqCst);
    if n != 0 {
        return n;
    }
    let d = default_num_threads();
    match NUM_THREADS.compare_exchange(0, d, Ordering::SeqCst, Ordering::SeqCst) {
        Ok(_) => d,
        Err(current) => current,
    }
}

/// The most threads a call uses (the calling thread and its helpers), whatever
/// [`set_num_threads`] says.
pub const MAX_WORKERS: usize = 1024;

/// Runs `work` on the calling thread and, at the same time, on up to `helpers` threads of the
/// crate's crew. `work` must be a loop that takes tasks from a shared source until none is left
/// (so that running it again after that is harmless and quick).
///
/// Returns when the calling thread's `work()` has returned and every helper that started has
/// finished. A helper that has not started by then never calls `work`: the calling thread does
/// not wait for a busy or sleeping helper, as it would with a rayon `install` or scope.
pub(crate) fn run_shared(helpers: usize, work: &(dyn Fn() + Sync)) {
    if helpers == 0 {
        work();
    } else {
        crew::run(helpers, work);
    }
}

/// Runs `f(i, &mut items[i])` for every item. When `parallel`, the calling thread and up to
/// `threads - 1` helper threads take items in order from a shared counter until none is left
/// (through [`run_shared`]), so a helper that starts late takes fewer items, or none, and is
/// not waited for. Where each result goes does not depend on who computed it.
pub(crate) fn each_shared<T: Send>(
    items: &mut [T],
    parallel: bool,
    f: impl Fn(usize, &mut T) + Sync,
) {
    let threads = if parallel {
        get_num_threads().min(items.len())
    } else {
        1
    };
    if threads <= 1 {
        items.iter_mut().enumerate().for_each(|(i, it)| f(i, it));
        return;
    }
    let n = items.len();
    let next = AtomicUsize::new(0);
    // The address as an integer, so the closure is Sync whatever T is.
    let base = items.as_mut_ptr() as usize;
    let work = || loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= n {
            break;
        }
        // SAFETY: the counter hands out each index below n exactly once, so this is the only
        // reference to items[i]; `items` outlives `run_shared`, which waits for every helper
        // that runs this closure.
        f(i, unsafe { &mut *(base as *mut T).add(i) });
    };
    run_shared(threads - 1, &work);
}

/// `f(&mut state, i)` for every `i` in `0..count`, results in index order. When `parallel`,
/// the calling thread and the helpers take tasks of `min_len` consecutive indices from a shared
/// counter (as [`each_shared`] takes items); each thread makes one `init()` state for all the
/// tasks it takes.
pub(crate) fn map_init<S, R: Send>(
    count: usize,
    min_len: usize,
    parallel: bool,
    init: impl Fn() -> S + Sync,
    f: impl Fn(&mut S, usize) -> R + Sync,
) -> Vec<R> {
    let min_len = min_len.max(1);
    let tasks = count.div_ceil(min_len);
    let threads = if parallel {
        get_num_threads().min(tasks)
    } else {
        1
    };
    if threads <= 1 {
        let mut st = init();
        return (0..count).map(|i| f(&mut st, i)).collect();
    }
    let mut out: Vec<Option<R>> = (0..count).map(|_| None).collect();
    let base = out.as_mut_ptr() as usize;
    let next = AtomicUsize::new(0);
    let work = || {
        let mut st = init();
        loop {
            let c = next.fetch_add(1, Ordering::Relaxed);
            if c >= tasks {
                break;
            }
            for i in c * min_len..((c + 1) * min_len).min(count) {
                let r = f(&mut st, i);
                // SAFETY: task c alone covers index i; `out` outlives `run_shared`, which waits
                // for every helper that runs this closure.
                unsafe { *(base as *mut Option<R>).add(i) = Some(r) };
            }
        }
    };
    run_shared(threads - 1, &work);
    out.into_iter()
        .map(|r| r.expect("every index is visited"))
        .collect()
}

/// `out[c] = f(c, c * chunk..(c * chunk + chunk).min(n))` for the chunks of `0..n`, shared as
/// [`each_shared`] shares items.
pub(crate) fn map_ranges<R: Send + Default>(
    n: usize,
    chunk: usize,
    out: &mut Vec<R>,
    parallel: bool,
    f: impl Fn(usize, Range<usize>) -> R + Sync,
) {
    out.clear();
    out.resize_with(n.div_ceil(chunk), R::default);
    each_shared(out, parallel, |c, r| {
        let start = c * chunk;
        *r = f(c, start..(start + chunk).min(n));
    });
}

/// `out[c] = f(c, &mut dst[range c])` for the chunks of `dst`, as [`map_ranges`].
pub(crate) fn map_chunks_mut<D: Send, R: Send + Default>(
    dst: &mut [D],
    chunk: usize,
    out: &mut Vec<R>,
    parallel: bool,
    f: impl Fn(usize, &mut [D]) -> R + Sync,
) {
    let base = dst.as_mut_ptr() as usize;
    map_ranges(dst.len(), chunk, out, parallel, |c, r| {
        // SAFETY: each chunk index is handed out once, and the ranges of distinct indices are
        // disjoint parts of `dst`, which outlives the call.
        let d = unsafe { std::slice::from_raw_parts_mut((base as *mut D).add(r.start), r.len()) };
        f(c, d)
    });
}

/// `f(c, &mut a[chunk c of a_chunk], &mut b[chunk c of b_chunk])` for the chunks of `a`
/// (`b` holding at least as many chunks), shared as [`each_shared`] shares items.
pub(crate) fn zip_chunks_mut<A: Send, B: Send>(
    a: &mut [A],
    a_chunk: usize,
    b: &mut [B],
    b_chunk: usize,
    parallel: bool,
    f: impl Fn(usize, &mut [A], &mut [B]) + Sync,
) {
    let (nb, bbase) = (b.len(), b.as_mut_ptr() as usize);
    map_chunks_mut(a, a_chunk, &mut Vec::<()>::new(), parallel, |c, ac| {
        let start = (c * b_chunk).min(nb);
        let len = b_chunk.min(nb - start);
        // SAFETY: as in `map_chunks_mut`: chunk `c` of `b` is touched by this call alone, and
        // `b` outlives the call.
        let bc = unsafe { std::slice::from_raw_parts_mut((bbase as *mut B).add(start), len) };
        f(c, ac, bc);
    });
}

/// Calls touching fewer elements than this run on the calling thread: waking a worker costs more.
pub(crate) const PARALLEL_MIN_WORK: usize = 24 * 1024;

/// True when a call touching `work` elements should use other threads: it is big enough, and
/// (unless it is very big) the helpers are awake or calls come often; see the crew module.
pub(crate) fn is_parallel(work: usize) -> bool {
    let threads = get_num_threads();
    work >= PARALLEL_MIN_WORK && threads > 1 && crew::worth_sharing(threads - 1, work)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s11_env_value_parsing() {
        assert_eq!(parse_num_threads("3"), Ok(3));
        assert_eq!(parse_num_threads(" 1 "), Ok(1));
        assert!(parse_num_threads("0").is_err());
        assert!(parse_num_threads("-2").is_err());
        assert!(parse_num_threads("two").is_err());
    }
}

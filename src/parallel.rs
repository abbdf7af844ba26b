//! The crate's threads (contracts S10, S11).
//!
//! A parallel call runs on the calling thread together with helper threads of the crate's own
//! crew (see `crew`), which take tasks in stretches (`Claims`); the caller never waits for a
//! helper that has not started. The crew records the process id that built it, and a call made
//! in a child after `fork()` (where the parent's helpers do not exist) builds a fresh crew
//! instead of waiting on dead threads. Small work runs on the calling thread alone.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::error::{Error, Result};

mod crew;

pub(crate) use crew::WAKE_MIN_WORK;

/// Environment variable that overrides the default thread count when the crate first needs it.
///
/// ```
/// use std::process::Command;
/// assert_eq!(logitkit::NUM_THREADS_ENV, "LOGITKIT_NUM_THREADS");
/// // Run a program that uses logitkit on 4 threads (unless it calls `set_num_threads`).
/// let mut child = Command::new("my-inference-server");
/// child.env(logitkit::NUM_THREADS_ENV, "4");
/// let set: Vec<_> = child.get_envs().collect();
/// assert_eq!(set, [("LOGITKIT_NUM_THREADS".as_ref(), Some("4".as_ref()))]);
/// ```
pub const NUM_THREADS_ENV: &str = "LOGITKIT_NUM_THREADS";

/// 0 until first read; then the thread count in force.
static NUM_THREADS: AtomicUsize = AtomicUsize::new(0);

/// The number of CPUs this process may use (affinity and cgroup quotas included).
///
/// ```
/// use logitkit::{available_cpus, get_num_threads, set_num_threads, MAX_THREADS};
/// let cpus = available_cpus();
/// assert!(cpus >= 1);
/// // For example, leave one CPU to the rest of the program.
/// set_num_threads((cpus - 1).clamp(1, MAX_THREADS)).unwrap();
/// assert_eq!(get_num_threads(), (cpus - 1).clamp(1, MAX_THREADS));
/// ```
pub fn available_cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// The largest thread count [`set_num_threads`] and `LOGITKIT_NUM_THREADS` accept (contract R5).
/// Larger counts are refused when given, never a failure of a later call.
///
/// ```
/// use logitkit::{get_num_threads, set_num_threads, MAX_THREADS};
/// assert_eq!(MAX_THREADS, 1024);
/// let err = set_num_threads(MAX_THREADS + 1).unwrap_err();
/// assert!(err.to_string().contains("1025"));
/// assert!(get_num_threads() <= MAX_THREADS);
/// ```
pub const MAX_THREADS: usize = 1024;

/// Parses the value of `LOGITKIT_NUM_THREADS`: an integer in `1..=`[`MAX_THREADS`].
pub fn parse_num_threads(value: &str) -> Result<usize> {
    match value.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_THREADS).contains(&n) => Ok(n),
        _ => Err(Error::invalid(
            NUM_THREADS_ENV,
            format!("{:?}", abbreviate(value.trim())),
            "an integer from 1 to 1024",
        )),
    }
}

/// `text` itself when short, else its first 20 characters, `...` and its length: a huge value
/// is not echoed whole in an error message (contract R7).
pub(crate) fn abbreviate(text: &str) -> String {
    let n = text.chars().count();
    if n <= 40 {
        text.to_string()
    } else {
        let head: String = text.chars().take(20).collect();
        format!("{head}... ({n} characters)")
    }
}

fn default_num_threads() -> usize {
    let cpus = available_cpus().clamp(1, MAX_THREADS);
    match std::env::var(NUM_THREADS_ENV) {
        Ok(v) => parse_num_threads(&v).unwrap_or(cpus),
        Err(_) => cpus,
    }
}

/// Sets the number of threads the crate's calls use (contracts S11, R5): an `n` from 1 to
/// [`MAX_THREADS`] (1024), reported back by [`get_num_threads`]; any other `n` is an
/// [`Error::InvalidParameter`] and leaves the setting unchanged. A call uses fewer threads if
/// the system refuses them.
///
/// ```
/// logitkit::set_num_threads(2).unwrap();
/// assert_eq!(logitkit::get_num_threads(), 2);
/// assert!(logitkit::set_num_threads(0).is_err());
/// assert!(logitkit::set_num_threads(logitkit::MAX_THREADS + 1).is_err());
/// assert_eq!(logitkit::get_num_threads(), 2);
/// ```
pub fn set_num_threads(n: usize) -> Result<()> {
    if !(1..=MAX_THREADS).contains(&n) {
        return Err(Error::invalid("n", n, "an integer from 1 to 1024"));
    }
    NUM_THREADS.store(n, Ordering::SeqCst);
    Ok(())
}

/// The number of threads the crate's calls use: the last [`set_num_threads`], else
/// `LOGITKIT_NUM_THREADS` (when it is an integer from 1 to [`MAX_THREADS`]), else the number of
/// CPUs this process may use (at most [`MAX_THREADS`]).
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
pub const MAX_WORKERS: usize = MAX_THREADS;

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
        return;
    }
    let flag = crate::interrupt::flag() as usize;
    if flag == 0 {
        crew::run(helpers, work);
    } else {
        // The check runs here once if it is due, before any helper can take the work: were the
        // helpers to take every chunk (a descheduled caller, as under valgrind), the calling
        // thread would otherwise never poll, and a stop asked for before the call would go
        // unseen.
        crate::interrupt::poll();
        // Helpers see the call's stop flag, so that their polls skip the remaining chunks
        // once the calling thread's check said to stop (the address as an integer, so that the
        // closure is Sync).
        // SAFETY: the flag lives in the frame of the `with_interrupt_check` running this call,
        // which stays suspended in here until `crew::run` returns, and `crew::run` returns only
        // after every helper that started `watched` has finished it.
        let watched = || unsafe { crate::interrupt::helping(flag as *const _, work) };
        crew::run(helpers, &watched);
    }
}

/// Runs `f(i, &mut items[i])` for every item. When `parallel`, the calling thread and up to
/// `threads - 1` helper threads share the items through [`Claims`]: each thread takes its own
/// stretch of consecutive items first (the caller the first stretch), then helps the others
/// from the end of theirs, so a helper that starts late takes fewer items, or none, and is not
/// waited for. Where each result goes does not depend on who computed it.
///
/// The stretches keep a thread on the same items from one call to the next, and from a row's
/// first pass to its second, so the blocks a thread wrote are still in its own core's cache
/// when it reads them back, which measured faster than handing the items out in turns from
/// one counter (`benches/results/tuning.md`, "parallel::each_shared").
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
    let claims = Claims::new(items.len(), threads);
    // The address as an integer, so the closure is Sync whatever T is.
    let base = items.as_mut_ptr() as usize;
    let seats = AtomicUsize::new(1);
    let work = || {
        // The caller sits first; helpers take the other seats as they come.
        let seat = if crew::on_helper() {
            seats.fetch_add(1, Ordering::Relaxed)
        } else {
            0
        };
        claims.run(seat, |i| {
            // SAFETY: `Claims` hands out each index below items.len() exactly once, so this is
            // the only reference to items[i]; `items` outlives `run_shared`, which waits for
            // every helper that runs this closure.
            f(i, unsafe { &mut *(base as *mut T).add(i) })
        });
    };
    run_shared(threads - 1, &work);
}

/// Most stretches [`Claims`] splits the items into (threads beyond this only help).
const MAX_STRETCHES: usize = 64;

/// The items `0..n` in up to [`MAX_STRETCHES`] stretches of consecutive indices. A stretch is
/// one atomic word holding its unclaimed range `front..back`: its owner claims from the
/// front, other threads from the back, so each index is claimed exactly once.
struct Claims {
    stretches: [Padded; MAX_STRETCHES],
    count: usize,
}

/// One stretch's `front | back << 32`, alone on its cache line so that owners do not contend.
#[repr(align(64))]
struct Padded(AtomicU64);

impl Claims {
    fn new(n: usize, threads: usize) -> Claims {
        let count = threads.clamp(1, MAX_STRETCHES).min(n.max(1));
        assert!(n < 1 << 32, "at most 2^32 - 1 items");
        let stretches = std::array::from_fn(|s| {
            let (front, back) = if s < count {
                (s * n / count, (s + 1) * n / count)
            } else {
                (0, 0)
            };
            Padded(AtomicU64::new(front as u64 | (back as u64) << 32))
        });
        Claims { stretches, count }
    }

    /// One index of stretch `s`, from its front or its back, or `None` when it is used up.
    fn claim(&self, s: usize, from_front: bool) -> Option<usize> {
        let word = &self.stretches[s].0;
        let mut cur = word.load(Ordering::Relaxed);
        loop {
            let (front, back) = (cur & 0xffff_ffff, cur >> 32);
            if front >= back {
                return None;
            }
            let (next, taken) = if from_front {
                (cur + 1, front)
            } else {
                (cur - (1 << 32), back - 1)
            };
            match word.compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return Some(taken as usize),
                Err(now) => cur = now,
            }
        }
    }

    /// `f(i)` for every index `seat` gets: its own stretch front to back (if it has one), then
    /// the others' from their backs, the next seat's first.
    fn run(&self, seat: usize, mut f: impl FnMut(usize)) {
        if seat < self.count {
            while let Some(i) = self.claim(seat, true) {
                f(i);
            }
        }
        for k in 1..=self.count {
            let s = (seat + k) % self.count;
            while let Some(i) = self.claim(s, false) {
                f(i);
            }
        }
    }
}

/// `f(&mut state, i)` for every `i` in `0..count`, results in index order. When `parallel`,
/// the calling thread and the helpers take tasks of `min_len` consecutive indices from a shared
/// counter (as [`each_shared`] takes items); each thread makes one `init()` state for all the
/// tasks it takes. The results' vector is the only allocation (none for `R = ()`), and one
/// that fails is an error (contract R1).
pub(crate) fn map_init<S, R: Send>(
    count: usize,
    min_len: usize,
    parallel: bool,
    init: impl Fn() -> S + Sync,
    f: impl Fn(&mut S, usize) -> R + Sync,
) -> crate::Result<Vec<R>> {
    const WHAT: &str = "the results of a call's tasks";
    let min_len = min_len.max(1);
    let tasks = count.div_ceil(min_len);
    let threads = if parallel {
        get_num_threads().min(tasks)
    } else {
        1
    };
    if threads <= 1 {
        let mut st = init();
        return crate::scratch::collected(count, (0..count).map(|i| f(&mut st, i)), WHAT);
    }
    let mut out: Vec<Option<R>> = crate::scratch::collected(count, (0..count).map(|_| None), WHAT)?;
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
    let results = out.into_iter().map(|r| r.expect("every index is visited"));
    crate::scratch::collected(count, results, WHAT)
}

/// The results of a function over the chunks of a range, in chunk order: inline when there is
/// one chunk. Rows of at most one block, the common case, then take no heap allocation, which
/// could fail (and abort the process) once a call's results hold all the memory there is
/// (contract R1).
pub(crate) enum Chunks<R> {
    One([R; 1]),
    Many(Vec<R>),
}

impl<R> Chunks<R> {
    /// The results added in chunk order.
    pub(crate) fn sum<T: std::iter::Sum<R>>(self) -> T {
        match self {
            Chunks::One(one) => one.into_iter().sum(),
            Chunks::Many(many) => many.into_iter().sum(),
        }
    }
}

impl<R> std::ops::Deref for Chunks<R> {
    type Target = [R];
    fn deref(&self) -> &[R] {
        match self {
            Chunks::One(one) => one,
            Chunks::Many(many) => many,
        }
    }
}

/// [`map_ranges`] into a [`Chunks`].
pub(crate) fn ranges_mapped<R: Send + Default>(
    n: usize,
    chunk: usize,
    parallel: bool,
    f: impl Fn(usize, Range<usize>) -> R + Sync,
) -> Chunks<R> {
    if 0 < n && n <= chunk {
        return Chunks::One([f(0, 0..n)]);
    }
    let mut out = Vec::new();
    map_ranges(n, chunk, &mut out, parallel, f);
    Chunks::Many(out)
}

/// [`map_chunks_mut`] into a [`Chunks`].
pub(crate) fn chunks_mapped_mut<D: Send, R: Send + Default>(
    dst: &mut [D],
    chunk: usize,
    parallel: bool,
    f: impl Fn(usize, &mut [D]) -> R + Sync,
) -> Chunks<R> {
    if !dst.is_empty() && dst.len() <= chunk {
        return Chunks::One([f(0, dst)]);
    }
    let mut out = Vec::new();
    map_chunks_mut(dst, chunk, &mut out, parallel, f);
    Chunks::Many(out)
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

    /// Every index of `0..n` reaches exactly one of `threads` threads sitting at `seats`.
    fn claims_each_once(n: usize, threads: usize, seats: &[usize]) {
        let claims = Claims::new(n, threads);
        let hits: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
        std::thread::scope(|sc| {
            for &seat in seats {
                let (claims, hits) = (&claims, &hits);
                sc.spawn(move || {
                    claims.run(seat, |i| {
                        hits[i].fetch_add(1, Ordering::Relaxed);
                    })
                });
            }
        });
        for (i, h) in hits.iter().enumerate() {
            assert_eq!(
                h.load(Ordering::Relaxed),
                1,
                "index {i} of {n}, seats {seats:?}"
            );
        }
    }

    #[test]
    fn r8_a_shared_call_runs_a_due_check_even_when_the_caller_takes_no_work() {
        // The caller's share of the work does nothing (as when helpers took every chunk): the
        // stop asked for before the call is still seen.
        let stopped = crate::interrupt::with_interrupt_check(&|| true, || {
            run_shared(1, &|| {});
            crate::interrupt::stopped()
        });
        assert!(stopped);
    }

    #[test]
    fn claims_hand_out_every_index_once() {
        for n in [1, 2, 7, 8, 64, 1000] {
            claims_each_once(n, 2, &[0, 1]);
            claims_each_once(n, 2, &[0]); // the helper never came
            claims_each_once(n, 2, &[1]); // a nested call on a helper
            claims_each_once(n, 4, &[0, 1, 2, 3]);
            claims_each_once(n, 4, &[0, 3]);
            claims_each_once(n, 100, &[0, 1, 64, 70, 99]); // seats past the last stretch help
        }
        for _ in 0..200 {
            claims_each_once(37, 3, &[0, 1, 2]);
        }
    }

    #[test]
    fn claims_give_each_seat_its_own_stretch_first() {
        let claims = Claims::new(10, 2);
        let mut got = vec![];
        claims.run(1, |i| got.push(i));
        // Seat 1's stretch front to back, then seat 0's from its back.
        assert_eq!(got, [5, 6, 7, 8, 9, 4, 3, 2, 1, 0]);
        let claims = Claims::new(10, 2);
        assert_eq!(claims.claim(0, true), Some(0));
        assert_eq!(claims.claim(0, false), Some(4));
        let mut got = vec![];
        claims.run(0, |i| got.push(i));
        assert_eq!(got, [1, 2, 3, 9, 8, 7, 6, 5]);
    }

    #[test]
    fn s11_env_value_parsing() {
        assert_eq!(parse_num_threads("3"), Ok(3));
        assert_eq!(parse_num_threads(" 1 "), Ok(1));
        assert!(parse_num_threads("0").is_err());
        assert!(parse_num_threads("-2").is_err());
        assert!(parse_num_threads("two").is_err());
    }

    #[test]
    fn r5_env_value_above_the_maximum_is_refused() {
        assert_eq!(parse_num_threads("1024"), Ok(MAX_THREADS));
        assert!(parse_num_threads("1025").is_err());
        assert!(parse_num_threads("2305843009213693952").is_err());
        let huge = "9".repeat(600);
        let msg = parse_num_threads(&huge).unwrap_err().to_string();
        assert!(msg.contains("LOGITKIT_NUM_THREADS"), "{msg}");
        assert!(msg.len() < 200, "the value is abbreviated: {msg}");
    }
}

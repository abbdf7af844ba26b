//! The crate's own thread pool (contracts S10, S11).
//!
//! A private rayon pool, not rayon's global one: the pool records the process id that built it,
//! and a call made in a child after `fork()` (where the pool's threads do not exist) builds a
//! fresh pool instead of waiting forever on the dead one. Small work runs on the calling thread
//! and never touches the pool.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use crate::error::{Error, Result};

/// Environment variable that overrides the default thread count when the crate first needs it.
pub const NUM_THREADS_ENV: &str = "LOGITKIT_NUM_THREADS";

/// 0 until first read; then the thread count in force.
static NUM_THREADS: AtomicUsize = AtomicUsize::new(0);

struct Pool {
    pool: Arc<rayon::ThreadPool>,
    threads: usize,
    pid: u32,
}

fn pool_slot() -> &'static Mutex<Option<Pool>> {
    static SLOT: OnceLock<Mutex<Option<Pool>>> = OnceLock::new();
    SLOT.get_or_init(|| Mutex::new(None))
}

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
/// and reported back by [`get_num_threads`]; pools start at most [`MAX_WORKERS`] threads, and
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

/// A pool with exactly `threads` workers, valid in this process.
fn pool(threads: usize) -> Arc<rayon::ThreadPool> {
    let pid = std::process::id();
    let mut slot = pool_slot().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = slot.as_ref() {
        if p.pid == pid && p.threads == threads {
            return p.pool.clone();
        }
        if p.pid != pid {
            // Inherited through fork(): its threads are gone, and dropping it would try to
            // talk to them. Leak it.
            if let Some(old) = slot.take() {
                std::mem::forget(old.pool);
            }
        }
    }
    let build = |n: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .thread_name(|i| format!("logitkit-{i}"))
            .build()
    };
    // More workers than MAX_WORKERS only cost memory; if the system refuses the threads, fall
    // back to one per CPU rather than fail the call.
    let built = build(threads.min(MAX_WORKERS))
        .or_else(|_| build(available_cpus().min(threads)))
        .or_else(|_| build(1))
        .expect("cannot start even one logitkit worker thread");
    let built = Arc::new(built);
    *slot = Some(Pool {
        pool: built.clone(),
        threads,
        pid,
    });
    built
}

/// Runs `f` inside the crate's pool, so that rayon parallel iterators in it use that pool.
pub(crate) fn install<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    pool(get_num_threads()).install(f)
}

/// The most worker threads a pool starts, whatever [`set_num_threads`] says.
pub const MAX_WORKERS: usize = 1024;

/// Calls touching fewer elements than this run on the calling thread: waking a worker costs more.
pub(crate) const PARALLEL_MIN_WORK: usize = 32 * 1024;

/// True when a call touching `work` elements should use the pool.
pub(crate) fn is_parallel(work: usize) -> bool {
    work >= PARALLEL_MIN_WORK && get_num_threads() > 1
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

//! The helper threads that share a call's work with the calling thread ([`super::run_shared`]).
//!
//! Why not the rayon pool: a rayon worker that finds no work goes to sleep within microseconds,
//! and waking it again costs the caller a futex system call and the helper tens of microseconds
//! on a virtual machine, more than a call of a few tens of microseconds gains from it
//! (`benches/results/tuning.md`, "parallel::crew"). A crew helper instead, after its last job:
//!
//! 1. spins on the job flag for 50 µs (the next pass of the same call comes within
//!    microseconds);
//! 2. polls with `sched_yield` until [`spin_window`] (2 ms) has passed, as OpenMP runtimes and
//!    ONNX Runtime's pool spin, so that a call soon after finds it awake; `sched_yield` gives
//!    the CPU to any other runnable thread, so the polling takes no time from them;
//! 3. naps on its own timer, 1 ms at a time, and polls again if calls were made meanwhile: no
//!    caller pays for waking it, and small calls that come often find it polling again;
//! 4. parks after 1 s without calls.
//!
//! A small call uses only polling helpers (it never waits for a napping one); a big call wakes
//! them whatever they do ([`worth_sharing`]).
//!
//! One caller at a time holds the crew. A call that finds it held (another thread's call, or a
//! nested call from a helper) runs its work alone, which `run_shared`'s contract allows.

use std::any::Any;
use std::cell::Cell;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicU8, AtomicUsize, Ordering::*};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// Environment variable: microseconds a helper keeps spinning after its last job (default
/// [`DEFAULT_SPIN_US`]); 0 parks at once.
pub const SPIN_ENV: &str = "LOGITKIT_SPIN_US";

/// For this long after a job a helper busy-waits (reacting in nanoseconds to the next pass of
/// the same call) before it turns to polite polling.
const HOT_SPIN: Duration = Duration::from_micros(50);

/// Default of [`SPIN_ENV`].
pub const DEFAULT_SPIN_US: u64 = 2000;

fn spin_window() -> Duration {
    static SPIN: OnceLock<Duration> = OnceLock::new();
    *SPIN.get_or_init(|| {
        let us = std::env::var(SPIN_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(DEFAULT_SPIN_US);
        Duration::from_micros(us)
    })
}

/// A call touching at least this many elements wakes helpers that are not polling. Waking one
/// costs the caller a system call and the helper its wake-up latency, more than a smaller
/// call can gain from a second thread (`benches/results/tuning.md`, "WAKE_MIN_WORK").
pub(crate) const WAKE_MIN_WORK: usize = 1 << 18;

/// After its polling window a helper naps for this long at a time (woken by its own timer, so
/// no caller pays for waking it) and goes back to polling if calls were made meanwhile: after a
/// pause, a run of small calls finds the helpers polling again within about this long.
const NAP: Duration = Duration::from_millis(1);

/// After this long without a call a helper parks until a caller wakes it.
const NAP_FOR: Duration = Duration::from_secs(1);

/// When [`worth_sharing`] was last asked: nanoseconds since the first ask, 0 for never.
static LAST_ASK: AtomicU64 = AtomicU64::new(0);

fn now_ns() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    (BASE.get_or_init(Instant::now).elapsed().as_nanos() as u64).max(1)
}

/// Whether a call touching `work` elements should share it with `helpers` helpers: when it is
/// big (then the helpers are woken whatever they do), or when those helpers are polling (they
/// join within a microsecond). A small call never waits for a napping helper, and pays for
/// waking one only when it has parked after a long idle spell (so that the next calls find it
/// polling); it then runs alone.
pub(super) fn worth_sharing(helpers: usize, work: usize) -> bool {
    LAST_ASK.store(now_ns(), Relaxed);
    if work >= WAKE_MIN_WORK {
        return true;
    }
    let sh = crew();
    let mut hs = sh.helpers.lock().unwrap_or_else(|e| e.into_inner());
    if hs.len() < helpers {
        // Start them (they start polling) for the next calls; this one runs alone.
        staff(&sh, &mut hs, helpers);
        return false;
    }
    let mut polling = true;
    for h in &hs[..helpers] {
        match h.state.load(SeqCst) {
            POLLING => {}
            PARKED => {
                polling = false;
                h.thread.unpark();
            }
            _ => polling = false,
        }
    }
    polling
}

/// One call's work, on the calling thread's stack while the call lasts.
struct Job {
    work: *const (dyn Fn() + Sync + 'static),
    /// Helpers `0..wanted` take part.
    wanted: usize,
}

/// [`Helper::state`]: spinning or polling for a job, or inside one.
const POLLING: u8 = 0;
/// [`Helper::state`]: asleep on a timer ([`NAP`]).
const NAPPING: u8 = 1;
/// [`Helper::state`]: asleep until unparked.
const PARKED: u8 = 2;

struct Helper {
    thread: Thread,
    /// [`POLLING`], [`NAPPING`] or [`PARKED`], set by the helper.
    state: AtomicU8,
    /// Set when the crew no longer wants this helper: it exits instead of waiting again.
    retired: AtomicBool,
}

struct Shared {
    /// A caller holds the crew.
    held: AtomicBool,
    /// Bumped for every job.
    epoch: AtomicU64,
    /// The current job; null between jobs.
    job: AtomicPtr<Job>,
    /// Helpers that may be reading `job` or running its work.
    inside: AtomicUsize,
    /// A panic from a helper's work, for the caller to resume.
    panic: Mutex<Option<Box<dyn Any + Send>>>,
    helpers: Mutex<Vec<Arc<Helper>>>,
}

struct Crew {
    shared: Arc<Shared>,
    /// [`forks`] when this crew was built.
    forks: u64,
}

/// How many times this process is a `fork()` child of a process that had loaded this crate: a
/// child's helpers do not exist (only the forking thread is copied), so a changed count means
/// a fresh crew. Counted by a `pthread_atfork` child handler, because asking for the process
/// id (`getpid`, a system call of ~120 ns here) on every parallel pass would cost more.
static FORKS: AtomicU64 = AtomicU64::new(0);

#[cfg(unix)]
extern "C" fn count_fork_in_child() {
    // Async-signal-safe: one atomic add.
    FORKS.fetch_add(1, SeqCst);
}

fn forks() -> u64 {
    #[cfg(unix)]
    {
        static REGISTERED: std::sync::Once = std::sync::Once::new();
        REGISTERED.call_once(|| {
            extern "C" {
                fn pthread_atfork(
                    prepare: Option<extern "C" fn()>,
                    parent: Option<extern "C" fn()>,
                    child: Option<extern "C" fn()>,
                ) -> i32;
            }
            // SAFETY: POSIX `pthread_atfork` with a child handler that only does an atomic
            // add, and no prepare or parent handlers.
            let rc = unsafe { pthread_atfork(None, None, Some(count_fork_in_child)) };
            assert_eq!(rc, 0, "pthread_atfork failed");
        });
    }
    FORKS.load(SeqCst)
}

/// The crew in use: a leaked `Crew` published once per process (and once more in each `fork()`
/// child). Lock-free on purpose (contract R4): a mutex here was held by another thread of the
/// parent at a `fork()` now and then, and a child that then asked for its crew waited forever
/// for a thread that does not exist in it. Crews are never freed, so a pointer read from here
/// stays valid.
static SLOT: AtomicPtr<Crew> = AtomicPtr::new(std::ptr::null_mut());

fn crew() -> Arc<Shared> {
    let forks = forks();
    loop {
        let cur = SLOT.load(Acquire);
        // SAFETY: a non-null pointer here came from `Box::into_raw` below and is never freed.
        if let Some(c) = unsafe { cur.as_ref() } {
            if c.forks == forks {
                return c.shared.clone();
            }
        }
        // None yet, or inherited through fork(): the parent's helpers do not exist here. The
        // old crew is leaked rather than dropped (its helpers may be using it, or, in a child,
        // its locks may be held by threads that are gone).
        let fresh = Box::into_raw(Box::new(Crew {
            shared: Arc::new(Shared {
                held: AtomicBool::new(false),
                epoch: AtomicU64::new(0),
                job: AtomicPtr::new(std::ptr::null_mut()),
                inside: AtomicUsize::new(0),
                panic: Mutex::new(None),
                helpers: Mutex::new(Vec::new()),
            }),
            forks,
        }));
        match SLOT.compare_exchange(cur, fresh, AcqRel, Acquire) {
            // SAFETY: just published, never freed.
            Ok(_) => return unsafe { &*fresh }.shared.clone(),
            // Another thread published one first: drop ours (nobody else saw it) and use that.
            // SAFETY: `fresh` came from `Box::into_raw` and was not published.
            Err(_) => drop(unsafe { Box::from_raw(fresh) }),
        }
    }
}

/// [`staff`]s the crew with `n` helpers and wakes those of them that are not polling.
fn call_helpers(sh: &Arc<Shared>, n: usize) {
    let mut hs = sh.helpers.lock().unwrap_or_else(|e| e.into_inner());
    staff(sh, &mut hs, n);
    for h in hs.iter().take(n) {
        if h.state.load(SeqCst) != POLLING {
            h.thread.unpark();
        }
    }
}

/// Starts helpers until there are `n` (or the system refuses more), and retires those beyond
/// what the current thread count can use (so `set_num_threads` bounds the threads alive).
fn staff(sh: &Arc<Shared>, hs: &mut Vec<Arc<Helper>>, n: usize) {
    let keep = super::get_num_threads().min(super::MAX_WORKERS) - 1;
    while hs.len() > keep.max(n) {
        if let Some(h) = hs.pop() {
            h.retired.store(true, SeqCst);
            h.thread.unpark();
        }
    }
    while hs.len() < n {
        let me = hs.len();
        let (tx, rx) = std::sync::mpsc::channel();
        let shared = sh.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("logitkit-helper-{me}"))
            .spawn(move || {
                let helper = Arc::new(Helper {
                    thread: std::thread::current(),
                    state: AtomicU8::new(POLLING),
                    retired: AtomicBool::new(false),
                });
                // The receiver waits for this; it cannot be gone.
                let _ = tx.send(helper.clone());
                helper_loop(me, &shared, &helper);
            });
        match spawned.ok().and_then(|_| rx.recv().ok()) {
            Some(h) => hs.push(h),
            None => break,
        }
    }
}

thread_local! {
    /// Set on the crew's helper threads.
    static ON_HELPER: Cell<bool> = const { Cell::new(false) };
}

/// Whether the current thread is one of the crew's helpers.
pub(super) fn on_helper() -> bool {
    ON_HELPER.with(Cell::get)
}

fn helper_loop(me: usize, sh: &Shared, helper: &Helper) {
    ON_HELPER.with(|h| h.set(true));
    let mut seen = sh.epoch.load(Acquire);
    let mut last_job = Instant::now();
    loop {
        let mut spins = 0u32;
        let mut hot = true;
        loop {
            let e = sh.epoch.load(Acquire);
            if e != seen {
                seen = e;
                break;
            }
            if helper.retired.load(Relaxed) {
                return;
            }
            spins += 1;
            // Right after a job, the next pass of the same call usually follows within
            // microseconds: spin on the flag (tens of nanoseconds to react). Later, poll.
            if spins.is_multiple_of(16) && !hot && last_job.elapsed() >= spin_window() {
                let idle = last_job.elapsed() >= NAP_FOR;
                let state = if idle { PARKED } else { NAPPING };
                let nap_start = now_ns();
                helper.state.store(state, SeqCst);
                if sh.epoch.load(SeqCst) == seen && !helper.retired.load(SeqCst) {
                    if idle {
                        std::thread::park();
                    } else {
                        std::thread::park_timeout(NAP);
                    }
                }
                helper.state.store(POLLING, SeqCst);
                // Poll again if woken by a caller, or if calls were made during the nap.
                if idle || sh.epoch.load(SeqCst) != seen || LAST_ASK.load(Relaxed) >= nap_start {
                    last_job = Instant::now();
                    hot = true;
                    spins = 0;
                }
                continue;
            }
            if hot {
                if spins.is_multiple_of(64) && last_job.elapsed() >= HOT_SPIN {
                    hot = false;
                }
                std::hint::spin_loop();
            } else {
                // Polite polling: any other runnable thread on this CPU (another library's
                // worker, the next job of the process) runs first, so the waiting helper takes
                // no time from it; an otherwise idle CPU comes back here within a microsecond.
                std::thread::yield_now();
            }
        }
        sh.inside.fetch_add(1, SeqCst);
        let job = sh.job.load(SeqCst);
        if !job.is_null() {
            // SAFETY: `job` was published by a caller that does not return (and so keeps the
            // Job and its work alive) until `inside` is back to 0, which includes this helper.
            let job = unsafe { &*job };
            if me < job.wanted {
                // SAFETY: as above.
                let work = unsafe { &*job.work };
                if let Err(p) = std::panic::catch_unwind(AssertUnwindSafe(work)) {
                    *sh.panic.lock().unwrap_or_else(|e| e.into_inner()) = Some(p);
                }
                last_job = Instant::now();
            }
        }
        sh.inside.fetch_sub(1, Release);
    }
}

/// Runs `work` on the calling thread and on up to `helpers` crew helpers at once; see
/// [`super::run_shared`].
pub(super) fn run(helpers: usize, work: &(dyn Fn() + Sync)) {
    let sh = crew();
    if sh
        .held
        .compare_exchange(false, true, Acquire, Relaxed)
        .is_err()
    {
        work();
        return;
    }
    let helpers = helpers.min(super::MAX_WORKERS - 1);
    let job = Job {
        // SAFETY: only the lifetime is erased; helpers dereference the pointer only while this
        // call waits for them (see `Withdraw`).
        work: unsafe {
            std::mem::transmute::<*const (dyn Fn() + Sync + '_), *const (dyn Fn() + Sync + 'static)>(
                work,
            )
        },
        wanted: helpers,
    };
    sh.job.store(&job as *const Job as *mut Job, SeqCst);
    sh.epoch.fetch_add(1, SeqCst);
    call_helpers(&sh, helpers);
    /// Withdraws the job, waits for the helpers inside it and frees the crew, also if `work`
    /// unwinds; a helper's panic is kept for the caller.
    struct Withdraw<'a>(&'a Shared, &'a Cell<Option<Box<dyn Any + Send>>>);
    impl Drop for Withdraw<'_> {
        fn drop(&mut self) {
            let sh = self.0;
            sh.job.store(std::ptr::null_mut(), SeqCst);
            let mut spins = 0u32;
            while sh.inside.load(SeqCst) != 0 {
                if spins < 1 << 12 {
                    std::hint::spin_loop();
                    spins += 1;
                } else {
                    std::thread::yield_now();
                }
            }
            self.1
                .set(sh.panic.lock().unwrap_or_else(|e| e.into_inner()).take());
            sh.held.store(false, Release);
        }
    }
    let helper_panic = Cell::new(None);
    {
        let _withdraw = Withdraw(&sh, &helper_panic);
        work();
    }
    if let Some(p) = helper_panic.take() {
        std::panic::resume_unwind(p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    fn on_helper() -> bool {
        std::thread::current()
            .name()
            .is_some_and(|n| n.starts_with("logitkit-helper"))
    }

    /// Crew tests that need the helper to join take turns (other tests may still hold the crew
    /// for a moment, hence the retries below).
    static TURN: Mutex<()> = Mutex::new(());

    /// Runs `helper_part` on a helper: runs work with one helper, the caller's part waiting
    /// (up to 1 s) until a helper has entered; tries again while the crew was held elsewhere.
    fn run_with_helper(helper_part: impl Fn() + Sync) {
        for _ in 0..50 {
            let entered = AtomicBool::new(false);
            let work = || {
                if on_helper() {
                    entered.store(true, SeqCst);
                    helper_part();
                } else {
                    let t = Instant::now();
                    while !entered.load(SeqCst) && t.elapsed() < Duration::from_secs(1) {
                        std::hint::spin_loop();
                    }
                }
            };
            run(1, &work);
            if entered.load(SeqCst) {
                return;
            }
        }
        panic!("no helper joined in 50 tries");
    }

    #[test]
    fn helpers_run_the_work_and_the_crew_is_free_afterwards() {
        let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
        let helper_ran = AtomicUsize::new(0);
        run_with_helper(|| {
            helper_ran.fetch_add(1, SeqCst);
        });
        assert_eq!(helper_ran.load(SeqCst), 1);
        assert_eq!(crew().inside.load(SeqCst), 0);
    }

    #[test]
    fn a_helper_panic_reaches_the_caller_and_the_crew_still_works() {
        let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
        let caught = std::panic::catch_unwind(AssertUnwindSafe(|| {
            run_with_helper(|| panic!("helper boom"));
        }));
        let payload = caught.expect_err("the helper's panic is resumed on the caller");
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"helper boom"));
        let again = AtomicUsize::new(0);
        run_with_helper(|| {
            again.fetch_add(1, SeqCst);
        });
        assert_eq!(again.load(SeqCst), 1);
    }

    #[test]
    fn concurrent_callers_each_finish_their_own_work() {
        let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
        // Several threads share one crew: whoever does not hold it runs alone. Every task of
        // every caller is done exactly once.
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..200 {
                        let next = AtomicUsize::new(0);
                        let done: Vec<AtomicUsize> = (0..64).map(|_| AtomicUsize::new(0)).collect();
                        let work = || loop {
                            let i = next.fetch_add(1, Relaxed);
                            if i >= done.len() {
                                break;
                            }
                            done[i].fetch_add(1, Relaxed);
                        };
                        run(1, &work);
                        assert!(done.iter().all(|d| d.load(SeqCst) == 1));
                    }
                });
            }
        });
    }

    /// Checks `cond` every 100 µs until it holds; fails with `what` after 5 s (generous:
    /// valgrind runs this suite too, many times slower).
    fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
        let t = Instant::now();
        while !cond() {
            assert!(t.elapsed() < Duration::from_secs(5), "{what}");
            std::thread::sleep(Duration::from_micros(100));
        }
    }

    #[test]
    fn idle_helpers_nap_and_a_run_of_small_calls_brings_them_back() {
        let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
        let small = 1000;
        // Staff the crew: the first ask starts the helper (that call runs alone).
        wait_until("the helper never polled", || worth_sharing(1, small));
        // Idle beyond the polling window: the helper naps, and a small call does not use it.
        // (Between naps it polls for a moment, when a call may use it: try again then.)
        std::thread::sleep(spin_window() + 5 * NAP);
        let napping = || {
            crew().helpers.lock().unwrap_or_else(|e| e.into_inner())[0]
                .state
                .load(SeqCst)
                == NAPPING
        };
        wait_until("a napping helper was used by a small call", || {
            napping() && !worth_sharing(1, small)
        });
        // Calls keep coming: within a nap or two it polls again.
        wait_until("the helper did not come back to polling", || {
            worth_sharing(1, small)
        });
    }

    /// R4: a `fork()` while another thread is inside the crew's bookkeeping: the child gets a
    /// crew of its own, every time, without waiting on anything the parent's threads held (a
    /// mutex around the crew's slot hung such a child in most of these forks).
    #[cfg(target_os = "linux")]
    #[test]
    fn r4_fork_while_another_thread_asks_for_the_crew_never_hangs_the_child() {
        extern "C" {
            fn fork() -> i32;
            fn waitpid(pid: i32, status: *mut i32, options: i32) -> i32;
            fn kill(pid: i32, sig: i32) -> i32;
            fn _exit(code: i32) -> !;
        }
        const WNOHANG: i32 = 1;
        const SIGKILL: i32 = 9;
        // Under valgrind (`make valgrind` sets this) threads run one at a time, so the spinning
        // thread starves the forking one for minutes; the fork stress runs in `cargo test`.
        if crate::under_valgrind() {
            return;
        }
        // Under qemu-user (`make neon` sets this) a forked child hangs now and then inside the
        // emulator itself when another thread was creating a thread at the fork: a plain C
        // program doing only that (fork, malloc, _exit while a thread spawns and joins threads)
        // hung 2 of 3,900 children under qemu-aarch64 7.2 and none of 2,000 natively. The
        // stress runs natively in `cargo test`, where a hang is ours.
        if std::env::var_os("LOGITKIT_UNDER_QEMU").is_some() {
            return;
        }
        let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
        let stop = AtomicBool::new(false);
        let mut hangs = 0;
        std::thread::scope(|s| {
            s.spawn(|| {
                while !stop.load(Relaxed) {
                    let _ = crew();
                    let _ = worth_sharing(1, 1000);
                }
            });
            for _ in 0..100 {
                // SAFETY: the child only asks for its crew (atomics, an allocation) and exits
                // with `_exit`, running no destructors of the parent's state.
                let pid = unsafe { fork() };
                assert!(pid >= 0, "fork failed");
                if pid == 0 {
                    let sh = crew();
                    let ok = sh.inside.load(SeqCst) == 0 && !sh.held.load(SeqCst);
                    // SAFETY: ends the child at once.
                    unsafe { _exit(if ok { 0 } else { 3 }) };
                }
                let t = Instant::now();
                let mut status = 0;
                loop {
                    // SAFETY: our own child.
                    if unsafe { waitpid(pid, &mut status, WNOHANG) } == pid {
                        assert_eq!(status, 0, "the child's crew was not fresh");
                        break;
                    }
                    if t.elapsed() > Duration::from_secs(10) {
                        hangs += 1;
                        // SAFETY: our own child, then reaped.
                        unsafe {
                            kill(pid, SIGKILL);
                            waitpid(pid, &mut status, 0);
                        }
                        break;
                    }
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
            stop.store(true, Relaxed);
        });
        assert_eq!(hangs, 0, "children hung after fork()");
    }

    #[test]
    fn big_calls_are_always_worth_sharing() {
        assert!(worth_sharing(1, WAKE_MIN_WORK));
    }
}

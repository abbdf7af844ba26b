//! Golden outputs: the exact bits of the public API's results over a fixed matrix of cases,
//! compared against a recording (groundwork of issue 22, whose kernel rewrite must leave every
//! bit unchanged; contracts S9 and S12).
//!
//! # What it checks
//!
//! Every case runs the public Rust API on inputs from a fixed-seed generator written here
//! (splitmix64 and IEEE additions and multiplications only, no libm, so the inputs are the same
//! bits on every machine) and reduces the output to a 64-bit digest of its bits: FNV-1a taken
//! a 64-bit word at a time, one word per output element (its bits, zero-extended), in order, so
//! NaN payloads and signed zeros count and a change of any one element always shows.
//! The matrix:
//!
//! - `vec/`: `softmax`, `log_softmax` (temperatures 1, 0.5, 3, 1e-3, 1e35, 1e-35) and
//!   `logsumexp` of one vector, `f32`, `f64` and `f16`, lengths 1 to 300007 (every length a
//!   kernel path turns on: vector widths and their tails, the packed limits 16 and 64, `BLOCK`
//!   and `BLOCK ± 1`, 32000, 128256, and a multi-block row that is split across threads),
//!   values gaussian, mixed (`-inf`, subnormals, -3e38), huge (±3e38), all equal, and rows
//!   that are all `-inf` or hold a NaN or `+inf`; in place must give the out-of-place bits.
//! - `rows/`: the batch functions (`softmax_rows`, `log_softmax_rows`, `logsumexp_rows`,
//!   scalar and per-row temperatures) over many-rows shapes (65536x10, 4096x1000, 8x128256,
//!   ...: the packed short-row, medium-row and long-row paths), rows all gaussian or each row
//!   of another kind (so the special rows share packed groups with normal ones).
//! - `kern/`: the streamed long-rows path and the `Store::Stream` many-rows path through the
//!   hidden `logitkit::__kernels` API at the process's level, which the public API only takes
//!   for outputs larger than three quarters of the last-level cache (480 MiB here); they must
//!   give the bits of the public API's case of the same input.
//! - `lanes/`: `map_lanes` and `logsumexp_lanes` over strided layouts: axis 0 of C arrays,
//!   F order, a 3-d array, negative outer and lane strides, stepped strides; in place and out
//!   of place, into the same and into another layout; the digest covers the whole output
//!   buffer, gaps included (a stray write changes it).
//! - `extras/`: cross-entropy (options, reductions, lanes), top-k, sparsemax, sigmoid,
//!   temperature fitting and calibration bins, slice and lanes forms.
//! - `sample/`, `filter/`, `logprobs/`: `sample_batch` (fixed and per-row seeds; tokens,
//!   logprobs, ranks, top logprobs), `filter_logits_batch` and `token_logprobs_rows` over
//!   several parameter sets and shapes.
//!
//! Every case runs at 1 thread and at 2 threads (with `LOGITKIT_GOLDEN_THREADS=1` at 1 only,
//! for slow emulated runs); the digests must be equal (S9), and the 1-thread digests must equal
//! the recording for this architecture and SIMD level, `tests/golden/<arch>-<level>.txt` (`x86_64-avx512.txt`, `aarch64-neon.txt`, ...; the level
//! is `logitkit::simd_level()`, lowered with `LOGITKIT_SIMD`). A failure lists every case that
//! differs. The file of the active level must exist on x86_64 and aarch64; a level the machine
//! lacks is not checked (its file is read only by a process at that level). Under
//! `LOGITKIT_UNDER_VALGRIND` (`make valgrind`) the test does nothing: memcheck checks memory,
//! not bits, and the matrix would take far too long there.
//!
//! The levels differ from each other in many cases (different `exp` polynomials and sums), but
//! the scalar level gives the same digests on x86_64 and aarch64 (every case, when recorded).
//!
//! Time (both passes, 2 cores shared with other builds): about 9 s at the AVX2 and AVX-512
//! levels and 25 s at the scalar level, test profile or release; about 7 minutes at NEON under
//! qemu-aarch64.
//!
//! # Recording
//!
//! `LOGITKIT_GOLDEN=record cargo test --release --test golden` (with `LOGITKIT_SIMD=scalar`,
//! `avx2`, ... for the other levels, and under qemu-aarch64 for NEON: see the Makefile's `neon`
//! target) rewrites the file of the active level from the current code. The test profile and
//! the release profile give the same bits (Rust never contracts or reassociates floating-point
//! operations on its own).
//!
//! Re-recording is legitimate only when an output is meant to change (a deliberate change of
//! the numerics, or a new case), and then only with a written reason in the commit message
//! that names the cases and says why the new bits are right. A kernel refactor (issue 22)
//! must pass against the files as recorded before it. New cases may be appended: the inputs
//! of a case depend only on its own name, never on the order of the matrix.

use half::f16;
use logitkit::extras::{self, CrossEntropyOptions, Reduction};
use logitkit::lanes::{logsumexp_lanes, map_lanes, map_lanes_in_place};
use logitkit::{Float, Histories, Lanes, LogprobsMode, Op, SamplingParams, Seed, Temperature};
use logitkit::{StridedView, StridedViewMut};
use std::collections::BTreeMap;
use std::fmt::Write as _;

mod common;
use common::Rng;

// ---------------------------------------------------------------------------------------------
// Digests and inputs.

/// FNV-1a with 64-bit words: `h = (h ^ word) * FNV_PRIME` for each word (one word per output
/// element, its bits zero-extended; one per byte for names). Each step is a bijection of `h`,
/// so changing any single element always changes the digest.
#[derive(Clone, Copy)]
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn u64(&mut self, v: u64) {
        self.0 = (self.0 ^ v).wrapping_mul(0x0000_0100_0000_01b3);
    }
    fn bytes(&mut self, b: &[u8]) {
        b.iter().for_each(|&x| self.u64(x as u64));
    }
    fn f64s(&mut self, xs: &[f64]) {
        xs.iter().for_each(|v| self.u64(v.to_bits()));
    }
    fn i64s(&mut self, xs: &[i64]) {
        xs.iter().for_each(|&v| self.u64(v as u64));
    }
    fn els<T: El>(&mut self, xs: &[T]) {
        xs.iter().for_each(|&x| self.u64(x.bits()));
    }
}

fn fnv_str(s: &str) -> u64 {
    let mut h = Fnv::new();
    h.bytes(s.as_bytes());
    h.0
}

/// The element types of the public API.
trait El: Float {
    const TAG: &'static str;
    const BYTES: usize;
    /// Rounds an `f64` (to nearest even; `f16` through `f32`), the same bits on every machine.
    fn of(v: f64) -> Self;
    fn bits(self) -> u64;
}

impl El for f32 {
    const TAG: &'static str = "f32";
    const BYTES: usize = 4;
    fn of(v: f64) -> f32 {
        v as f32
    }
    fn bits(self) -> u64 {
        self.to_bits() as u64
    }
}

impl El for f64 {
    const TAG: &'static str = "f64";
    const BYTES: usize = 8;
    fn of(v: f64) -> f64 {
        v
    }
    fn bits(self) -> u64 {
        self.to_bits()
    }
}

impl El for f16 {
    const TAG: &'static str = "f16";
    const BYTES: usize = 2;
    /// Through `f32`: `half`'s `f16::from_f64` rounds once on aarch64 (FCVT) but twice, via
    /// `f32`, where x86-64 has F16C, so inputs made with it differed between the two.
    fn of(v: f64) -> f16 {
        f16::from_f32(v as f32)
    }
    fn bits(self) -> u64 {
        self.to_bits() as u64
    }
}

/// A generator (the suites' splitmix64) for the input named `key`, independent of every other
/// case. Its values come from exact floating-point operations only.
fn for_key(key: &str) -> Rng {
    Rng(fnv_str(key))
}

/// Roughly standard normal: a centred sum of four uniforms, scaled (Irwin-Hall).
fn gauss(g: &mut Rng) -> f64 {
    (g.uniform() + g.uniform() + g.uniform() + g.uniform() - 2.0) * 1.732_050_807_568_877_2
}

/// The kinds of input values.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Fill {
    /// Logit-like: about N(0, 4^2).
    Gauss,
    /// Gaussian with `-inf` (8%), subnormals of each type (4%) and -3e38 (2%).
    Mixed,
    /// Uniform in [-3e38, 3e38], half of the entries exactly ±3e38.
    Huge,
    /// Every entry 7.25.
    Equal,
    /// Every entry `-inf`.
    NegInf,
    /// Gaussian with one NaN.
    Nan,
    /// Gaussian with one `+inf`.
    PosInf,
    /// Row `i` of `n` takes one of the kinds above by `i` (rows of a batch); lanes: by element.
    RowMix,
}

impl Fill {
    fn name(self) -> &'static str {
        match self {
            Fill::Gauss => "gauss",
            Fill::Mixed => "mixed",
            Fill::Huge => "huge",
            Fill::Equal => "equal",
            Fill::NegInf => "neginf",
            Fill::Nan => "nan",
            Fill::PosInf => "posinf",
            Fill::RowMix => "rowmix",
        }
    }
}

fn value(kind: Fill, g: &mut Rng) -> f64 {
    match kind {
        Fill::Gauss => 4.0 * gauss(g),
        Fill::Mixed => match g.below(100) {
            0..=7 => f64::NEG_INFINITY,
            8 => 1e-40 * (1.0 + g.uniform()),   // f32 subnormal
            9 => -3e-320 * (1.0 + g.uniform()), // f64 subnormal
            10 => 3e-6 * (1.0 + g.uniform()),   // f16 subnormal
            11 => 0.0,
            12 | 13 => -3e38,
            _ => 4.0 * gauss(g),
        },
        Fill::Huge => match g.below(4) {
            0 => 3e38,
            1 => -3e38,
            _ => (2.0 * g.uniform() - 1.0) * 3e38,
        },
        Fill::Equal => 7.25,
        Fill::NegInf => f64::NEG_INFINITY,
        Fill::Nan | Fill::PosInf | Fill::RowMix => unreachable!(),
    }
}

/// One row of `n` values of `kind`.
fn row_values(kind: Fill, n: usize, g: &mut Rng) -> Vec<f64> {
    match kind {
        Fill::Nan | Fill::PosInf => {
            let mut v: Vec<f64> = (0..n).map(|_| value(Fill::Gauss, g)).collect();
            let special = if kind == Fill::Nan {
                f64::NAN
            } else {
                f64::INFINITY
            };
            if n > 0 {
                v[g.below(n)] = special;
            }
            v
        }
        Fill::RowMix => (0..n)
            .map(|_| value([Fill::Gauss, Fill::Mixed][g.below(2)], g))
            .collect(),
        _ => (0..n).map(|_| value(kind, g)).collect(),
    }
}

/// The kind of row `i` of a [`Fill::RowMix`] batch: mostly gaussian, some of every other kind.
fn row_kind(i: usize) -> Fill {
    match i % 16 {
        3 => Fill::Mixed,
        5 => Fill::Huge,
        7 => Fill::Equal,
        9 => Fill::NegInf,
        11 => Fill::Nan,
        13 => Fill::PosInf,
        _ => Fill::Gauss,
    }
}

/// `rows` rows of `n` values: every row of `kind`, or for [`Fill::RowMix`] row `i` of
/// [`row_kind`]`(i)`.
fn batch_values(kind: Fill, rows: usize, n: usize, g: &mut Rng) -> Vec<f64> {
    let mut v = Vec::with_capacity(rows * n);
    for i in 0..rows {
        let k = if kind == Fill::RowMix {
            row_kind(i)
        } else {
            kind
        };
        v.extend(row_values(k, n, g));
    }
    v
}

fn to_el<T: El>(v: &[f64]) -> Vec<T> {
    v.iter().map(|&x| T::of(x)).collect()
}

/// The scalar temperatures of the matrix: 1, moderate ones, tiny and huge (whose reciprocal is
/// outside [2^-100, 2^100], so that the kernels' general path takes them).
const TEMPS: [f64; 6] = [1.0, 0.5, 3.0, 1e-3, 1e35, 1e-35];

/// Per-row temperatures: `rows` values cycling through a fixed list.
fn row_temps(rows: usize) -> Vec<f64> {
    const CYCLE: [f64; 10] = [1.0, 0.5, 3.0, 1e-3, 1e35, 1e-35, 0.7, 1.0, 2.0, 1e6];
    (0..rows).map(|i| CYCLE[i % CYCLE.len()]).collect()
}

// ---------------------------------------------------------------------------------------------
// The matrix.

/// Digests by case name, with the checks that failed on the way (in-place against
/// out-of-place, streamed against the public API).
#[derive(Default)]
struct Run {
    digests: BTreeMap<String, u64>,
    problems: Vec<String>,
}

impl Run {
    fn put(&mut self, name: String, digest: u64) {
        let old = self.digests.insert(name.clone(), digest);
        assert!(old.is_none(), "case {name} twice in the matrix");
    }
    fn put_els<T: El>(&mut self, name: String, xs: &[T]) -> u64 {
        let mut h = Fnv::new();
        h.els(xs);
        self.put(name, h.0);
        h.0
    }
    fn same(&mut self, what: String, a: u64, b: u64) {
        if a != b {
            self.problems.push(format!("{what}: {a:016x} != {b:016x}"));
        }
    }
}

fn digest_els<T: El>(xs: &[T]) -> u64 {
    let mut h = Fnv::new();
    h.els(xs);
    h.0
}

fn fmt_t(t: f64) -> String {
    format!("{t:e}")
}

/// `vec/`: one vector.
const VEC_LENS: &[usize] = &[
    1,
    2,
    3,
    7,
    8,
    15,
    16,
    17,
    31,
    33,
    63,
    64,
    65,
    100,
    255,
    1000,
    4095,
    4096,
    4097,
    logitkit::__kernels::BLOCK - 1,
    logitkit::__kernels::BLOCK,
    logitkit::__kernels::BLOCK + 1,
    32000,
    128256,
    // Above the parallel threshold, 19 blocks: split across the threads.
    300_007,
];

fn vec_cases<T: El>(run: &mut Run) {
    for &n in VEC_LENS {
        let special = [1, 17, 4097, 32000].contains(&n);
        let fills: &[Fill] = if special {
            &[
                Fill::Gauss,
                Fill::Mixed,
                Fill::Huge,
                Fill::Equal,
                Fill::NegInf,
                Fill::Nan,
                Fill::PosInf,
            ]
        } else {
            &[Fill::Gauss, Fill::Mixed, Fill::Huge, Fill::Equal]
        };
        for &fill in fills {
            let key = format!("vec/{}/n={n}/{}", T::TAG, fill.name());
            let x: Vec<T> = to_el(&row_values(fill, n, &mut for_key(&key)));
            let mut out = vec![T::of(0.0); n];
            for (op, op_name) in [(Op::Softmax, "softmax"), (Op::LogSoftmax, "log_softmax")] {
                for t in TEMPS {
                    let r = match op {
                        Op::Softmax => logitkit::softmax(&x, &mut out, t),
                        Op::LogSoftmax => logitkit::log_softmax(&x, &mut out, t),
                    };
                    r.unwrap();
                    let d = run.put_els(format!("{key}/{op_name}/t={}", fmt_t(t)), &out);
                    if t == 1.0 || t == 0.5 {
                        let mut y = x.clone();
                        match op {
                            Op::Softmax => logitkit::softmax_in_place(&mut y, t),
                            Op::LogSoftmax => logitkit::log_softmax_in_place(&mut y, t),
                        }
                        .unwrap();
                        run.same(
                            format!("{key}/{op_name}/t={}: in place", fmt_t(t)),
                            digest_els(&y),
                            d,
                        );
                    }
                }
            }
            let lse = logitkit::logsumexp(&x);
            run.put_els(format!("{key}/logsumexp"), &[lse]);
        }
    }
}

/// `rows/` shapes of `f32`: (rows, row length). The project's benchmark shapes (65536x10,
/// 8x128256; 4096x1000 halved, the same paths) and the edges of the packed and medium paths.
const ROW_SHAPES: &[(usize, usize)] = &[
    (65536, 10),
    (2048, 1000),
    (8, 128256),
    (4, 32000),
    (1000, 100),
    (513, 17),
    (257, 16),
    (16, 64),
    (100, 65),
    (129, 33),
    (1000, 3),
    (7, 1),
    (33, 4096),
    (3, logitkit::__kernels::BLOCK + 1),
    (2, 300_007),
];

/// The shapes of `f64`: as `f32`, the large ones smaller (`f64` takes longer).
const ROW_SHAPES_F64: &[(usize, usize)] = &[
    (8192, 10),
    (512, 1000),
    (2, 128256),
    (4, 32000),
    (1000, 100),
    (513, 17),
    (257, 16),
    (16, 64),
    (100, 65),
    (129, 33),
    (1000, 3),
    (7, 1),
    (33, 4096),
    (3, logitkit::__kernels::BLOCK + 1),
    (2, 300_007),
];

/// The shapes of `f16`.
const ROW_SHAPES_F16: &[(usize, usize)] = &[(16384, 10), (100, 65), (2, 128256), (33, 4096)];

fn rows_cases<T: El>(run: &mut Run, shapes: &[(usize, usize)]) {
    for &(rows, n) in shapes {
        let clock = std::time::Instant::now();
        for fill in [Fill::Gauss, Fill::RowMix] {
            let key = format!("rows/{}/{rows}x{n}/{}", T::TAG, fill.name());
            let x: Vec<T> = to_el(&batch_values(fill, rows, n, &mut for_key(&key)));
            let temps = row_temps(rows);
            let mut out = vec![T::of(0.0); rows * n];
            let scalar: [(&str, Temperature); 3] = [
                ("t=1", 1.0.into()),
                ("t=5e-1", 0.5.into()),
                ("t=3e0", 3.0.into()),
            ];
            for (op, op_name) in [(Op::Softmax, "softmax"), (Op::LogSoftmax, "log_softmax")] {
                for (t_name, t) in scalar.iter().copied().chain([("t=rows", (&temps).into())]) {
                    match op {
                        Op::Softmax => logitkit::softmax_rows(&x, &mut out, n, t),
                        Op::LogSoftmax => logitkit::log_softmax_rows(&x, &mut out, n, t),
                    }
                    .unwrap();
                    let name = format!("{key}/{op_name}/{t_name}");
                    let d = run.put_els(name.clone(), &out);
                    if t_name == "t=1" || t_name == "t=rows" {
                        let mut y = x.clone();
                        match op {
                            Op::Softmax => logitkit::softmax_rows_in_place(&mut y, n, t),
                            Op::LogSoftmax => logitkit::log_softmax_rows_in_place(&mut y, n, t),
                        }
                        .unwrap();
                        run.same(format!("{name}: in place"), digest_els(&y), d);
                    }
                    // The streamed paths, which the public API takes only for outputs larger
                    // than the caches (native types only).
                    if T::BYTES >= 4 && t_name != "t=3e0" {
                        kern_same::<T>(run, &name, op, &x, n, t, d);
                    }
                }
            }
            let mut lse = vec![T::of(0.0); rows];
            logitkit::logsumexp_rows(&x, n, &mut lse).unwrap();
            run.put_els(format!("{key}/logsumexp"), &lse);
        }
        if std::env::var(RECORD_ENV).as_deref() == Ok("time") {
            eprintln!(
                "golden:   {} {rows}x{n} {:.2} s",
                T::TAG,
                clock.elapsed().as_secs_f64()
            );
        }
    }
}

/// The internal streamed paths of a `rows/` case (`T` is `f32` or `f64`): their output must
/// be the bits the public API gave (`want`).
fn kern_same<T: El>(
    run: &mut Run,
    name: &str,
    op: Op,
    x: &[T],
    n: usize,
    t: Temperature,
    want: u64,
) {
    use logitkit::__kernels as k;
    let level = logitkit::simd_level();
    let rows = x.len() / n;
    let temps: Vec<f64> = (0..rows).map(|i| t.get(i)).collect();
    macro_rules! native {
        ($c:ty) => {{
            // SAFETY: `T` is `$c` (f32 and f64 are the only `El`s of these sizes).
            let x: &[$c] = unsafe { std::slice::from_raw_parts(x.as_ptr().cast(), x.len()) };
            let mut out = vec![0.0 as $c; x.len()];
            if n <= k::BLOCK {
                k::rows(level, op, x, &mut out, n, &temps, k::Store::Stream);
                let d = digest_els(&out);
                run.same(format!("{name}: Store::Stream"), d, want);
            } else {
                for keep in [false, true] {
                    k::map_rows_streamed(level, op, x, &mut out, n, &temps, false, keep);
                    let d = digest_els(&out);
                    run.same(format!("{name}: map_rows_streamed keep={keep}"), d, want);
                    k::map_rows_streamed(level, op, x, &mut out, n, &temps, true, keep);
                    let d = digest_els(&out);
                    let what = format!("{name}: map_rows_streamed in place keep={keep}");
                    run.same(what, d, want);
                }
            }
        }};
    }
    if T::BYTES == 4 {
        native!(f32)
    } else {
        native!(f64)
    }
}

/// A strided layout: shape, element strides, lane axis.
struct Layout {
    name: &'static str,
    shape: Vec<usize>,
    strides: Vec<isize>,
    axis: usize,
}

impl Layout {
    fn new(name: &'static str, shape: &[usize], strides: &[isize], axis: usize) -> Layout {
        Layout {
            name,
            shape: shape.to_vec(),
            strides: strides.to_vec(),
            axis,
        }
    }
    /// Lowest and highest element offsets from the array's first element.
    fn span(&self) -> (isize, isize) {
        let (mut lo, mut hi) = (0isize, 0isize);
        for (&e, &s) in self.shape.iter().zip(&self.strides) {
            let far = (e as isize - 1) * s;
            if far < 0 {
                lo += far;
            } else {
                hi += far;
            }
        }
        (lo, hi)
    }
    /// Buffer length and the offset of the array's first element in it.
    fn buffer(&self) -> (usize, usize) {
        let (lo, hi) = self.span();
        ((hi - lo + 1) as usize, (-lo) as usize)
    }
    fn lanes(&self) -> Lanes {
        Lanes::from_strided(&self.shape, &self.strides, self.axis)
    }
    fn tag(&self) -> String {
        let dims: Vec<String> = self.shape.iter().map(|e| e.to_string()).collect();
        format!("{}[{}]", self.name, dims.join("x"))
    }
}

/// C-order strides of `shape`.
fn c_strides(shape: &[usize]) -> Vec<isize> {
    let mut s = vec![1isize; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        s[d] = s[d + 1] * shape[d + 1] as isize;
    }
    s
}

fn layouts() -> Vec<Layout> {
    let c = |name, shape: &[usize], axis| Layout::new(name, shape, &c_strides(shape), axis);
    vec![
        c("c_axis0", &[1000, 64], 0),
        c("c_axis0", &[4097, 3], 0),
        c("c_axis0", &[17, 33], 0),
        c("c_axis0", &[logitkit::__kernels::BLOCK + 1, 2], 0),
        c("c_axis1", &[300, 1000], 1),
        Layout::new("f_axis1", &[64, 1000], &[1, 64], 1),
        Layout::new("f_axis1", &[5, 4097], &[1, 5], 1),
        c("c3_axis1", &[4, 50, 30], 1),
        Layout::new("neg_rows", &[100, 1000], &[-1000, 1], 1),
        Layout::new("neg_rows", &[1000, 10], &[-10, 1], 1),
        Layout::new("neg_lane", &[100, 1000], &[1000, -1], 1),
        Layout::new("neg_axis0", &[1000, 16], &[-16, 1], 0),
        Layout::new("step2", &[50, 300], &[4 * 300, 2], 1),
        Layout::new("step3_axis0", &[200, 7], &[-3 * 7 * 2, 2], 0),
    ]
}

fn lanes_cases<T: El>(run: &mut Run) {
    let sentinel = T::of(-12345.0);
    for layout in layouts() {
        let key = format!("lanes/{}/{}", T::TAG, layout.tag());
        let (len, base) = layout.buffer();
        let mut g = for_key(&key);
        let buf: Vec<T> = to_el(
            &(0..len)
                .map(|_| value(Fill::Mixed, &mut g))
                .collect::<Vec<_>>(),
        );
        let lanes = layout.lanes();
        let count = lanes.count();
        let temps = row_temps(count);
        // The same layout in another buffer; and C order in the lanes' numbering (outer dims
        // then the lane axis last).
        let mut c_shape: Vec<usize> = lanes.outer.iter().map(|&(e, _)| e).collect();
        c_shape.push(lanes.len);
        let c_layout = Lanes::from_strided(&c_shape, &c_strides(&c_shape), c_shape.len() - 1);
        for (op, op_name) in [(Op::Softmax, "softmax"), (Op::LogSoftmax, "log_softmax")] {
            for (t_name, t) in [
                ("t=1", Temperature::Scalar(1.0)),
                ("t=lanes", (&temps).into()),
            ] {
                let name = format!("{key}/{op_name}/{t_name}");
                // Out of place, same layout.
                let src = StridedView::new(&buf, base, lanes.clone()).unwrap();
                let mut dst = vec![sentinel; len];
                let mut dv = StridedViewMut::new(&mut dst, base, lanes.clone()).unwrap();
                map_lanes(op, &src, &mut dv, t).unwrap();
                run.put_els(format!("{name}/out"), &dst);
                // In place.
                let mut inp = buf.clone();
                let mut iv = StridedViewMut::new(&mut inp, base, lanes.clone()).unwrap();
                map_lanes_in_place(op, &mut iv, t).unwrap();
                run.put_els(format!("{name}/in_place"), &inp);
                // Out of place into C order.
                let mut cdst = vec![sentinel; count * lanes.len];
                let mut cv = StridedViewMut::new(&mut cdst, 0, c_layout.clone()).unwrap();
                map_lanes(op, &src, &mut cv, t).unwrap();
                run.put_els(format!("{name}/to_c"), &cdst);
            }
        }
        let mut lse = vec![sentinel; count];
        let src = StridedView::new(&buf, base, lanes.clone()).unwrap();
        logsumexp_lanes(&src, &mut lse).unwrap();
        run.put_els(format!("{key}/logsumexp"), &lse);
    }
}

fn labels_for(g: &mut Rng, rows: usize, classes: usize) -> Vec<i64> {
    (0..rows).map(|_| g.below(classes) as i64).collect()
}

fn extras_cases<T: El>(run: &mut Run) {
    // Cross-entropy, slice form.
    for &(rows, n) in &[(64usize, 1000usize), (16, 32000), (100, 10), (1, 128256)] {
        let key = format!("extras/{}/{rows}x{n}", T::TAG);
        let mut g = for_key(&key);
        let x: Vec<T> = to_el(&batch_values(Fill::Mixed, rows, n, &mut g));
        let mut labels = labels_for(&mut g, rows, n);
        let temps = row_temps(rows);
        let mut losses = vec![0.0f64; rows];
        let plain = CrossEntropyOptions::default();
        extras::cross_entropy_rows(&x, n, &labels, &plain, &mut losses).unwrap();
        let mut h = Fnv::new();
        h.f64s(&losses);
        run.put(format!("{key}/cross_entropy_rows"), h.0);
        if rows > 1 {
            labels[1] = -100;
        }
        let opts = CrossEntropyOptions {
            temperature: (&temps).into(),
            label_smoothing: 0.1,
            ignore_index: Some(-100),
        };
        extras::cross_entropy_rows(&x, n, &labels, &opts, &mut losses).unwrap();
        let mut h = Fnv::new();
        h.f64s(&losses);
        for red in [Reduction::Mean, Reduction::Sum] {
            h.u64(
                extras::cross_entropy(&x, n, &labels, &opts, red)
                    .unwrap()
                    .to_bits(),
            );
        }
        run.put(format!("{key}/cross_entropy_smoothed"), h.0);

        // Top-k.
        let xr: Vec<T> = to_el(&batch_values(Fill::RowMix, rows, n, &mut g));
        for k in [1usize, 5, 50.min(n)] {
            let mut vals = vec![T::of(0.0); rows * k];
            let mut idx = vec![0i64; rows * k];
            extras::topk_rows(&xr, n, k, &mut vals, &mut idx).unwrap();
            let mut h = Fnv::new();
            h.els(&vals);
            h.i64s(&idx);
            run.put(format!("{key}/topk/k={k}"), h.0);
        }

        // Sparsemax.
        let mut out = vec![T::of(0.0); rows * n];
        extras::sparsemax_rows(&xr, n, &mut out).unwrap();
        run.put_els(format!("{key}/sparsemax"), &out);

        // Temperature fit and calibration (rows with a finite maximum only).
        let probs_in: Vec<T> = to_el(&batch_values(Fill::Gauss, rows, n, &mut g));
        let fit = extras::fit_temperature(&probs_in, n, &labels_for(&mut g, rows, n)).unwrap();
        let mut h = Fnv::new();
        h.f64s(&[fit.temperature, fit.nll_before, fit.nll_after]);
        h.u64(fit.evaluations as u64);
        h.u64(fit.at_bound as u64);
        run.put(format!("{key}/fit_temperature"), h.0);
        let mut probs = vec![T::of(0.0); rows * n];
        logitkit::softmax_rows(&probs_in, &mut probs, n, 1.0.into()).unwrap();
        let bl = labels_for(&mut g, rows, n);
        let bins = extras::calibration_bins(&probs, n, &bl, 15).unwrap();
        let mut h = Fnv::new();
        bins.count.iter().for_each(|&c| h.u64(c));
        h.f64s(&bins.confidence_sum);
        bins.correct.iter().for_each(|&c| h.u64(c));
        h.u64(bins.expected_calibration_error().to_bits());
        run.put(format!("{key}/calibration_bins"), h.0);
    }

    // Sigmoid over all kinds of values.
    for n in [1usize, 17, 4096, 100_003] {
        let key = format!("extras/{}/n={n}", T::TAG);
        let mut g = for_key(&key);
        let mut v = row_values(Fill::Mixed, n, &mut g);
        for (i, s) in [
            f64::INFINITY,
            f64::NAN,
            3e38,
            -3e38,
            80.0,
            -80.0,
            700.0,
            -750.0,
        ]
        .into_iter()
        .enumerate()
        {
            if i < n {
                v[(i * 7919) % n] = s;
            }
        }
        let x: Vec<T> = to_el(&v);
        let mut out = vec![T::of(0.0); n];
        extras::sigmoid(&x, &mut out).unwrap();
        run.put_els(format!("{key}/sigmoid"), &out);
    }

    // Lanes forms: axis 0 of a C array and a negative-stride layout.
    for layout in [
        Layout::new("c_axis0", &[1000, 24], &[24, 1], 0),
        Layout::new("neg_lane", &[30, 257], &[257, -1], 1),
    ] {
        let key = format!("extras/{}/lanes/{}", T::TAG, layout.tag());
        let (len, base) = layout.buffer();
        let mut g = for_key(&key);
        let buf: Vec<T> = to_el(
            &(0..len)
                .map(|_| value(Fill::Mixed, &mut g))
                .collect::<Vec<_>>(),
        );
        let finite: Vec<T> = to_el(
            &(0..len)
                .map(|_| value(Fill::Gauss, &mut g))
                .collect::<Vec<_>>(),
        );
        let lanes = layout.lanes();
        let (count, n) = (lanes.count(), lanes.len);
        let labels = labels_for(&mut g, count, n);
        let src = StridedView::new(&buf, base, lanes.clone()).unwrap();
        let fsrc = StridedView::new(&finite, base, lanes.clone()).unwrap();
        let sentinel = T::of(-12345.0);

        let mut losses = vec![0.0f64; count];
        let opts = CrossEntropyOptions {
            label_smoothing: 0.05,
            ..Default::default()
        };
        // Outputs are separate buffers of the C-order layout `c`.
        extras::cross_entropy_lanes(&src, &labels, &opts, &mut losses).unwrap();
        let mut h = Fnv::new();
        h.f64s(&losses);
        run.put(format!("{key}/cross_entropy"), h.0);

        let k = 5;
        let out_lanes = Lanes::from_strided(&[count, k], &[k as isize, 1], 1);
        let mut vals = vec![sentinel; count * k];
        let mut idx = vec![-1i64; count * k];
        extras::topk_lanes(
            &src,
            k,
            &mut StridedViewMut::new(&mut vals, 0, out_lanes.clone()).unwrap(),
            &mut StridedViewMut::new(&mut idx, 0, out_lanes).unwrap(),
        )
        .unwrap();
        let mut h = Fnv::new();
        h.els(&vals);
        h.i64s(&idx);
        run.put(format!("{key}/topk"), h.0);

        let c = Lanes::from_strided(&[count, n], &[n as isize, 1], 1);
        let mut out = vec![sentinel; count * n];
        let mut ov = StridedViewMut::new(&mut out, 0, c.clone()).unwrap();
        extras::sparsemax_lanes(&src, &mut ov).unwrap();
        run.put_els(format!("{key}/sparsemax"), &out);
        let mut out = vec![sentinel; count * n];
        let mut ov = StridedViewMut::new(&mut out, 0, c).unwrap();
        extras::sigmoid_lanes(&src, &mut ov).unwrap();
        run.put_els(format!("{key}/sigmoid"), &out);

        let fit = extras::fit_temperature_lanes(&fsrc, &labels).unwrap();
        let mut h = Fnv::new();
        h.f64s(&[fit.temperature, fit.nll_before, fit.nll_after]);
        h.u64(fit.evaluations as u64);
        run.put(format!("{key}/fit_temperature"), h.0);

        let mut probs = vec![T::of(0.0); len];
        let mut pv = StridedViewMut::new(&mut probs, base, lanes.clone()).unwrap();
        map_lanes(Op::Softmax, &fsrc, &mut pv, 1.0.into()).unwrap();
        let pv = StridedView::new(&probs, base, lanes.clone()).unwrap();
        let bins = extras::calibration_bins_lanes(&pv, &labels, 10).unwrap();
        let mut h = Fnv::new();
        bins.count.iter().for_each(|&c| h.u64(c));
        h.f64s(&bins.confidence_sum);
        bins.correct.iter().for_each(|&c| h.u64(c));
        run.put(format!("{key}/calibration_bins"), h.0);
    }
}

/// Sampling parameter sets, by name.
fn sampling_params(rows: usize) -> Vec<(&'static str, SamplingParams)> {
    let per_row_t: Vec<f64> = (0..rows).map(|i| [0.0, 0.6, 1.0, 1.7][i % 4]).collect();
    let per_row_k: Vec<i64> = (0..rows).map(|i| [0, 1, 20, 200][i % 4]).collect();
    let base = SamplingParams::default;
    vec![
        ("t=1", base()),
        ("greedy", SamplingParams::greedy()),
        ("t=0.7,k=50", base().temperature(0.7).top_k(50)),
        ("p=0.9", base().top_p(0.9)),
        ("t=1.3,minp=0.05", base().temperature(1.3).min_p(0.05)),
        (
            "t=0.8,k=40,p=0.95,minp=0.02",
            base().temperature(0.8).top_k(40).top_p(0.95).min_p(0.02),
        ),
        (
            "penalties",
            base()
                .repetition_penalty(1.2)
                .frequency_penalty(0.5)
                .presence_penalty(0.3)
                .temperature(0.9),
        ),
        (
            "bias",
            base().logit_bias(vec![(5, 3.0), (7, f64::NEG_INFINITY), (0, -2.5)]),
        ),
        (
            "per_row_t_k",
            base().temperature(per_row_t).top_k(per_row_k),
        ),
        (
            "top5/sampled",
            base().temperature(0.8).top_p(0.9).top_logprobs(5),
        ),
        (
            "top5/processed",
            base()
                .temperature(0.8)
                .top_p(0.9)
                .top_logprobs(5)
                .logprobs_mode(LogprobsMode::Processed),
        ),
        (
            "top5/raw",
            base()
                .temperature(0.8)
                .top_k(30)
                .top_logprobs(5)
                .logprobs_mode(LogprobsMode::Raw),
        ),
    ]
}

fn sampling_cases<T: El>(run: &mut Run, shapes: &[(usize, usize)]) {
    for &(rows, vocab) in shapes {
        let key = format!("{}/{rows}x{vocab}", T::TAG);
        let mut g = for_key(&key);
        // Rows with -inf entries, subnormals and -3e38, but no NaN or +inf (refused).
        let x: Vec<T> = to_el(&batch_values(Fill::Mixed, rows, vocab, &mut g));
        let mut hist = |len: usize| -> Vec<Vec<u32>> {
            (0..rows)
                .map(|_| (0..len).map(|_| g.below(vocab) as u32).collect())
                .collect()
        };
        let (prompts, outputs) = (hist(24), hist(40));
        let histories = Histories::new()
            .prompt_tokens(&prompts)
            .output_tokens(&outputs);
        let seeds: Vec<u64> = (0..rows as u64).map(|i| i * 1_000_003 + 17).collect();
        let mut filtered = vec![T::of(0.0); rows * vocab];
        for (p_name, params) in sampling_params(rows) {
            let h = if p_name == "penalties" {
                histories
            } else {
                Histories::new()
            };
            for (s_name, seed) in [
                ("seed=42", Seed::Fixed(42)),
                ("seed=rows", Seed::PerRow(seeds.clone())),
            ] {
                if s_name == "seed=rows" && !p_name.starts_with("top5/sampled") && p_name != "t=1" {
                    continue;
                }
                let d = logitkit::sample_batch(&x, vocab, &params, &h, &seed, true).unwrap();
                let mut f = Fnv::new();
                f.i64s(&d.tokens);
                f.f64s(&d.logprobs);
                f.i64s(&d.ranks);
                f.i64s(&d.top_ids);
                f.f64s(&d.top_logprobs);
                run.put(format!("sample/{key}/{p_name}/{s_name}"), f.0);
            }
            if !p_name.starts_with("top5/") {
                logitkit::filter_logits_batch(&x, vocab, &params, &h, &mut filtered).unwrap();
                run.put_els(format!("filter/{key}/{p_name}"), &filtered);
            }
        }
        let ids: Vec<i64> = (0..rows).map(|_| g.below(vocab) as i64).collect();
        let temps = row_temps(rows);
        for (t_name, t) in [
            ("t=1", 1.0.into()),
            ("t=5e-1", 0.5.into()),
            ("t=rows", temps.clone().into()),
        ] {
            let mut lp = vec![T::of(0.0); rows];
            let mut ranks = vec![0i64; rows];
            logitkit::token_logprobs_rows(&x, vocab, &ids, t, &mut lp, Some(&mut ranks)).unwrap();
            let mut f = Fnv::new();
            f.els(&lp);
            f.i64s(&ranks);
            run.put(format!("logprobs/{key}/{t_name}"), f.0);
        }
    }
}

/// The whole matrix at the current thread count.
fn run_matrix() -> Run {
    let mut run = Run::default();
    let mut clock = std::time::Instant::now();
    let mut lap = |what: &str| {
        if std::env::var(RECORD_ENV).as_deref() == Ok("time") {
            eprintln!("golden: {what} {:.2} s", clock.elapsed().as_secs_f64());
        }
        clock = std::time::Instant::now();
    };
    vec_cases::<f32>(&mut run);
    vec_cases::<f64>(&mut run);
    vec_cases::<f16>(&mut run);
    lap("vec");
    rows_cases::<f32>(&mut run, ROW_SHAPES);
    rows_cases::<f64>(&mut run, ROW_SHAPES_F64);
    rows_cases::<f16>(&mut run, ROW_SHAPES_F16);
    lap("rows");
    lanes_cases::<f32>(&mut run);
    lanes_cases::<f64>(&mut run);
    lanes_cases::<f16>(&mut run);
    lap("lanes");
    extras_cases::<f32>(&mut run);
    extras_cases::<f64>(&mut run);
    extras_cases::<f16>(&mut run);
    lap("extras");
    let shapes = [(8, 32000), (64, 1000), (1, 128256), (256, 10)];
    sampling_cases::<f32>(&mut run, &shapes);
    sampling_cases::<f64>(&mut run, &[(16, 4096), (1, 128256)]);
    sampling_cases::<f16>(&mut run, &[(16, 4096)]);
    lap("sampling");
    run
}

// ---------------------------------------------------------------------------------------------
// The recording.

const RECORD_ENV: &str = "LOGITKIT_GOLDEN";
const THREADS_ENV: &str = "LOGITKIT_GOLDEN_THREADS";

fn golden_path() -> std::path::PathBuf {
    let file = format!(
        "{}-{}.txt",
        std::env::consts::ARCH,
        logitkit::simd_level().name()
    );
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("golden")
        .join(file)
}

fn render(digests: &BTreeMap<String, u64>) -> String {
    let mut s = String::new();
    writeln!(
        s,
        "# logitkit golden outputs: arch {}, SIMD level {}; FNV-1a (64-bit words) of each \
         case's output bits (tests/golden.rs).",
        std::env::consts::ARCH,
        logitkit::simd_level().name()
    )
    .unwrap();
    writeln!(
        s,
        "# Written by `LOGITKIT_GOLDEN=record cargo test --release --test golden`; re-record \
         only with a written reason in the commit."
    )
    .unwrap();
    for (name, d) in digests {
        writeln!(s, "{name} {d:016x}").unwrap();
    }
    s
}

fn parse(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (name, hex) = l.rsplit_once(' ').expect("a line is `name digest`");
            let d = u64::from_str_radix(hex, 16).expect("a hex digest");
            (name.to_string(), d)
        })
        .collect()
}

/// Notes on the levels this run does not check: a requested level the CPU lacks, and the
/// recordings of this architecture for levels other than the active one.
fn level_notes(level: &str) {
    if let Ok(req) = std::env::var("LOGITKIT_SIMD") {
        if !req.eq_ignore_ascii_case(level) {
            eprintln!("golden: LOGITKIT_SIMD={req} is not available here; checking level {level}");
        }
    }
    let supported: Vec<&str> = logitkit::supported_levels()
        .iter()
        .map(|l| l.name())
        .collect();
    let dir = golden_path().parent().unwrap().to_path_buf();
    let prefix = format!("{}-", std::env::consts::ARCH);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    let mut others: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|f| Some(f.strip_prefix(&prefix)?.strip_suffix(".txt")?.to_string()))
        .filter(|l| l != level)
        .collect();
    others.sort();
    for other in others {
        if supported.contains(&other.as_str()) {
            eprintln!("golden: level {other} is checked by a run with LOGITKIT_SIMD={other}");
        } else {
            eprintln!("golden: level {other} not checked: this CPU lacks it");
        }
    }
}

/// S9 and S12: every case gives the same bits at 1 and 2 threads, and the bits recorded for
/// this architecture and SIMD level (the golden outputs issue 22's kernel rewrite must keep).
#[test]
fn s9_s12_golden_outputs_match_recording_at_1_and_2_threads() {
    if common::under_valgrind() {
        eprintln!("golden: skipped under valgrind (memcheck checks memory, not bits)");
        return;
    }
    let path = golden_path();
    let level = logitkit::simd_level().name();
    level_notes(level);
    let started = std::time::Instant::now();
    logitkit::set_num_threads(1).unwrap();
    let one = run_matrix();
    let t1 = started.elapsed();
    let mut problems: Vec<String> = one.problems.clone();
    // `LOGITKIT_GOLDEN_THREADS=1` skips the 2-thread pass (for slow emulated runs whose S9
    // check another run makes).
    if std::env::var(THREADS_ENV).as_deref() == Ok("1") {
        eprintln!(
            "golden: {} cases at level {level}; 1 thread {:.1} s ({THREADS_ENV}=1: no 2-thread pass)",
            one.digests.len(),
            t1.as_secs_f64()
        );
    } else {
        logitkit::set_num_threads(2).unwrap();
        let two = run_matrix();
        eprintln!(
            "golden: {} cases at level {level}; 1 thread {:.1} s, 2 threads {:.1} s",
            one.digests.len(),
            t1.as_secs_f64(),
            (started.elapsed() - t1).as_secs_f64()
        );
        problems.extend(two.problems.iter().map(|p| format!("{p} (2 threads)")));
        for (name, d1) in &one.digests {
            let d2 = two.digests[name];
            if *d1 != d2 {
                problems.push(format!(
                    "S9: {name}: 1 thread {d1:016x}, 2 threads {d2:016x}"
                ));
            }
        }
    }

    if std::env::var(RECORD_ENV).as_deref() == Ok("record") {
        assert!(
            problems.is_empty(),
            "not recording: the matrix is not self-consistent:\n{}",
            problems.join("\n")
        );
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, render(&one.digests)).unwrap();
        eprintln!("golden: recorded {}", path.display());
        return;
    }

    let recorded = match std::fs::read_to_string(&path) {
        Ok(text) => parse(&text),
        Err(e) => {
            let known = matches!(std::env::consts::ARCH, "x86_64" | "aarch64");
            let msg = format!(
                "golden: no recording for this level ({}: {e}); record it with \
                 {RECORD_ENV}=record cargo test --release --test golden",
                path.display()
            );
            assert!(!known, "{msg}");
            eprintln!("{msg}; not checked");
            assert!(problems.is_empty(), "{}", problems.join("\n"));
            return;
        }
    };
    for (name, want) in &recorded {
        match one.digests.get(name) {
            None => problems.push(format!("{name}: recorded, no longer in the matrix")),
            Some(got) if got != want => {
                problems.push(format!("{name}: got {got:016x}, recorded {want:016x}"))
            }
            Some(_) => {}
        }
    }
    for name in one.digests.keys() {
        if !recorded.contains_key(name) {
            problems.push(format!("{name}: in the matrix, not recorded"));
        }
    }
    assert!(
        problems.is_empty(),
        "{} problem(s) against {}:\n{}",
        problems.len(),
        path.display(),
        problems.join("\n")
    );
    eprintln!("golden: {} cases match {}", recorded.len(), path.display());
}

/// S12: the scalar level gives the same bits on x86-64 and aarch64, so the two recordings hold
/// the same digests (CI checks the x86-64 one natively at that level, and NEON under qemu; the
/// aarch64 scalar pass would take minutes more there).
#[test]
fn s12_scalar_recordings_agree_across_architectures() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("golden");
    let read = |arch: &str| {
        let path = dir.join(format!("{arch}-scalar.txt"));
        parse(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
    };
    let (x86, arm) = (read("x86_64"), read("aarch64"));
    assert!(x86.len() > 5000, "{} cases", x86.len());
    assert_eq!(x86, arm);
}

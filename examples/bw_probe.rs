//! Memory-bound shapes against what the memory system gives two threads: softmax and
//! log-softmax of a batch (2 threads) beside a 2-thread copy of the same bytes with
//! non-temporal stores (read once, write once, no read-for-ownership: the traffic of our
//! streaming path), medians and minima of 15 interleaved runs (`BW_ROUNDS` to change), release mode:
//! `cargo run --release --example bw_probe [rows] [len]` (default 256 x 152064).
//!
//! Also timed: the memory traffic of the streaming path without its arithmetic ("skeleton"):
//! each row in blocks of 16384 elements, each block's maximum, then `x - max` written with
//! non-temporal stores while the next block is prefetched. What separates it from the copy is
//! the cost of reading each block twice (once from memory, once from cache) before writing it;
//! what separates softmax from it is arithmetic that the memory traffic does not hide.

use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// `dst = src` with non-temporal stores where the CPU has AVX-512F, else a plain copy.
fn stream_copy(src: &[f32], dst: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F; the slices have the same length (checked by the
        // caller's split).
        unsafe { stream_copy_avx512(src, dst) };
        return;
    }
    dst.copy_from_slice(src);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn stream_copy_avx512(src: &[f32], dst: &mut [f32]) {
    use std::arch::x86_64::*;
    assert_eq!(src.len(), dst.len());
    let mut i = 0;
    // Non-temporal stores need 64-byte aligned addresses: copy up to the first one.
    while i < src.len() && !(dst.as_ptr().add(i) as usize).is_multiple_of(64) {
        dst[i] = src[i];
        i += 1;
    }
    while i + 16 <= src.len() {
        _mm512_stream_ps(
            dst.as_mut_ptr().add(i),
            _mm512_loadu_ps(src.as_ptr().add(i)),
        );
        i += 16;
    }
    dst[i..].copy_from_slice(&src[i..]);
    _mm_sfence();
}

/// Elements per block of the skeleton, as in the crate's streaming path.
const SKELETON_BLOCK: usize = 16384;

/// The skeleton (see the module comment) over rows of `n` at `src`, into `dst`: with AVX-512
/// non-temporal stores and prefetching, elsewhere in plain code.
fn skeleton(src: &[f32], dst: &mut [f32], n: usize) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F; the slices have the same length (checked inside).
        return unsafe { skeleton_avx512(src, dst, n) };
    }
    let mut acc = 0.0;
    for (x, y) in src.chunks_exact(n).zip(dst.chunks_exact_mut(n)) {
        for (xb, yb) in x.chunks(SKELETON_BLOCK).zip(y.chunks_mut(SKELETON_BLOCK)) {
            let m = xb.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            for (a, b) in xb.iter().zip(yb) {
                *b = a - m;
            }
            acc += m;
        }
    }
    acc
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn skeleton_avx512(src: &[f32], dst: &mut [f32], n: usize) -> f32 {
    use std::arch::x86_64::*;
    assert_eq!(src.len(), dst.len());
    let mut acc = 0.0;
    for (x, y) in src.chunks_exact(n).zip(dst.chunks_exact_mut(n)) {
        for (xb, yb) in x.chunks(SKELETON_BLOCK).zip(y.chunks_mut(SKELETON_BLOCK)) {
            let len = xb.len();
            let p = xb.as_ptr();
            let mut m = _mm512_set1_ps(f32::NEG_INFINITY);
            let mut i = 0;
            while i + 16 <= len {
                m = _mm512_max_ps(m, _mm512_loadu_ps(p.add(i)));
                i += 16;
            }
            let mut mx = _mm512_reduce_max_ps(m);
            for &v in &xb[i..] {
                mx = mx.max(v);
            }
            acc += mx;
            let mv = _mm512_set1_ps(mx);
            // The next block, of this row or the next (a prefetch never faults).
            let ahead = p.add(len);
            let d = yb.as_mut_ptr();
            let mut i = 0;
            // Normal stores up to the first 64-byte boundary, as the kernels do.
            while i < len && !(d.add(i) as usize).is_multiple_of(64) {
                *d.add(i) = *p.add(i) - mx;
                i += 1;
            }
            while i + 16 <= len {
                if i % 64 == 0 {
                    _mm_prefetch::<_MM_HINT_T1>(ahead.wrapping_add(i) as *const i8);
                }
                _mm512_stream_ps(d.add(i), _mm512_sub_ps(_mm512_loadu_ps(p.add(i)), mv));
                i += 16;
            }
            while i < len {
                *d.add(i) = *p.add(i) - mx;
                i += 1;
            }
        }
    }
    _mm_sfence();
    acc
}

fn main() {
    let rows: usize = std::env::args().nth(1).map_or(256, |a| a.parse().unwrap());
    let n: usize = std::env::args()
        .nth(2)
        .map_or(152064, |a| a.parse().unwrap());
    let x: Vec<f32> = (0..rows * n)
        .map(|i| ((i * 7919) % 1000) as f32 * 0.01)
        .collect();
    let mut out = vec![0.0f32; x.len()];
    // 64-byte aligned, as non-temporal stores need.
    let mut copy_buf = vec![0.0f32; x.len() + 16];
    let off = ((64 - (copy_buf.as_ptr() as usize & 63)) & 63) / 4;
    let copy = &mut copy_buf[off..off + x.len()];
    logitkit::set_num_threads(2).unwrap();
    let (mut soft, mut log, mut nt, mut skel) = (vec![], vec![], vec![], vec![]);
    let time = |f: &mut dyn FnMut()| {
        let t = Instant::now();
        f();
        t.elapsed().as_secs_f64() * 1e6
    };
    let rounds: usize = std::env::var("BW_ROUNDS").map_or(15, |v| v.parse().unwrap());
    for _ in 0..rounds {
        soft.push(time(&mut || {
            logitkit::softmax_rows(&x, &mut out, n, 1.0.into()).unwrap()
        }));
        log.push(time(&mut || {
            logitkit::log_softmax_rows(&x, &mut out, n, 1.0.into()).unwrap()
        }));
        nt.push(time(&mut || {
            let half = x.len() / 2;
            let (x1, x2) = x.split_at(half);
            let (c1, c2) = copy.split_at_mut(half);
            std::thread::scope(|s| {
                s.spawn(move || stream_copy(x1, c1));
                stream_copy(x2, c2);
            });
        }));
        skel.push(time(&mut || {
            // Whole rows to each thread.
            let half = rows / 2 * n;
            let (x1, x2) = x.split_at(half);
            let (c1, c2) = copy.split_at_mut(half);
            std::thread::scope(|s| {
                s.spawn(move || skeleton(x1, c1, n));
                skeleton(x2, c2, n);
            });
        }));
    }
    // The fastest run of each: on a shared host, the one least disturbed by other tenants.
    let fastest = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let (fs, fl, fc, fk) = (fastest(&soft), fastest(&log), fastest(&nt), fastest(&skel));
    let (s, l, c, k) = (median(soft), median(log), median(nt), median(skel));
    println!(
        "{rows}x{n} (median µs): softmax {s:.0} ({:.2}x the copy), log_softmax {l:.0} ({:.2}x), \
         2-thread non-temporal copy {c:.0}, skeleton {k:.0} ({:.2}x)",
        s / c,
        l / c,
        k / c
    );
    println!(
        "{rows}x{n} (fastest µs): softmax {fs:.0} ({:.2}x the copy), log_softmax {fl:.0} ({:.2}x), \
         2-thread non-temporal copy {fc:.0}, skeleton {fk:.0} ({:.2}x)",
        fs / fc,
        fl / fc,
        fk / fc
    );
}

use std::arch::x86_64::*;
use std::time::Instant;

#[target_feature(enable = "avx512f")]
unsafe fn run(p: *const f32, rows: usize, stride: usize, k: u16, masked: bool) -> f32 {
    let mut acc = _mm512_setzero_ps();
    let ninf = _mm512_set1_ps(f32::NEG_INFINITY);
    for r in 0..rows {
        let v = if masked {
            _mm512_mask_loadu_ps(ninf, k, p.add(r * stride))
        } else {
            _mm512_loadu_ps(p.add(r * stride))
        };
        acc = _mm512_max_ps(acc, v);
    }
    _mm512_reduce_max_ps(acc)
}

#[target_feature(enable = "avx512f")]
unsafe fn run_store(p: *mut f32, rows: usize, stride: usize, k: u16, masked: bool) {
    let v = _mm512_set1_ps(1.0);
    for r in 0..rows {
        if masked {
            _mm512_mask_storeu_ps(p.add(r * stride), k, v)
        } else {
            _mm512_storeu_ps(p.add(r * stride), v)
        }
    }
}

fn main() {
    let rows = 4096; // 16 KB-ish footprint: L1/L2 resident
    for stride in [16usize, 17, 32, 20] {
        let mut buf = vec![0.5f32; rows * stride + 64];
        let base = ((64 - (buf.as_ptr() as usize & 63)) & 63) / 4;
        for (k, masked, name) in [
            (0xFFFFu16, false, "plain"),
            (0xFFFF, true, "mask full"),
            (0x1, true, "mask 1 lane"),
            (0x7FFF, true, "mask 15"),
        ] {
            for off in [0usize, 1] {
                let p = unsafe { buf.as_ptr().add(base + off) };
                let t = Instant::now();
                let mut s = 0.0;
                for _ in 0..200 {
                    s += unsafe {
                        run(
                            std::hint::black_box(p),
                            rows,
                            stride,
                            std::hint::black_box(k),
                            masked,
                        )
                    };
                }
                let load = t.elapsed().as_secs_f64() * 1e9 / (200.0 * rows as f64);
                let pm = unsafe { buf.as_mut_ptr().add(base + off) };
                let t = Instant::now();
                for _ in 0..200 {
                    unsafe {
                        run_store(
                            std::hint::black_box(pm),
                            rows,
                            stride,
                            std::hint::black_box(k),
                            masked,
                        )
                    };
                    std::hint::black_box(&mut buf);
                }
                let store = t.elapsed().as_secs_f64() * 1e9 / (200.0 * rows as f64);
                println!("stride {stride:2} off {off} {name:12}: load {load:.2} ns, store {store:.2} ns ({s})");
            }
        }
    }
}

use half::bf16;
use std::time::Instant;
fn med(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}
fn main() {
    {
        use logitkit::Float;
        let n = 128_256 * 8;
        let x16: Vec<bf16> = (0..n).map(|i| bf16::from_f32(i as f32)).collect();
        let mut w = vec![0f32; n];
        let mut back = vec![bf16::ZERO; n];
        let (mut a, mut b) = (vec![], vec![]);
        for _ in 0..15 {
            let t = Instant::now();
            bf16::widen(&x16, &mut w);
            a.push(t.elapsed().as_secs_f64());
            let t = Instant::now();
            bf16::narrow(&w, &mut back);
            b.push(t.elapsed().as_secs_f64());
        }
        println!(
            "1M widen {:.3} ms narrow {:.3} ms",
            med(a) * 1e3,
            med(b) * 1e3
        );
        let mut one = vec![0f32; 128_256];
        let x32: Vec<f32> = (0..128_256)
            .map(|i| ((i * 7919) % 1000) as f32 * 0.01)
            .collect();
        let mut a = vec![];
        logitkit::set_num_threads(1).unwrap();
        for _ in 0..15 {
            one.copy_from_slice(&x32);
            let t = Instant::now();
            logitkit::softmax_in_place(&mut one, 1.0).unwrap();
            a.push(t.elapsed().as_secs_f64());
        }
        println!("1 row in place 1 thread {:.3} ms", med(a) * 1e3);
        logitkit::set_num_threads(2).unwrap();
    }
    for &(rows, n) in &[(8usize, 128_256usize), (32, 128_256), (256, 152_064)] {
        let x32: Vec<f32> = (0..rows * n)
            .map(|i| ((i * 7919) % 1000) as f32 * 0.01)
            .collect();
        let x16: Vec<bf16> = x32.iter().map(|&v| bf16::from_f32(v)).collect();
        let mut o32 = vec![0f32; x32.len()];
        let mut o16 = vec![bf16::ZERO; x32.len()];
        let mut c32 = vec![0f32; x32.len()];
        let (mut a, mut b, mut c) = (vec![], vec![], vec![]);
        for _ in 0..15 {
            let t = Instant::now();
            logitkit::softmax_rows(&x32, &mut o32, n, 1.0.into()).unwrap();
            a.push(t.elapsed().as_secs_f64());
            let t = Instant::now();
            logitkit::softmax_rows(&x16, &mut o16, n, 1.0.into()).unwrap();
            b.push(t.elapsed().as_secs_f64());
            let t = Instant::now();
            c32.copy_from_slice(&x32);
            c.push(t.elapsed().as_secs_f64());
        }
        println!(
            "{rows}x{n}: f32 {:.2} ms, bf16 {:.2} ms (bf16/f32 {:.2}), f32 copy {:.2} ms",
            med(a.clone()) * 1e3,
            med(b.clone()) * 1e3,
            med(b) / med(a.clone()),
            med(c) * 1e3
        );
    }
}
#[allow(dead_code)]
fn conv() {}

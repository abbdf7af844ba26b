use half::bf16;
fn main() {
    let (rows, n) = (32usize, 128_256usize);
    let x16: Vec<bf16> = (0..rows * n)
        .map(|i| bf16::from_f32(((i * 7919) % 1000) as f32 * 0.01))
        .collect();
    let mut o16 = vec![bf16::ZERO; x16.len()];
    let t = std::time::Instant::now();
    for _ in 0..300 {
        logitkit::softmax_rows(&x16, &mut o16, n, 1.0.into()).unwrap();
    }
    println!("{:.3} ms per call", t.elapsed().as_secs_f64() / 300.0 * 1e3);
}

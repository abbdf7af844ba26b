use logitkit::{sample_rows, SamplingParams, Seed};
fn main() {
    logitkit::set_num_threads(1).unwrap();
    let v = 32000;
    let x: Vec<f32> = (0..v)
        .map(|i| (((i * 7919) % 1000) as f32 * 0.006 - 3.0) * 3.0)
        .collect();
    let p = SamplingParams {
        top_p: 0.9.into(),
        ..Default::default()
    };
    let mut tok = [0i64; 1];
    for i in 0..400_000u64 {
        sample_rows(&x, v, &p, &Seed::Fixed(i), &mut tok, None).unwrap();
    }
    println!("{}", tok[0]);
}

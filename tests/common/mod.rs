//! Helpers shared by the sampling test suites (each test file compiles this module itself).

#![allow(dead_code)]

/// splitmix64: deterministic test data without a dependency.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn normal(&mut self) -> f64 {
        let (u1, u2) = (self.uniform().max(1e-300), self.uniform());
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Case counts scale down when `PROPTEST_CASES` asks for fewer than proptest's default of 256
/// (as `make valgrind` does, where every case is ~50 times slower).
pub fn scaled(n: usize) -> usize {
    match std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        Some(c) if c < 256 => (n * c / 256).max(1),
        _ => n,
    }
}

/// True under `make valgrind`: memcheck checks memory, not numbers, so a test may keep one case
/// per code path there instead of every size and temperature it checks natively.
pub fn under_valgrind() -> bool {
    std::env::var_os("LOGITKIT_UNDER_VALGRIND").is_some()
}

/// True under valgrind or qemu-user (`make neon` sets `LOGITKIT_UNDER_QEMU`), where every case
/// takes ~50 times as long: a test may keep one case per code path there (the native run has
/// them all).
pub fn emulated() -> bool {
    under_valgrind() || std::env::var_os("LOGITKIT_UNDER_QEMU").is_some()
}

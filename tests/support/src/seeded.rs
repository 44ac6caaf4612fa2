//! Seeded randomness for the fault and generated-input tests: a run must repeat from the seed
//! it prints, so the generator is a plain xorshift64* of our own rather than a thread-local RNG.

use std::time::Duration;

/// A seeded generator (xorshift64*).
pub struct Seeded(u64);

impl Seeded {
    /// A generator starting from `seed` (any value; zero is made odd).
    pub fn new(seed: u64) -> Seeded {
        Seeded(seed | 1)
    }

    /// The next 64 random bits.
    pub fn bits(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.bits() % n.max(1) as u64) as usize
    }

    /// True with the given chance in percent.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.bits() % 100 < percent
    }

    /// One of `items`, which must not be empty.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// A duration of a whole number of milliseconds in `range`.
    pub fn millis(&mut self, range: std::ops::Range<u64>) -> Duration {
        Duration::from_millis(range.start + self.bits() % (range.end - range.start).max(1))
    }
}

/// The number in the environment variable `name`, or `default`.
pub fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The seed in the environment variable `name`, or one from the clock; printed either way with
/// how to repeat the run.
pub fn seed(name: &str) -> u64 {
    let seed = env_number(
        name,
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
    );
    eprintln!("seed {seed} (repeat with {name}={seed})");
    seed
}

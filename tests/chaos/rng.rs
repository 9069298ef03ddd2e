//! A seeded random source (SplitMix64), so a failing schedule can be replayed with
//! `CHAOS_SEED=<seed>`; statistical quality beyond "spread out" is not needed here.

use std::time::Duration;

/// Names the seed of a run; unset, a fresh one is drawn (and printed by the tests).
pub const SEED_ENV: &str = "CHAOS_SEED";

pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The seed from `CHAOS_SEED`, or a fresh one.
    pub fn seed_from_env() -> u64 {
        match std::env::var(SEED_ENV) {
            Ok(seed) => seed
                .parse()
                .unwrap_or_else(|_| panic!("{SEED_ENV}={seed:?} is not an unsigned integer")),
            Err(_) => getrandom::u64().expect("the OS random source"),
        }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A second stream, independent of this one's later draws.
    pub fn fork(&mut self) -> Rng {
        Rng(self.next_u64())
    }

    /// Uniform in `0.0..1.0`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn chance(&mut self, probability: f64) -> bool {
        self.unit() < probability
    }

    /// Uniform in `low..high`.
    pub fn between(&mut self, low: Duration, high: Duration) -> Duration {
        low + (high - low).mul_f64(self.unit())
    }
}

#[test]
fn the_same_seed_gives_the_same_draws() {
    let draws = |seed| {
        let mut rng = Rng::new(seed);
        (0..5).map(|_| rng.next_u64()).collect::<Vec<_>>()
    };
    assert_eq!(draws(7), draws(7));
    assert_ne!(draws(7), draws(8));
    let mut rng = Rng::new(1);
    assert!((0..1000).map(|_| rng.unit()).all(|u| (0.0..1.0).contains(&u)));
}

//! The seeded random source of the chaos schedules (xoshiro256++, a fixed algorithm), so a
//! failing schedule can be replayed with `CHAOS_SEED=<seed>`.

use std::time::Duration;

use rand::rngs::Xoshiro256PlusPlus;
use rand::{Rng as _, RngExt, SeedableRng};

/// Names the seed of a run; unset, a fresh one is drawn (and printed by the tests).
pub const SEED_ENV: &str = "CHAOS_SEED";

pub struct Rng(Xoshiro256PlusPlus);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(Xoshiro256PlusPlus::seed_from_u64(seed))
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
        self.0.next_u64()
    }

    /// A second stream, independent of this one's later draws.
    pub fn fork(&mut self) -> Rng {
        Rng::new(self.next_u64())
    }

    pub fn chance(&mut self, probability: f64) -> bool {
        self.0.random_bool(probability)
    }

    /// Uniform in `low..high`.
    pub fn between(&mut self, low: Duration, high: Duration) -> Duration {
        low + (high - low).mul_f64(self.0.random::<f64>())
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
    let (low, high) = (Duration::from_secs(1), Duration::from_secs(2));
    let mut rng = Rng::new(1);
    assert!(
        (0..1000)
            .map(|_| rng.between(low, high))
            .all(|d| (low..high).contains(&d))
    );
}
